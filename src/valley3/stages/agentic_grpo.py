"""P3b agentic GRPO: GRPOStage whose samples are multi-turn tool trajectories; tool tokens masked from the loss."""

from __future__ import annotations

from typing import Any

import torch

from valley3.agent.evaluate import split_trajectory
from valley3.agent.rollout import AgentRollout
from valley3.agent.search.tools import search_tools
from valley3.agent.tools import ToolRegistry
from valley3.agent.trajectory import Trajectory, trajectory_batch
from valley3.models.omni import OmniModel
from valley3.policy import Policy
from valley3.policy.prompts import as_sample
from valley3.rewards.base import Reward
from valley3.stages.grpo import GRPOStage
from valley3.stages.grpo_rollout import Rollout, Sampling, sample_seed


class AgenticGRPOStage(GRPOStage):
    """GRPO over tool-use trajectories (`AgentRollout`): each of a prompt's `group_size` samples is a conversation
    with the search tools; the policy loss covers the model's tokens only (`Trajectory.loss_mask`: tool responses,
    their photos and the template's scaffolding carry none), and each trajectory's batch row holds every photo of its
    conversation. Rewards see the trajectory (`RewardContext.completion`): `AgentAnswerReward` (rule or judge,
    optional search-count discount) and `AgentFormatReward`. Logged besides GRPO's metrics: tool calls per sample,
    turns, the share of failed calls, and how trajectories ended.

    A prompt record may be a whole recorded trajectory (agentic SFT data): its turns before the first assistant turn
    are the prompt and its last assistant turn the reference.

    Args:
        model: the network.
        rewards: reward functions, e.g. [AgentAnswerReward, AgentFormatReward].
        search: where the catalog is: {index: FOLDER} (in-process engine) or {url: URL} (`valley3 search serve`).
        tools: `search_tools` keywords: {k, fields, images, text_mode, timeout}.
        rollout: `AgentRollout` limits: {max_turns, max_tool_calls, max_tokens}; `sampling.max_new_tokens` is the
            budget of each assistant turn, its temperature/top_p/top_k those of every turn.
        **kwargs: `GRPOStage` arguments (reward_weights, sampling, clip_*, beta, mask_truncated, ...).
    """

    def __init__(self, model: OmniModel, rewards: list[Reward], search: dict[str, str],
                 tools: dict[str, Any] | None = None, rollout: dict[str, Any] | None = None, **kwargs: Any):
        super().__init__(model, rewards, **kwargs)
        if set(search) not in ({"index"}, {"url"}):
            raise ValueError(f"search must be {{index: FOLDER}} or {{url: URL}}, got {search}")
        self.search, self.tool_settings, self.rollout_settings = dict(search), dict(tools or {}), dict(rollout or {})
        self._agent: AgentRollout | None = None

    @property
    def agent(self) -> AgentRollout:
        """The rollout and its tools, built on first use (the index loads when training starts, not when a config is
        checked)."""
        if self._agent is None:
            if "index" in self.search:
                from valley3.agent.search.engine import SearchEngine

                searcher = SearchEngine(self.search["index"])
            else:
                from valley3.agent.search.server import SearchClient

                searcher = SearchClient(self.search["url"])
            s = self.sampling
            self._agent = AgentRollout(ToolRegistry(search_tools(searcher, **self.tool_settings)),
                                       max_new_tokens=s.max_new_tokens, temperature=s.temperature, top_p=s.top_p,
                                       top_k=s.top_k, **self.rollout_settings)
        return self._agent

    def sample_groups(self, policy: Policy, prompts: list, first: int, step: int, seed: int,
                      sampling: Sampling) -> list[list[Trajectory]]:
        starts = []
        for i, record in enumerate(prompts):
            sample = as_sample(record, first + i)
            starts.append(split_trajectory(sample)[0] if any(t.role == "assistant" for t in sample.turns) else sample)
        return self.agent(policy, starts, n=sampling.group_size, seed=sample_seed(seed, step, first))

    def _items(self, rollout: Rollout, advantages: torch.Tensor) -> tuple[list[tuple], int]:
        """(trajectory, completion ids, loss mask, advantage) per trajectory; `mask_truncated` zeroes the mask of one
        that hit a limit. The count is of trajectories cut for writing a reserved token."""
        items, k = [], 0
        for g in rollout.groups:
            for t in g.completions:
                keep = not (self.hparams.mask_truncated and t.finish != "answer")
                items.append((t, t.token_ids, [m if keep else 0 for m in t.loss_mask], float(advantages[k])))
                k += 1
        return items, sum(t.finish == "invalid" for g in rollout.groups for t in g.completions)

    def _batch_logps(self, policy: Policy, chunk: list, temperature: float):
        return policy.logprobs(trajectory_batch(policy, [i[0] for i in chunk], [i[2] for i in chunk]), temperature)

    def _rollout_metrics(self, rollout: Rollout, rewards: torch.Tensor) -> dict[str, float]:
        metrics = super()._rollout_metrics(rollout, rewards)
        ts = [t for g in rollout.groups for t in g.completions]
        calls = sum(t.tool_calls for t in ts)
        metrics |= {"train/tool_calls_per_sample": calls / len(ts), "train/turns_mean": sum(t.turns for t in ts) / len(ts),
                    "train/failed_call_share": sum(t.failed_calls for t in ts) / max(calls, 1)}
        for finish in ("answer", "max_turns", "max_tokens", "length", "invalid"):
            metrics[f"train/finish/{finish}"] = sum(t.finish == finish for t in ts) / len(ts)
        return metrics

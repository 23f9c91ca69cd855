"""GRPO rollouts: G sampled completions per prompt, scored by the rewards, zero-spread groups dropped and refilled."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from valley3.rewards.base import Prompt, RewardContext, WeightedRewards
from valley3.stages.grpo_loss import zero_spread


def sample_seed(seed: int, step: int, index: int) -> int:
    """The sampling seed of a generation call: a function of (run seed, rollout step, index of the call's first
    prompt in its batch) only, so a resumed run draws the same completions."""
    return int(np.random.SeedSequence([seed, step, index]).generate_state(1)[0])


@dataclass
class Group:
    """One prompt's G completions (`valley3.policy.Completion`) and their rewards."""

    prompt: Prompt
    index: int  # the prompt's index in its rollout batch
    completions: list[Any]
    rewards: list[float]
    per_reward: dict[str, list[float]]


@dataclass
class Sampling:
    """How completions are drawn (the policy's `generate` keywords).

    Args:
        group_size: completions per prompt (G).
        max_new_tokens: the completion budget; an answer cut there is "truncated".
        temperature: sampling temperature (> 0: GRPO needs different samples).
        top_p: nucleus mass (1 = off).
        top_k: top-k (0 = off).
        stop: strings that end a completion (kept in it).
    """

    group_size: int = 8
    max_new_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    stop: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.group_size < 2:
            raise ValueError(f"group_size must be at least 2 (advantages compare a group's samples), "
                             f"got {self.group_size}")
        if self.temperature <= 0:
            raise ValueError(f"GRPO samples: temperature must be > 0, got {self.temperature}")


@dataclass
class Rollout:
    """The groups a step trains on, and counts of how they were drawn."""

    groups: list[Group]
    stats: dict[str, float]


def sample_groups(policy, prompts: Sequence[Prompt], first: int, step: int, seed: int,
                   sampling: Sampling) -> list[list[Any]]:
    """G completions per prompt, in one batched call (a prompt's media encoded once for its G samples)."""
    return policy.generate(
        list(prompts), n=sampling.group_size, max_new_tokens=sampling.max_new_tokens, temperature=sampling.temperature,
        top_p=sampling.top_p, top_k=sampling.top_k, stop=sampling.stop, seed=sample_seed(seed, step, first),
    )


def _score(rewards: WeightedRewards, prompts: Sequence[Prompt], indices: Sequence[int],
           completions: Sequence[list[Any]], step: int, budget: int) -> list[Group]:
    flat_prompts, texts, contexts = [], [], []
    for prompt, index, group in zip(prompts, indices, completions):
        for j, c in enumerate(group):
            flat_prompts.append(prompt)
            texts.append(c.text)
            ids = tuple(c.token_ids)
            contexts.append(RewardContext(len(ids), c.finish_reason, budget, step, index, j, ids, completion=c))
    totals, each = rewards.score(flat_prompts, texts, contexts)
    groups, g = [], len(completions[0]) if completions else 0
    for k, (prompt, index, group) in enumerate(zip(prompts, indices, completions)):
        part = slice(k * g, (k + 1) * g)
        groups.append(Group(prompt, index, group, totals[part], {n: v[part] for n, v in each.items()}))
    return groups


def collect(policy, rewards: WeightedRewards, prompts: Sequence[Prompt], step: int, seed: int, sampling: Sampling,
            prompts_per_step: int | None = None, dynamic_sampling: bool = False, tol: float = 0.0,
            max_rounds: int = 4, sample: Callable[..., list[list[Any]]] | None = None) -> Rollout:
    """Sample and score groups for one training step.

    Without dynamic sampling: the first `prompts_per_step` prompts (default all) make the step's groups. With it
    (DAPO's dynamic sampling, verl's filter_groups): groups whose rewards spread by at most `tol` are dropped, and
    further prompts of the batch are sampled in rounds until `prompts_per_step` groups remain, the batch runs out,
    or `max_rounds` rounds were drawn. The counts go to `Rollout.stats`, with the mean reward of every sampled
    completion (`sampled_reward_mean`: the policy's; the kept groups' mean leans towards groups that spread).
    `sample(policy, prompts, first, step, seed, sampling)` draws the groups (default: `policy.generate`; agentic
    GRPO: tool trajectories).
    """
    sample = sample or sample_groups
    target = len(prompts) if prompts_per_step is None else min(prompts_per_step, len(prompts))
    kept: list[Group] = []
    drawn = flat = rounds = 0
    scored: list[float] = []  # every sampled completion's reward, dropped groups included
    while len(kept) < target and drawn < len(prompts) and rounds < (max_rounds if dynamic_sampling else 1):
        want = target - len(kept)
        indices = list(range(drawn, min(drawn + want, len(prompts))))
        batch = [prompts[i] for i in indices]
        completions = sample(policy, batch, indices[0], step, seed, sampling)
        groups = _score(rewards, batch, indices, completions, step, sampling.max_new_tokens)
        drawn, rounds = drawn + len(indices), rounds + 1
        for group in groups:
            scored += group.rewards
            is_flat = bool(zero_spread(torch.tensor(group.rewards, dtype=torch.float64), len(group.rewards), tol)[0])
            flat += is_flat
            if not (dynamic_sampling and is_flat):
                kept.append(group)
    stats = {"groups_sampled": drawn, "zero_spread_share": flat / max(drawn, 1), "groups_kept": len(kept),
             "groups_dropped": drawn - len(kept), "rounds": rounds, "short_of_target": target - len(kept),
             "sampled_reward_mean": sum(scored) / max(len(scored), 1)}
    return Rollout(kept, stats)


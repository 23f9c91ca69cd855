"""GRPO (post-training P2): group rollouts through the policy API, rule and judge rewards, the clipped policy loss."""

from __future__ import annotations

import copy
import dataclasses
import time
from collections import defaultdict
from typing import Any

import torch

from valley3.compat import given_hyperparameters
from valley3.data.batch import PromptBatch
from valley3.models.omni import OmniModel
from valley3.policy import Policy
from valley3.rewards.base import Reward, WeightedRewards
from valley3.stages.base import OmniStage
from valley3.stages.grpo_loss import AGGREGATIONS, KL_ESTIMATORS, RATIO_LEVELS, SCALES, group_advantages, policy_loss
from valley3.stages.grpo_rollout import Rollout, Sampling, collect, sample_groups


# One completion to train on: (prompt, completion ids, loss mask, advantage).
_Item = tuple[Any, list[int], list[int], float]


class GRPOStage(OmniStage):
    """Group Relative Policy Optimisation over OmniStage's model and processor (manual optimisation).

    Each training step takes a batch of prompts (`PromptDataModule`), samples `group_size` completions per prompt
    (each prompt's media encoded once, seeds from (seed, step, prompt index)), scores them with `rewards`, turns
    them into group advantages and takes `updates_per_rollout` x `mini_batches` optimiser steps on the clipped loss.
    `trainer.max_steps` counts optimiser steps.

    Args:
        model: the network (the policy being trained).
        rewards: reward functions (`valley3.rewards`), e.g. [FormatReward, AnswerReward, JudgeReward].
        reward_weights: one weight per reward (default 1 each); the step's reward is the weighted sum.
        sampling: how completions are drawn, as `Sampling` keywords: {group_size, max_new_tokens, temperature,
            top_p, top_k, stop}.
        prompts_per_step: groups a step trains on (default: the whole prompt batch). With dynamic sampling the
            rest of the batch refills dropped groups.
        dynamic_sampling: drop groups whose rewards spread by at most `zero_spread_tol` and refill (DAPO).
        zero_spread_tol: the spread below which a group counts as equal rewards (it gets advantage exactly 0).
        max_rounds: the cap on sampling rounds per step with dynamic sampling.
        max_idle_rollouts: rollouts in a row that may keep no group (so take no optimiser step) before the run
            stops with an error: rewards that never spread would otherwise sample forever, as `max_steps` counts
            optimiser steps (verl's max_num_gen_batches). 0: no limit.
        scale_rewards: "group" (GRPO), "batch" or "none" (Dr. GRPO).
        loss_aggregation: "token_mean" (DAPO), "sequence_mean" (GRPO paper) or "dr_grpo" (/ max_new_tokens).
        clip_low: epsilon below 1 of the clipped ratio.
        clip_high: epsilon above 1 (default clip_low; DAPO's clip-higher uses 0.28).
        importance_level: "token" or "sequence" (GSPO).
        beta: KL coefficient; 0 (the default) builds no reference model.
        kl_estimator: "k1", "k2" or "k3".
        kl_ratio_correction: weight the KL term by the importance ratio (unbiased KL gradient, DeepSeek-V3.2).
        mask_truncated: leave completions cut at `max_new_tokens` out of the loss (DAPO's overlong filtering).
        updates_per_rollout: passes over a rollout batch (PPO epochs, TRL's num_iterations).
        mini_batches: optimiser steps per pass (the batch split in order).
        micro_batch_size: completions per forward (gradients accumulate); default: a whole mini-batch.
        max_grad_norm: gradient clipping (0 = off).
        seed: the sampling seed of the run.
        **kwargs: `OmniStage` arguments (default_lr, lr, warmup_steps, init_from, max_len, system_prompt, ...).
    """

    def __init__(self, model: OmniModel, rewards: list[Reward], reward_weights: list[float] | None = None,
                 sampling: dict[str, Any] | None = None, prompts_per_step: int | None = None,
                 dynamic_sampling: bool = False, zero_spread_tol: float = 1e-6, max_rounds: int = 4,
                 max_idle_rollouts: int = 64,
                 scale_rewards: str = "group", loss_aggregation: str = "token_mean", clip_low: float = 0.2,
                 clip_high: float | None = None, importance_level: str = "token", beta: float = 0.0,
                 kl_estimator: str = "k3", kl_ratio_correction: bool = False, mask_truncated: bool = False,
                 updates_per_rollout: int = 1, mini_batches: int = 1, micro_batch_size: int | None = None,
                 max_grad_norm: float = 1.0, seed: int = 0, **kwargs: Any):
        super().__init__(model, **kwargs)
        if not given_hyperparameters():  # built in Python: reward objects are not checkpoint hyperparameters
            self.hparams.pop("rewards", None)
        for name, value, choices in [("scale_rewards", scale_rewards, SCALES),
                                     ("loss_aggregation", loss_aggregation, AGGREGATIONS),
                                     ("importance_level", importance_level, RATIO_LEVELS),
                                     ("kl_estimator", kl_estimator, KL_ESTIMATORS)]:
            if value not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {value!r}")
        if updates_per_rollout < 1 or mini_batches < 1:
            raise ValueError("updates_per_rollout and mini_batches must be at least 1")
        if max_idle_rollouts < 0:
            raise ValueError(f"max_idle_rollouts must be 0 (no limit) or more, got {max_idle_rollouts}")
        self.automatic_optimization = False
        self.rewards = WeightedRewards(rewards, reward_weights)
        self.sampling = Sampling(**(sampling or {}))
        self.policy = Policy(self.model, self.processor)
        # A frozen copy of the starting weights, saved with the checkpoints (a resumed run keeps the same reference).
        self.ref_model = copy.deepcopy(self.model).requires_grad_(False) if beta > 0 else None
        self.ref_policy = Policy(self.ref_model, self.processor) if beta > 0 else None
        self.rollout_step = 0
        self.idle_rollouts = 0  # rollouts in a row that kept no group

    def configure_model(self) -> None:
        if self.device_mesh is not None and self.device_mesh.size() > 1:
            raise ValueError(
                "GRPO runs on one device or under DDP (strategy: ddp), not FSDP (ModelParallelStrategy): a sharded "
                "model gathers its weights in every decoding step, and ranks whose completions end at different "
                "lengths would wait on each other for ever")
        super().configure_model()

    # -- a step ----------------------------------------------------------------------------------------------
    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        # Prompt records stay as they are (the policy moves what it builds from them); Lightning would walk into
        # their frozen dataclasses.
        if isinstance(batch, PromptBatch):
            return dataclasses.replace(batch, skipped=batch.skipped.to(device))
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def training_step(self, batch: PromptBatch, batch_idx: int) -> dict[str, Any] | None:
        start, hp = time.perf_counter(), self.hparams
        self._log_skipped(batch, "train")
        rollout = collect(self.policy, self.rewards, batch.prompts, self.rollout_step, hp.seed, self.sampling,
                          hp.prompts_per_step, hp.dynamic_sampling, hp.zero_spread_tol, hp.max_rounds,
                          sample=self.sample_groups)
        step = self.rollout_step
        self.rollout_step += 1
        metrics = {f"train/{k}": float(v) for k, v in rollout.stats.items()}
        metrics |= {f"train/reward/{k}": float(v) for k, v in self.rewards.stats().items()}
        self.rewards.reset_stats()
        out: dict[str, Any] = {"step": step, "prompt_ids": [_prompt_id(g.prompt) for g in rollout.groups]}
        # Every rank optimises when any rank kept a group (each backward is an all-reduce under DDP).
        kept_anywhere = self._across_ranks([len(rollout.groups)], "max")[0] > 0
        rewards = torch.tensor([r for g in rollout.groups for r in g.rewards])
        if kept_anywhere:
            advantages = (group_advantages(rewards, self.sampling.group_size, hp.scale_rewards, tol=hp.zero_spread_tol)
                          if rollout.groups else rewards)
            losses, stats = self._optimise(rollout, advantages)
            metrics |= stats
            out |= {"loss": torch.tensor(losses).mean(), "losses": losses}
        if rollout.groups:
            metrics |= self._rollout_metrics(rollout, rewards)
            out |= {"rewards": rewards.tolist(),
                    "per_reward": {n: [v for g in rollout.groups for v in g.per_reward[n]] for n in self.rewards.names}}
        self._count_idle(kept_anywhere)
        metrics["train/idle_rollouts"] = self.idle_rollouts
        metrics["train/step_time_s"] = time.perf_counter() - start
        self.log_dict(metrics, on_step=True, on_epoch=False, batch_size=1)
        return out

    def _count_idle(self, kept: bool) -> None:
        self.idle_rollouts = 0 if kept else self.idle_rollouts + 1
        limit = self.hparams.max_idle_rollouts
        if limit and self.idle_rollouts >= limit:
            raise RuntimeError(
                f"GRPO: {self.idle_rollouts} rollouts in a row kept no group (rollout {self.rollout_step}, optimiser "
                f"step {self.global_step}). Every group's rewards were equal, so no step "
                "could learn: check the rewards on a few completions, filter the prompts (valley3 data zpd), raise "
                "max_rounds, or raise max_idle_rollouts (0: no limit).")

    def sample_groups(self, policy: Policy, prompts: list, first: int, step: int, seed: int,
                      sampling: Sampling) -> list[list[Any]]:
        """G completions per prompt, [prompt][sample] (`AgenticGRPOStage` samples tool trajectories instead)."""
        return sample_groups(policy, prompts, first, step, seed, sampling)

    def _rollout_metrics(self, rollout: Rollout, rewards: torch.Tensor) -> dict[str, float]:
        completions = [c for g in rollout.groups for c in g.completions]
        lengths = torch.tensor([len(c.token_ids) for c in completions], dtype=torch.float)
        metrics = {"train/reward_mean": rewards.mean().item(), "train/reward_std": rewards.std().item(),
                   "train/completion_len_mean": lengths.mean().item(), "train/completion_len_max": lengths.max().item(),
                   "train/truncated_share": sum(c.finish_reason == "length" for c in completions) / len(completions),
                   "train/tokens": lengths.sum().item()}
        for name in self.rewards.names:
            values = [v for g in rollout.groups for v in g.per_reward[name]]
            metrics[f"train/reward/{name}"] = sum(values) / len(values)
        return metrics

    # -- optimisation ----------------------------------------------------------------------------------------
    def _items(self, rollout: Rollout, advantages: torch.Tensor) -> tuple[list[_Item], int]:
        """(prompt, completion ids, loss mask, advantage) per completion, and how many completions were unusable.

        An answer that ended on its own is trained with its end-of-turn token (the model must learn to stop); a
        truncated one may be masked out. One holding a media placeholder id (an untrained model samples any id) is
        cut before it and left out of the loss: fed back, the placeholder would ask for media the prompt lacks.
        """
        placeholders = set(self.processor.token_ids.values())
        items, unusable, k = [], 0, 0
        for g in rollout.groups:
            for c in g.completions:
                ids = list(c.token_ids) + ([self.processor.eos_id] if c.finish_reason == "eos" else [])
                keep = 0 if (self.hparams.mask_truncated and c.finish_reason == "length") else 1
                bad = next((i for i, t in enumerate(ids) if t in placeholders), None)
                if bad is not None:
                    ids, keep, unusable = ids[:bad], 0, unusable + 1
                items.append((g.prompt, ids, [keep] * len(ids), float(advantages[k])))
                k += 1
        return items, unusable

    @staticmethod
    def _split(items: list, parts: int) -> list[list]:
        """`items` in order as `parts` lists of ceil(len / parts) (the last ones shorter or empty)."""
        size = max(1, -(-len(items) // parts))
        return [items[k * size : (k + 1) * size] for k in range(parts)]

    def _layout(self, items: list) -> list[list[list]]:
        """[mini-batch][micro-batch] -> items: `mini_batches` mini-batches, each cut in micro-batches."""
        layout = []
        for mini in self._split(items, self.hparams.mini_batches):
            size = self.hparams.micro_batch_size or max(len(mini), 1)
            layout.append([mini[k : k + size] for k in range(0, len(mini), size)])
        return layout

    def _across_ranks(self, values: list[float], op: str) -> list[float]:
        """`values` summed ("sum") or maxed ("max") over the ranks, element-wise (the strategy's all-reduce; one
        process returns them as they are)."""
        if self.trainer.world_size == 1:
            return values
        return self.trainer.strategy.reduce(torch.tensor(values, dtype=torch.float64, device=self.device),
                                            reduce_op=op).tolist()

    def _zero_loss(self) -> torch.Tensor:
        """0 x every trainable weight: a backward that gives each a zero gradient, for a rank with fewer
        micro-batches than another (under DDP each backward is an all-reduce that every rank must join)."""
        return sum(p.sum() for p in self.model.parameters() if p.requires_grad) * 0.0

    def _batch_logps(self, policy: Policy, chunk: list, temperature: float):
        batch = policy.completion_batch([i[0] for i in chunk], [i[1] for i in chunk], [i[2] for i in chunk])
        return policy.logprobs(batch, temperature=temperature)

    def _reference(self, chunks: list[list[list]]) -> tuple[dict, dict]:
        """Log-probs before any update (when several updates reuse the rollout) and under the reference model."""
        hp, old, ref = self.hparams, {}, {}
        temperature = self.sampling.temperature
        with torch.no_grad():
            for i, micros in enumerate(chunks):
                for j, micro in enumerate(micros):
                    if hp.updates_per_rollout > 1 or hp.mini_batches > 1:
                        old[i, j] = self._batch_logps(self.policy, micro, temperature).logprobs
                    if self.ref_policy is not None:
                        self.ref_model.eval()  # Lightning's fit puts every submodule in train mode
                        ref[i, j] = self._batch_logps(self.ref_policy, micro, temperature).logprobs
        return old, ref

    def _optimise(self, rollout: Rollout, advantages: torch.Tensor) -> tuple[list[float], dict[str, float]]:
        hp, optimizer, scheduler = self.hparams, self.optimizers(), self.lr_schedulers()
        items, unusable = self._items(rollout, advantages)
        chunks = self._layout(items)
        old, ref = self._reference(chunks)
        # The loss is the mean over every rank's mini-batch together: global token and sequence counts, the rank's
        # loss x world size (DDP averages gradients); a rank short of micro-batches joins with zero gradients.
        world = self.trainer.world_size
        counts = self._across_ranks([len(micros) for micros in chunks], "max")
        sizes = self._across_ranks([float(sum(sum(item[2]) for micro in micros for item in micro)) for micros in chunks]
                                   + [float(sum(map(len, micros))) for micros in chunks], "sum")
        losses, sums = [], defaultdict(float)
        for _ in range(hp.updates_per_rollout):
            for i, micros in enumerate(chunks):
                if not counts[i]:
                    continue
                optimizer.zero_grad()
                tokens, sequences = sizes[i], sizes[len(chunks) + i]
                total = 0.0
                for _pad in range(len(micros), int(counts[i])):
                    self.manual_backward(self._zero_loss())
                for j, micro in enumerate(micros):
                    lp = self._batch_logps(self.policy, micro, self.sampling.temperature)
                    mask = lp.mask.float()
                    advantages_ij = torch.tensor([m[3] for m in micro], device=self.device)
                    result = policy_loss(
                        lp.logprobs, old.get((i, j), lp.logprobs.detach()), advantages_ij, mask,
                        clip_low=hp.clip_low, clip_high=hp.clip_high, importance_level=hp.importance_level,
                        aggregation=hp.loss_aggregation, max_length=self.sampling.max_new_tokens,
                        ref_logps=ref.get((i, j)), beta=hp.beta, kl_estimator=hp.kl_estimator,
                        kl_ratio_correction=hp.kl_ratio_correction, num_tokens=tokens, num_sequences=sequences)
                    self.manual_backward(result.loss * world)
                    total += result.loss.item()
                    n = float(mask.sum())
                    sums["tokens"] += n
                    sums["entropy"] += float((lp.entropy.detach() * mask).sum())
                    sums["clip_low"] += result.clip_low * n
                    sums["clip_high"] += result.clip_high * n
                    sums["kl"] += (result.kl or 0.0) * n
                if hp.max_grad_norm:
                    self.clip_gradients(optimizer, gradient_clip_val=hp.max_grad_norm, gradient_clip_algorithm="norm")
                optimizer.step()
                scheduler.step()
                losses.append(total)
        # Every logged number is the whole step's, all ranks together (a rank that kept no group has none of its own).
        keys = ["tokens", "entropy", "clip_low", "clip_high", "kl", "unusable"]
        sums["unusable"] = float(unusable)
        totals = self._across_ranks(losses + [sums[k] for k in keys], "sum")
        losses, sums = totals[: len(losses)], dict(zip(keys, totals[len(losses) :]))
        unusable = sums["unusable"]
        n = max(sums["tokens"], 1.0)
        stats = {"train/loss": sum(losses) / max(len(losses), 1), "train/entropy": sums["entropy"] / n,
                 "train/unusable_completions": float(unusable),
                 "train/clip_ratio_low": sums["clip_low"] / n, "train/clip_ratio_high": sums["clip_high"] / n}
        if self.ref_model is not None:
            stats["train/kl"] = sums["kl"] / n
        return losses, stats

    # -- resume ----------------------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["grpo"] = {"rollout_step": self.rollout_step, "idle_rollouts": self.idle_rollouts}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.rollout_step = checkpoint.get("grpo", {}).get("rollout_step", 0)
        self.idle_rollouts = checkpoint.get("grpo", {}).get("idle_rollouts", 0)


def _prompt_id(prompt: Any) -> str:
    return prompt.id if hasattr(prompt, "id") else str(prompt.get("id", ""))

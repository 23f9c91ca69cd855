"""One rank of test_grpo_distributed.py's 2-process CPU DDP run of GRPOStage, and the one-process reference.

Run by the test as `python3 -m tests.stages.grpo_ddp_worker OUT_DIR` in two processes with LOCAL_RANK,
MASTER_ADDR and MASTER_PORT set (Lightning then joins them instead of launching its own).
"""

from __future__ import annotations

import os
import sys
import zlib
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.strategies import DDPStrategy, ModelParallelStrategy

from valley3.data.batch import PromptBatch
from valley3.data.schema import Sample, Turn
from valley3.models import OmniModel
from valley3.models.decoders import HFDecoder
from valley3.rewards import Reward, RewardContext
from valley3.stages.grpo import GRPOStage

STEPS = 3  # optimiser steps: the 4 rollouts below, one of which keeps no group on any rank
# Each rank's prompts per rollout; "flat" prompts score 1.0 for every completion, so dynamic sampling drops them.
# Rollout 1: rank 0 keeps nothing while rank 1 trains; 2: 1 group vs 2 (micro-batches of one group each);
# 3: no rank keeps a group (no step anywhere); 4: 2 groups vs 1.
RANKS = [[["flat-a", "flat-b"], ["p-c", "flat-c"], ["flat-d", "flat-e"], ["p-f", "p-g"]],
         [["p-a", "p-b"], ["p-d", "p-e"], ["flat-f", "flat-g"], ["p-h", "flat-h"]]]


class Flat(Reward):
    name = "flat"

    def score(self, prompt, completion: str, context: RewardContext) -> float:
        return 1.0 if prompt.id.startswith("flat") else float(sum(context.token_ids) % 7)


class PerPromptSeeds(GRPOStage):
    """GRPOStage whose samples depend on each prompt's id only, so a prompt draws the same group whichever rank or
    batch position it has; records each rollout's global loss."""

    def sample_groups(self, policy, prompts, first, step, seed, sampling):
        return [policy.generate([p], n=sampling.group_size, max_new_tokens=sampling.max_new_tokens,
                                temperature=sampling.temperature, seed=zlib.crc32(p.id.encode()))[0] for p in prompts]

    def training_step(self, batch: PromptBatch, batch_idx: int) -> dict[str, Any] | None:
        out = super().training_step(batch, batch_idx)
        vars(self).setdefault("losses", []).append(out.get("losses"))
        return out

    def log_dict(self, metrics: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        vars(self).setdefault("entropy", []).append(metrics.get("train/entropy"))
        super().log_dict(metrics, *args, **kwargs)


def prompts(ids: list[str]) -> PromptBatch:
    return PromptBatch([Sample(i, [Turn("user", f"Describe item {i}."), Turn("assistant", "red")]) for i in ids],
                       torch.tensor(0))


def fit(batches: list[list[str]], devices: int = 1, strategy: Any = "auto") -> PerPromptSeeds:
    torch.manual_seed(0)
    stage = PerPromptSeeds(OmniModel(HFDecoder("tiny-qwen3")), rewards=[Flat()], default_lr=1e-2,
                           sampling={"group_size": 4, "max_new_tokens": 6}, dynamic_sampling=True, max_rounds=1,
                           micro_batch_size=4)
    trainer = L.Trainer(accelerator="cpu", devices=devices, strategy=strategy, max_steps=STEPS, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        use_distributed_sampler=False)  # each rank gets its own batches
    trainer.fit(stage, torch.utils.data.DataLoader([prompts(b) for b in batches], batch_size=None))
    return stage


def main(out: str) -> None:
    rank = int(os.environ["LOCAL_RANK"])
    stage = fit(RANKS[rank], 2, DDPStrategy(find_unused_parameters=False))
    try:  # FSDP would hang in decoding (a data-dependent number of all-gathers per rank): refused up front
        fit(RANKS[rank], 2, ModelParallelStrategy(data_parallel_size=2, tensor_parallel_size=1))
        refused = ""
    except ValueError as err:
        refused = str(err)
    torch.save({"state": stage.model.state_dict(), "losses": stage.losses, "entropy": stage.entropy,
                "steps": stage.global_step,
                "rollouts": stage.rollout_step, "fsdp_refused": refused}, Path(out) / f"rank{rank}.pt")


if __name__ == "__main__":
    main(*sys.argv[1:])

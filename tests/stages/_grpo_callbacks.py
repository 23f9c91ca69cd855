"""Callbacks GRPO tests load: a per-rollout log (prompts, rewards, losses) flushed at once (the process may be killed)."""

from __future__ import annotations

import json

import lightning as L


class RolloutLog(L.Callback):
    """Appends {"step", "global_step", "ids", "rewards", "losses"} per training step to a JSONL file.

    Args:
        path: the JSONL file.
    """

    def __init__(self, path: str):
        self.path = path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        row = {"step": outputs["step"], "global_step": trainer.global_step, "ids": outputs["prompt_ids"],
               "rewards": outputs.get("rewards"), "losses": outputs.get("losses")}
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")

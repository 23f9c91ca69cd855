"""Callbacks the resume test's subprocesses load from their config: a loss log and a kill -9 at a given step."""

from __future__ import annotations

import json
import os
import signal

import lightning as L


class LossLog(L.Callback):
    """Appends {"step", "loss"} per training step to a JSONL file, flushed at once (the process may be killed).

    Args:
        path: the JSONL file.
    """

    def __init__(self, path: str):
        self.path = path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        with open(self.path, "a") as f:
            row = {"step": trainer.global_step, "loss": float(loss), "ids": getattr(batch, "sample_ids", None),
                   "epoch_batches": trainer.num_training_batches}
            f.write(json.dumps(row) + "\n")


class KillAt(L.Callback):
    """SIGKILLs this process after training step `$VALLEY3_KILL_AT` (unset: never), like a node lost mid-epoch."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if str(trainer.global_step) == os.environ.get("VALLEY3_KILL_AT"):
            os.kill(os.getpid(), signal.SIGKILL)

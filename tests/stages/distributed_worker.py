"""One rank of test_distributed.py's 2-process CPU run: DDP, then FSDP2, then an FSDP2 resume from its checkpoint.

Run by the test as `python3 -m tests.stages.distributed_worker BATCHES OUT CKPT_DIR` in two processes with
LOCAL_RANK, MASTER_ADDR and MASTER_PORT set (Lightning then joins them instead of launching its own).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.strategies import DDPStrategy, ModelParallelStrategy, Strategy
from torch.distributed._composable import checkpoint
from torch.distributed.fsdp import FSDPModule

from tests.conftest import tiny_omni
from valley3.data.batch import Batch, Media
from valley3.stages import OmniStage

STEPS = 3  # two batches per epoch: step 3 opens epoch 1, where the resumed run starts


class RecordingStage(OmniStage):
    """OmniStage that keeps the value of every `train/loss` it logs (the global-batch mean)."""

    @property
    def losses(self) -> list[float]:
        return vars(self).setdefault("_losses", [])

    def log(self, name: str, value: Any, *args: Any, **kwargs: Any) -> None:
        if name == "train/loss":
            self.losses.append(float(value))
        super().log(name, value, *args, **kwargs)


def fit(batches: list[Batch], devices: int = 1, strategy: Strategy | str = "auto", seed: int = 0,
        ckpt_path: str | None = None, checkpoint_dir: str | None = None, **stage_args: Any) -> RecordingStage:
    """A tiny OmniModel's stage trained on `batches` (this rank's, in order) for STEPS steps; `.losses` per step."""
    stage = RecordingStage(tiny_omni(seed=seed), default_lr=1e-3, **stage_args)
    callbacks = [ModelCheckpoint(checkpoint_dir, save_top_k=-1, save_on_train_epoch_end=True)] if checkpoint_dir else []
    trainer = L.Trainer(
        accelerator="cpu", devices=devices, strategy=strategy, max_steps=STEPS, logger=False, callbacks=callbacks,
        enable_checkpointing=bool(callbacks), enable_progress_bar=False, enable_model_summary=False,
        use_distributed_sampler=False,  # each rank gets its own batches, not a shard of a shared list
    )
    trainer.fit(stage, torch.utils.data.DataLoader(batches, batch_size=None), ckpt_path=ckpt_path)
    return stage


def main(batches_path: str, out: str, checkpoint_dir: str) -> None:
    rank = int(os.environ["LOCAL_RANK"])
    with torch.serialization.safe_globals([Batch, Media]):  # the typed batches; still no arbitrary unpickling
        batches = torch.load(batches_path, weights_only=True)[f"rank{rank}"]
    fsdp = lambda: ModelParallelStrategy(data_parallel_size=2, tensor_parallel_size=1)
    result = {"ddp": fit(batches, 2, DDPStrategy(find_unused_parameters=False)).losses}
    sharded = fit(batches, 2, fsdp(), checkpoint_dir=checkpoint_dir, fsdp={"activation_checkpointing": True})
    result["fsdp"] = sharded.losses
    result["sharded_units"] = sum(isinstance(m, FSDPModule) for m in sharded.modules())
    result["checkpointed_blocks"] = sum(checkpoint.state(m) is not None for m in sharded.modules())
    # A differently initialised model resumed from the end of epoch 0 must continue exactly like the run that saved it.
    resumed_from = str(Path(checkpoint_dir) / "epoch=0-step=2.ckpt")
    result["fsdp_resumed"] = fit(batches, 2, fsdp(), seed=1, ckpt_path=resumed_from).losses
    result["checkpoint_is_sharded"] = Path(resumed_from).is_dir()
    if rank == 0:
        Path(out).write_text(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:])

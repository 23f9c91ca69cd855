"""One rank of test_distributed.py's FSDP2 run over ranks with different picture kinds (images and video vs images).

Run as `python3 -m tests.stages.fsdp_media_worker BATCHES OUT` in two processes with LOCAL_RANK, MASTER_ADDR and
MASTER_PORT set.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from lightning.pytorch.strategies import ModelParallelStrategy

from tests.stages.distributed_worker import fit
from valley3.data.batch import Batch, Media


def main(batches_path: str, out: str) -> None:
    rank = int(os.environ["LOCAL_RANK"])
    with torch.serialization.safe_globals([Batch, Media]):
        batches = torch.load(batches_path, weights_only=True)[f"rank{rank}"]
    losses = fit(batches, 2, ModelParallelStrategy(data_parallel_size=2, tensor_parallel_size=1)).losses
    if rank == 0:
        Path(out).write_text(json.dumps(losses))


if __name__ == "__main__":
    main(*sys.argv[1:])

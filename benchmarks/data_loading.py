"""Data-loading benchmark: samples/s of JSONL + media files vs litdata shards on the demo data, and the shard build.

    python benchmarks/data_loading.py [--products 96] [--epochs 2] [--workers 0]

Writes the demo data into a temporary folder, shards its omni training file with `valley3 data shard` (timed:
the cost of building the shards, in its own process as a user runs it), then reads every training sample through
the same DataModule settings and processor twice — OmniDataModule over the JSONL file and StreamingDataModule
over the shards — alternating the two readers per epoch so both see the same machine state. Reported: samples/s
per reader (the processor included: decoding, resizing, log-mel, tokenising) and their ratio, measured in one run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from valley3.data.datamodules import OmniDataModule, StreamingDataModule
from valley3.data.demo import make_demo


def _epoch_rate(dm, processor) -> float:
    dm.connect(processor, 1024)
    dm.trainer = SimpleNamespace(global_rank=0, world_size=1)
    dm.setup("fit")
    start, n = time.perf_counter(), 0
    for batch in dm.train_dataloader():
        n += len(batch.sample_ids)
    return n / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers of both readers")
    args = parser.parse_args(argv)
    from tests.conftest import tiny_omni
    from valley3.stages.base import build_processor

    processor = build_processor(tiny_omni())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_demo(root / "demo", n_products=args.products, speech="synthetic")
        data = root / "demo/omni_train.jsonl"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "valley3.cli", "data", "shard", "--data", str(data), "--out",
                        str(root / "shards")], check=True, capture_output=True)
        build = time.perf_counter() - start
        settings = {"batch_size": 8, "num_workers": args.workers, "seed": 0}
        rates: dict[str, list[float]] = {"jsonl": [], "shards": []}
        for _ in range(args.epochs):
            rates["jsonl"].append(_epoch_rate(OmniDataModule(train=str(data), **settings), processor))
            rates["shards"].append(_epoch_rate(StreamingDataModule(train=str(root / "shards"), **settings), processor))
        samples = len(data.read_text().splitlines())
    best = {name: max(values) for name, values in rates.items()}
    print(f"demo omni_train: {samples} samples; shard build {build:.1f} s ({samples / build:.1f} samples/s, "
          "process start included)")
    print("| reader | samples/s (best of epochs) | vs JSONL |\n|---|---:|---:|")
    for name, rate in best.items():
        print(f"| {name} | {rate:.1f} | {rate / best['jsonl']:.2f}x |")


if __name__ == "__main__":
    main()

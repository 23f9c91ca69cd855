"""Data-loading benchmark: samples/s of JSONL + media files vs litdata shards on the demo data, and the shard build.

    PYTHONPATH=src python benchmarks/data_loading.py [--products 96] [--epochs 2] [--workers 0]

Writes the demo data into a temporary folder, shards its omni training file with `valley3 data shard` (timed:
the cost of building the shards, in its own process as a user runs it), then reads every training sample through
the same DataModule settings and processor twice — OmniDataModule over the JSONL file and StreamingDataModule
over the shards — alternating the two readers per epoch so both see the same machine state. Reported: samples/s
per reader (the processor included: decoding, resizing, log-mel, tokenising) and their ratio, measured in one run,
plus the sizes on disk and the machine's load average. Rates are given per wall second and per CPU second (this
process with --workers 0, and the shard command's processes): on a machine other jobs share, the wall rates move
with their load and the CPU rates much less.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from valley3.data.datamodules import OmniDataModule, StreamingDataModule
from valley3.data.demo import make_demo

ROOT = Path(__file__).resolve().parents[1]


def _cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _epoch_rates(dm, processor) -> tuple[float, float]:
    """(samples per wall second, samples per CPU second) of one epoch. The CPU seconds are this process's and its
    reaped children's: exact with --workers 0 (persistent workers are reaped later, so with workers the CPU rate is
    an upper bound)."""
    dm.connect(processor, 1024)
    dm.trainer = SimpleNamespace(global_rank=0, world_size=1)
    dm.setup("fit")
    start, n = time.perf_counter(), 0
    cpu = _cpu_seconds(resource.RUSAGE_SELF) + _cpu_seconds(resource.RUSAGE_CHILDREN)
    for batch in dm.train_dataloader():
        n += len(batch.sample_ids)
    cpu = _cpu_seconds(resource.RUSAGE_SELF) + _cpu_seconds(resource.RUSAGE_CHILDREN) - cpu
    return n / (time.perf_counter() - start), n / cpu


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers of both readers")
    args = parser.parse_args(argv)
    from valley3.models import OmniModel
    from valley3.models.audio import WhisperEncoder
    from valley3.models.decoders import HFDecoder
    from valley3.models.vision import SigLIPEncoder
    from valley3.stages.base import build_processor

    # the processor of configs/model/tiny_omni.yaml: its token counts and media sizes (the model never runs)
    model = OmniModel(HFDecoder("tiny-qwen3"), vision=SigLIPEncoder("tiny-siglip"),
                      audio=WhisperEncoder("tiny-whisper"))
    processor = build_processor(model)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_demo(root / "demo", n_products=args.products, speech="synthetic")
        data = root / "demo/omni_train.jsonl"
        # this checkout's `valley3 data shard`, in its own process as a user runs it
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
        start, cpu = time.perf_counter(), _cpu_seconds(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, "-m", "valley3.cli", "data", "shard", "--data", str(data), "--out",
                        str(root / "shards")], check=True, capture_output=True, env=env)
        build, build_cpu = time.perf_counter() - start, _cpu_seconds(resource.RUSAGE_CHILDREN) - cpu
        tool = json.loads((root / "shards/summary.json").read_text())
        source_bytes = data.stat().st_size + tool["media_bytes"]
        shard_bytes = sum(f.stat().st_size for f in (root / "shards").rglob("*") if f.is_file())
        settings = {"batch_size": 8, "num_workers": args.workers, "seed": 0}
        rates: dict[str, list[tuple[float, float]]] = {"jsonl": [], "shards": []}
        for _ in range(args.epochs):  # alternating, so both readers meet the same machine state
            rates["jsonl"].append(_epoch_rates(OmniDataModule(train=str(data), **settings), processor))
            rates["shards"].append(_epoch_rates(StreamingDataModule(train=str(root / "shards"), **settings), processor))
        samples = len(data.read_text().splitlines())
    best = {name: (max(w for w, _ in values), max(c for _, c in values)) for name, values in rates.items()}
    print(f"demo omni_train ({args.products} products): {samples} samples, {tool['media_files']} media files, "
          f"{source_bytes / 1e6:.1f} MB as JSONL + files, {shard_bytes / 1e6:.1f} MB as shards "
          f"({tool['chunks']['media']} media chunks)")
    print(f"shard build: {build:.1f} s wall with the process start, {build_cpu:.1f} CPU s "
          f"({samples / build_cpu:.1f} samples per CPU s); the tool's own summary: {tool['seconds']:.1f} s, "
          f"{tool['items_per_s']:.1f} samples/s")
    print(f"readers: batch 8, {args.workers} workers, {args.epochs} epoch(s) each, alternating; "
          f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    print("| reader | samples/s (best epoch) | samples per CPU s (best epoch) | vs JSONL (wall / CPU) |\n"
          "|---|---:|---:|---:|")
    for name, (wall, cpu) in best.items():
        print(f"| {name} | {wall:.1f} | {cpu:.1f} | {wall / best['jsonl'][0]:.2f}x / {cpu / best['jsonl'][1]:.2f}x |")


if __name__ == "__main__":
    main()

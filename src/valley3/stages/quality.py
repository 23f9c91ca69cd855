"""`valley3 data quality`: instruction-following difficulty (IFD) per sample under a checkpoint, as a meta field.

IFD (Li et al., 2024, "From Quantity to Quality") is the answer's perplexity given the prompt divided by its
perplexity without it: near 1 the prompt barely helps the model produce the answer (hard, or misaligned when
above 1); far below 1 the answer follows easily from the prompt. The score goes into ``meta.<field>``, where
`Mixture(curriculum=field)` orders an epoch by it and `--max-score` filters.
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lightning.fabric.utilities.apply_func import move_data_to_device

from valley3.data.collate import PadCollator
from valley3.data.curation import raw_records, with_meta
from valley3.data.formats import read_samples
from valley3.data.media import MediaError
from valley3.data.processor import IGNORE_INDEX, SampleError
from valley3.data.schema import Sample, Turn
from valley3.data.summary import write_summary
from valley3.stages.base import OmniStage
from valley3.stages.reject_sample import load_stage


def without_prompt(sample: Sample) -> Sample:
    """The same answers with every user turn (and its media) emptied: what the answer costs unprompted."""
    turns = [Turn("user", "") if t.role == "user" else t for t in sample.turns if t.role in ("user", "assistant")]
    return Sample(sample.id, turns, [], sample.source, dict(sample.meta))


@torch.no_grad()
def answer_losses(stage: OmniStage, samples: Sequence[Sample], batch_size: int = 8) -> list[float | None]:
    """Mean next-token loss over each sample's assistant tokens (None where the sample cannot be processed)."""
    pad, device = PadCollator(stage.processor.pad_id), next(stage.parameters()).device
    losses: list[float | None] = [None] * len(samples)
    for start in range(0, len(samples), batch_size):
        chunk = []
        for index in range(start, min(start + batch_size, len(samples))):
            try:
                chunk.append((index, stage.processor(samples[index])))
            except (MediaError, SampleError) as err:
                warnings.warn(f"skipping sample {samples[index].id!r} ({samples[index].source}): {err}", stacklevel=2)
        if not chunk:
            continue
        batch = move_data_to_device(pad([example for _, example in chunk]), device)
        logits = stage.logits(batch)
        targets = batch.labels[:, 1:]
        token = F.cross_entropy(logits[:, :-1].transpose(1, 2).float(), targets, ignore_index=IGNORE_INDEX,
                                reduction="none")
        counts = (targets != IGNORE_INDEX).sum(dim=1)
        for row, (index, _) in enumerate(chunk):
            if counts[row] > 0:
                losses[index] = float(token[row].sum() / counts[row])
    return losses


def ifd_scores(stage: OmniStage, samples: Sequence[Sample], batch_size: int = 8) -> list[float | None]:
    """exp(loss with prompt - loss without): the ratio of the two perplexities, per sample."""
    was_training = stage.training
    stage.eval()
    try:
        prompted = answer_losses(stage, samples, batch_size)
        alone = answer_losses(stage, [without_prompt(s) for s in samples], batch_size)
    finally:
        stage.train(was_training)
    return [None if a is None or b is None else math.exp(a - b) for a, b in zip(prompted, alone)]


def score_file(ckpt_path: str | OmniStage, data: str, out: str, field: str = "ifd", max_score: float | None = None,
               batch_size: int = 8, device: str | None = None) -> dict[str, Any]:
    """Write `<out>/scored.jsonl`: the input records (in order) with ``meta.<field>``; records above `max_score`
    or that could not be scored are left out and counted in `<out>/summary.json`."""
    start = time.perf_counter()
    samples, lines = read_samples(data), raw_records(data)
    stage = ckpt_path if isinstance(ckpt_path, OmniStage) else load_stage(ckpt_path, device or "cpu")
    scores = ifd_scores(stage, samples, batch_size)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    kept = above = 0
    with open(out_dir / "scored.jsonl", "w", encoding="utf-8") as f:
        for index, score in enumerate(scores):
            if score is None:
                continue
            if max_score is not None and score > max_score:
                above += 1
                continue
            f.write(with_meta(lines[index], {field: round(score, 6)}, f"{data} record {index}") + "\n")
            kept += 1
    valid = [s for s in scores if s is not None]
    summary = {"tool": "quality", "data": str(data), "field": field, "before": len(samples), "after": kept,
               "skipped": {"unscorable": len(scores) - len(valid), "above_max_score": above},
               "mean": round(sum(valid) / len(valid), 6) if valid else None}
    return write_summary(out_dir, summary, start)


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("quality", help="instruction-following difficulty (IFD) of each sample under a checkpoint")
    p.add_argument("--ckpt", required=True, help="a checkpoint written by valley3 fit")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--field", default="ifd", help="meta field to write (a Mixture's curriculum can read it)")
    p.add_argument("--max-score", type=float, help="leave out samples scoring above this (IFD > 1: the prompt hurts)")
    p.add_argument("--batch-size", type=int, default=8)


def run_command(args: argparse.Namespace) -> dict[str, Any]:
    summary = score_file(args.ckpt, args.data, args.out, args.field, args.max_score, args.batch_size)
    print(json.dumps(summary, indent=2))
    return summary

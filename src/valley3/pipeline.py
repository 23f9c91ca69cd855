"""Runs a recipe's stages in order, each from the previous stage's weights, and prints a summary table."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from valley3.callbacks import LossSummary

# A fit runner: LightningCLI arguments -> the CLI object after `fit` (valley3.cli.main in practice; injected so
# this module does not import the command line above it).
FitRunner = Callable[[list[str]], Any]
DONE = "summary.json"  # written last: a step whose folder holds it is complete and is skipped on a re-run


@dataclass
class Step:
    """One pipeline entry: a `fit` over LightningCLI config files, or a `reject_sample` filter.

    Args:
        name: the step's folder under the pipeline's `out`; `{name}` in later steps' strings means that folder.
        fit: LightningCLI config files, later ones overriding earlier ones (paths relative to the pipeline file).
        args: extra LightningCLI arguments, e.g. `--data.init_args.train={s2_filter}/kept.jsonl`.
        init_from: "previous" (the last fit step's final checkpoint), null (the config's own weights) or a path.
        reject_sample: keywords of `valley3.stages.reject_sample.reject_sample` (data, k, band, scorer, ...);
            its checkpoint defaults to the last fit step's.
    """

    name: str
    fit: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    init_from: str | None = "previous"
    reject_sample: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if bool(self.fit) == (self.reject_sample is not None):
            raise ValueError(f"pipeline step {self.name!r}: give exactly one of 'fit' or 'reject_sample'")


@dataclass
class Pipeline:
    """A recipe: steps run in order under `out`, with `args` added to every fit (e.g. a shorter `max_steps`)."""

    steps: list[Step]
    out: str = "runs/pipeline"
    args: list[str] = field(default_factory=list)
    root: Path = Path(".")  # the pipeline file's folder: `fit` config paths are relative to it

    @classmethod
    def from_yaml(cls, path: str | Path) -> Pipeline:
        path = Path(path)
        spec = yaml.safe_load(path.read_text()) or {}
        unknown = set(spec) - {"steps", "out", "args"}
        if unknown or not spec.get("steps"):
            raise ValueError(f"{path}: a pipeline has `steps` (and optionally `out`, `args`); got keys {sorted(spec)}")
        steps = []
        for i, entry in enumerate(spec["steps"]):
            try:
                steps.append(Step(**entry))
            except TypeError as err:
                raise ValueError(f"{path}: step {i} ({entry.get('name', '?')}): {err}") from None
        names = [s.name for s in steps]
        if len(set(names)) != len(names):
            raise ValueError(f"{path}: step names must be unique, got {names}")
        return cls(steps, spec.get("out", cls.out), list(spec.get("args", [])), path.parent)


def run_pipeline(
    pipeline: Pipeline, fit: FitRunner, out: str | None = None, extra_args: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """Runs every step not yet done and returns one summary row per step (done earlier or now).

    A fit step's folder gets `checkpoints/last.ckpt` while it runs and `final.ckpt` + `summary.json` when it ends;
    a re-run skips finished steps and resumes an interrupted one from its `last.ckpt`.
    """
    out_dir = Path(out or pipeline.out)
    folders = {s.name: out_dir / s.name for s in pipeline.steps}
    last_ckpt: Path | None = None
    rows = []
    for step in pipeline.steps:
        folder = folders[step.name]
        done = folder / DONE
        if done.exists():
            row = json.loads(done.read_text()) | {"status": "skipped (done)"}
        elif step.fit:
            row = _fit(step, pipeline, folder, folders, last_ckpt, [*pipeline.args, *extra_args], fit)
        else:
            row = _reject(step, folder, folders, last_ckpt)
        if step.fit:
            last_ckpt = folder / "final.ckpt"
        rows.append(row)
        print(f"pipeline: step {step.name}: {row['status']}", flush=True)
    return rows


def _fill(text: str, folders: dict[str, Path]) -> str:
    """`{step}` -> that step's folder."""
    for name, folder in folders.items():
        text = text.replace("{" + name + "}", str(folder))
    return text


def _fit(step, pipeline, folder, folders, last_ckpt, common_args, fit) -> dict[str, Any]:
    argv = ["fit"]
    for config in step.fit:
        argv += ["--config", str(pipeline.root / config)]
    init_from = last_ckpt if step.init_from == "previous" else step.init_from
    if step.init_from == "previous" and last_ckpt is not None and not last_ckpt.exists():
        raise FileNotFoundError(f"step {step.name!r} starts from {last_ckpt}, which the previous step did not write")
    if init_from is not None:
        argv.append(f"--model.init_args.init_from={_fill(str(init_from), folders)}")
    checkpoint = {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                  "init_args": {"dirpath": str(folder / "checkpoints"), "save_last": True, "save_top_k": 0}}
    argv += [f"--trainer.default_root_dir={folder}", f"--trainer.callbacks+={json.dumps(checkpoint)}",
             "--trainer.callbacks+=valley3.callbacks.LossSummary"]
    argv += [_fill(a, folders) for a in (*step.args, *common_args)]
    resume = folder / "checkpoints" / "last.ckpt"
    resumed = resume.exists()
    if resumed:  # an interrupted run of this step: continue it (weights, optimizer and data position)
        argv.append(f"--ckpt_path={resume}")
    start = time.perf_counter()
    cli = fit(argv)
    seconds = time.perf_counter() - start
    trainer, stage = cli.trainer, cli.model
    losses = next(c for c in trainer.callbacks if isinstance(c, LossSummary))
    first, last = losses.first_last() if losses.losses else (float("nan"), float("nan"))
    trained = [name for name, lr in stage.lrs.items() if lr > 0]
    row = {"step": step.name, "stage": type(stage).__name__,
           "trains": "all" if len(trained) == len(stage.lrs) else ", ".join(trained),
           "steps": trainer.global_step, "tokens": stage.tokens_seen, "seconds": round(seconds, 1),
           "first_loss": first, "final_loss": last, "status": "resumed" if resumed else "ran"}
    # Every rank takes part in saving (FSDP2 writes a folder of shards); rank 0 then renames it into place.
    tmp = folder / "final.ckpt.tmp"
    trainer.save_checkpoint(tmp, weights_only=True)  # weights for the next step; last.ckpt keeps the rest
    if trainer.is_global_zero:
        os.replace(tmp, folder / "final.ckpt")
        _write_done(folder, row)
    trainer.strategy.barrier("pipeline_step_done")  # under torchrun/srun no rank moves on before the files exist
    return row


def _reject(step, folder, folders, last_ckpt) -> dict[str, Any]:
    from valley3.stages.reject_sample import reject_sample  # heavy imports only when a pipeline filters

    options = {k: _fill(v, folders) if isinstance(v, str) else v for k, v in step.reject_sample.items()}
    options.setdefault("ckpt_path", str(last_ckpt) if last_ckpt else None)
    if not options["ckpt_path"]:
        raise ValueError(f"step {step.name!r}: reject_sample needs a checkpoint (a fit step before it, or ckpt_path)")
    start = time.perf_counter()
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    if distributed and torch.distributed.get_rank() != 0:  # launched by torchrun/srun: rank 0 filters, the rest wait
        torch.distributed.barrier()
        return json.loads((folder / DONE).read_text())
    stats = reject_sample(out=str(folder), **options)
    row = {"step": step.name, "stage": "reject-sample", "trains": "-", "steps": 0,
           "tokens": 0, "seconds": round(time.perf_counter() - start, 1), "first_loss": None, "final_loss": None,
           "status": f"kept {stats['kept']}/{stats['samples']}"}
    _write_done(folder, row)
    if distributed:
        torch.distributed.barrier()
    return row


def _write_done(folder: Path, row: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (DONE + ".tmp")
    tmp.write_text(json.dumps(row, indent=1))
    os.replace(tmp, folder / DONE)


def format_table(rows: list[dict[str, Any]]) -> str:
    """A markdown table: step, stage, trained components, steps, tokens, time, loss first -> final, status."""

    def loss(row):
        if row["first_loss"] is None or math.isnan(row["first_loss"]):  # a filter step, or nothing left to train
            return "-"
        return f"{row['first_loss']:.3f} -> {row['final_loss']:.3f}"

    lines = ["| step | stage | trains | steps | tokens | time (s) | loss first -> final | status |",
             "|---|---|---|---:|---:|---:|---|---|"]
    for r in rows:
        lines.append(f"| {r['step']} | {r['stage']} | {r['trains']} | {r['steps']} | {r['tokens']:,} | "
                     f"{r['seconds']:.1f} | {loss(r)} | {r['status']} |")
    return "\n".join(lines)

"""Rejection sampling (`valley3 data reject-sample`): answer each prompt k times with a checkpoint, keep a pass-rate band."""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device

from valley3.data.collate import PadCollator
from valley3.data.curation import Band, raw_records, rejection_stats, write_kept
from valley3.data.formats import read_samples
from valley3.data.media import MediaError
from valley3.data.processor import Example, SampleError
from valley3.data.schema import Sample
from valley3.rewards import SCORERS, RuleScorer
from valley3.stages.base import OmniStage

# (batch, **generation kwargs) -> one decoded answer per sample of the batch; default `OmniStage.generate_text`.
Generate = Callable[..., list[str]]


def load_stage(ckpt_path: str | Path, device: str | torch.device = "cpu") -> OmniStage:
    """The stage a Lightning checkpoint was trained with, its model rebuilt from the hyperparameters, in eval mode.

    Loaded with ``weights_only=True``; the stage class must be one of valley3's (Lightning refuses others).
    """
    import valley3.stages  # noqa: F401  every stage class imported, so the checkpoint's class path resolves

    try:
        stage = OmniStage.load_from_checkpoint(ckpt_path, map_location="cpu", weights_only=True)
    except TypeError as err:
        if "model" not in str(err):
            raise
        raise ValueError(
            f"{ckpt_path}: the checkpoint's hyperparameters hold no model config (its stage was built in Python "
            "around a model object); train through `valley3 fit` so the checkpoint can rebuild its model"
        ) from err
    return stage.to(device).eval()


def _seed(seed: int, batch_index: int, attempt: int) -> int:
    """An independent seed per (run seed, batch, try): runs repeat exactly; tries and seeds differ."""
    return int(np.random.SeedSequence([seed, batch_index, attempt]).generate_state(1)[0])


def _prompts(
    samples: Sequence[Sample], stage: OmniStage, batch_size: int, skipped: dict[int, tuple[str, str]]
) -> Iterator[list[tuple[int, Example]]]:
    """Chunks of up to `batch_size` processed prompts (index, example); unusable samples go to `skipped`."""
    chunk = []
    for index, sample in enumerate(samples):
        if sample.turns[-1].role != "assistant":
            skipped[index] = ("no_reference", "the last turn is not an assistant answer to score against")
            continue
        try:
            chunk.append((index, stage.processor(sample, generation=True)))
        except (MediaError, SampleError) as err:
            skipped[index] = ("media" if isinstance(err, MediaError) else "unusable", str(err))
            warnings.warn(f"skipping sample {sample.id!r} ({sample.source}): {err}", stacklevel=2)
            continue
        if len(chunk) == batch_size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def sample_answers(
    stage: OmniStage,
    samples: Sequence[Sample],
    k: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    max_new_tokens: int | None = None,
    batch_size: int = 8,
    seed: int = 0,
    generate: Generate | None = None,
) -> tuple[dict[int, list[str]], dict[int, tuple[str, str]]]:
    """k answers per sample index, and (reason, message) per skipped sample index.

    Each batch is processed once and generated k times, each try under its own seed (see `_seed`), so the
    answers depend on (seed, batch_size) and not on the caller's random state. temperature 0 is greedy.
    """
    generate = generate or stage.generate_text
    device = next(stage.parameters()).device
    pad = PadCollator(stage.processor.pad_id, padding_side="left")
    kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens or stage.hparams.max_new_tokens}
    if temperature > 0:
        kwargs |= {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": top_k}
    answers: dict[int, list[str]] = {}
    skipped: dict[int, tuple[str, str]] = {}
    stage.processor.max_len = stage.max_len  # a longer prompt is skipped, never truncated
    forked = [device] if device.type == "cuda" else []
    training = stage.training
    stage.eval()  # no dropout while sampling; the caller's mode comes back after
    try:
        with torch.inference_mode(), torch.random.fork_rng(devices=forked):
            for batch_index, chunk in enumerate(_prompts(samples, stage, batch_size, skipped)):
                batch = move_data_to_device(pad([example for _, example in chunk]), device)
                tries = []
                for attempt in range(k):
                    torch.manual_seed(_seed(seed, batch_index, attempt))
                    tries.append(list(generate(batch, **kwargs)))
                    if len(tries[-1]) != len(chunk):
                        raise ValueError(f"generate gave {len(tries[-1])} answers for a batch of {len(chunk)} prompts")
                for row, (index, _) in enumerate(chunk):
                    answers[index] = [outputs[row] for outputs in tries]
    finally:
        stage.train(training)
    return answers, skipped


def _check_references(samples: Sequence[Sample], rule: RuleScorer) -> dict[int, str]:
    """The rule each scorable sample's reference takes; raises naming the sample when one does not fit it."""
    kinds = {}
    for i, s in enumerate(samples):
        if s.turns[-1].role == "assistant":
            try:
                kinds[i] = rule.check(s.turns[-1].content)
            except ValueError as err:
                raise ValueError(f"{s.source} (sample {s.id!r}): {err}") from None
    return kinds


def _score(
    samples: Sequence[Sample], answers: dict[int, list[str]], skipped: dict[int, tuple[str, str]],
    rule: RuleScorer, band: Band, k: int,
) -> tuple[list[int], list[tuple[int, float]], list[dict[str, Any]]]:
    """Pass counts of the scored samples, (index, pass rate) of the kept ones, and one record per sample."""
    passes, kept, records = [], [], []
    for i, sample in enumerate(samples):
        record: dict[str, Any] = {"id": sample.id, "source": sample.source}
        if i in skipped:
            records.append(record | {"skipped": skipped[i][0], "error": skipped[i][1]})
            continue
        reference = sample.turns[-1].content
        scores = [rule.score(a, reference) for a in answers[i]]
        n = sum(rule.passed(s, reference) for s in scores)
        verdict = band.verdict(n, k)
        passes.append(n)
        if verdict is None:
            kept.append((i, n / k))
        record |= {"kind": rule.kind_for(reference), "passes": n, "dropped": verdict, "scores": scores}
        records.append(record | {"answers": answers[i]})
    return passes, kept, records


def reject_sample(
    ckpt_path: str | Path | OmniStage,
    data: str | Path,
    out: str | Path,
    k: int = 4,
    band: tuple[float, float] = (0.0, 1.0),
    scorer: str = "auto",
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    max_new_tokens: int | None = None,
    batch_size: int = 8,
    seed: int = 0,
    json_threshold: float = 1.0,
    format: str = "auto",
    media_root: str | None = None,
    add_meta: bool = True,
    device: str | None = None,
    generate: Generate | None = None,
) -> dict[str, Any]:
    """Answer every prompt of `data` k times, score each answer against the held-out final assistant turn,
    keep the samples whose pass rate lies in `band`, and write into `out`: `kept.jsonl` (the kept input lines,
    in input order, with ``meta.pass_rate``), `stats.json` (returned) and `samples.jsonl` (per sample: scores,
    answers, why dropped or skipped).

    Args:
        ckpt_path: a Lightning checkpoint written by `valley3 fit` (its stage and model come from it), or a
            loaded stage.
        data: a messages JSONL or LLaVA JSON/JSONL file (read with `formats.read_samples`).
        out: output folder.
        k: tries per prompt.
        band: (low, high) pass rates kept; see `Band` (ends at 0 and 1 are open: (0, 1) drops 0/k and k/k).
        scorer: "auto", "exact", "choice" or "json" (see `valley3.rewards.RuleScorer`).
        temperature: sampling temperature; 0 = greedy (then k must be 1).
        top_p: nucleus sampling mass (1 = off).
        top_k: top-k sampling (0 = off).
        max_new_tokens: answer budget (default: the stage's `max_new_tokens`).
        batch_size: prompts per generation batch (left-padded).
        seed: run seed; each (batch, try) derives its own from it.
        json_threshold: a JSON answer passes when its attribute F1 reaches this.
        format: "auto", "messages" or "llava".
        media_root: folder relative media paths resolve against (default: the data file's folder).
        add_meta: add ``meta.pass_rate`` to kept lines (False: byte-identical copies).
        device: where a checkpoint is loaded: "cuda", "cpu", ... (default: cuda when available).
        generate: replaces the stage's `generate_text(batch, **kwargs)` (tests, other inference engines).
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if temperature <= 0 and k > 1:
        raise ValueError(f"greedy decoding (temperature 0) gives the same answer {k} times; use k=1 or temperature > 0")
    start, the_band, rule = time.perf_counter(), Band(*band), RuleScorer(scorer, json_threshold)
    samples = read_samples(data, format, media_root)
    lines = raw_records(data)
    if len(lines) != len(samples):
        raise ValueError(f"{data}: read {len(samples)} samples but {len(lines)} records")
    kinds = _check_references(samples, rule)  # before any generation: a bad reference stops the run now
    if isinstance(ckpt_path, OmniStage):
        stage, ckpt_path = ckpt_path, None
    else:
        stage = load_stage(ckpt_path, device or ("cuda" if torch.cuda.is_available() else "cpu"))
    generation = {"temperature": temperature, "top_p": top_p, "top_k": top_k, "max_new_tokens": max_new_tokens,
                  "batch_size": batch_size, "seed": seed}
    answers, skipped = sample_answers(stage, samples, k, generate=generate, **generation)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    passes, kept, records = _score(samples, answers, skipped, rule, the_band, k)
    write_kept(lines, kept, out / "kept.jsonl", add_meta)
    with (out / "samples.jsonl").open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    stats = rejection_stats(passes, k, the_band, Counter(reason for reason, _ in skipped.values()))
    stats |= {
        "data": str(data),
        "ckpt_path": None if ckpt_path is None else str(ckpt_path),
        # kept.jsonl copies the input lines: relative media paths still resolve against this folder.
        "media_root": str(Path(media_root or Path(data).parent).absolute()),
        "scorer": scorer,
        "scorer_kinds": dict(Counter(kinds[i] for i in kinds if i not in skipped)),
        "generation": generation,
        "wall_s": round(time.perf_counter() - start, 2),
        "kept_path": str(out / "kept.jsonl"),
    }
    (out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    return stats


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """The `reject-sample` subcommand of `valley3 data`."""
    p = commands.add_parser(
        "reject-sample", help="answer each prompt k times with a checkpoint, keep samples by pass rate (S3)",
        description=(reject_sample.__doc__ or "").split("\n\n")[0],
    )
    return _add_arguments(p, k=4, band=(0.0, 1.0))


def add_zpd_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """The `zpd` subcommand of `valley3 data`: rejection sampling with the RL defaults (k 8, band 0.25-0.75)."""
    p = commands.add_parser(
        "zpd", help="keep the prompts in the zone of proximal development (pass rate 0.25-0.75) for GRPO",
        description=(
            "Answer each prompt k times with the current policy and keep those it answers right in 25-75% of the "
            "tries (Valley3 P2): a prompt always or never answered right gives every GRPO group equal rewards, "
            "so no gradient. The same runner and outputs as `valley3 data reject-sample`."
        ),
    )
    return _add_arguments(p, k=8, band=(0.25, 0.75))


def _add_arguments(p: argparse.ArgumentParser, k: int, band: tuple[float, float]) -> argparse.ArgumentParser:
    p.add_argument("--ckpt", required=True, help="Lightning checkpoint written by `valley3 fit`")
    p.add_argument("--data", required=True, help="messages JSONL or LLaVA JSON/JSONL file")
    p.add_argument("--out", required=True, help="output folder (kept.jsonl, stats.json, samples.jsonl)")
    p.add_argument("--k", type=int, default=k, help="tries per prompt")
    p.add_argument("--band", type=float, nargs=2, default=band, metavar=("LOW", "HIGH"),
                   help=f"pass rates kept, ends at 0 and 1 open (default {band[0]:g} {band[1]:g}; "
                        "never- and always-right are always dropped)")
    p.add_argument("--scorer", choices=SCORERS, default="auto")
    p.add_argument("--json-threshold", type=float, default=1.0, help="attribute F1 a JSON answer needs to pass")
    p.add_argument("--temperature", type=float, default=1.0, help="0 = greedy (with --k 1)")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0, help="0 = off")
    p.add_argument("--max-new-tokens", type=int, default=None, help="default: the checkpoint's stage setting")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", choices=("auto", "messages", "llava"), default="auto")
    p.add_argument("--media-root", default=None, help="folder relative media paths resolve against")
    p.add_argument("--no-meta", action="store_true", help="copy kept lines byte for byte (no meta.pass_rate)")
    p.add_argument("--device", default=None, help="default: cuda when available")
    return p


def run_command(args: argparse.Namespace) -> dict[str, Any]:
    """Run `valley3 data reject-sample` from its parsed arguments and print a summary."""
    stats = reject_sample(
        args.ckpt, args.data, args.out, k=args.k, band=tuple(args.band), scorer=args.scorer,
        temperature=args.temperature, top_p=args.top_p, top_k=args.top_k, max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size, seed=args.seed, json_threshold=args.json_threshold, format=args.format,
        media_root=args.media_root, add_meta=not args.no_meta, device=args.device,
    )
    dropped = ", ".join(f"{n} {r}" for r, n in stats["dropped"].items() if n) or "none"
    skipped = ", ".join(f"{n} {r}" for r, n in stats["skipped"].items() if n) or "none"
    print(f"kept {stats['kept']} of {stats['samples']} samples (dropped: {dropped}; skipped: {skipped})")
    print(f"pass counts: {stats['pass_histogram']}")
    print(f"kept lines: {stats['kept_path']}  (relative media resolve against {stats['media_root']})")
    return stats

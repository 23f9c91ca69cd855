"""Results of a benchmark run: a markdown table for stdout, JSON, CSV and PNG plots for the log dir, predictions
as JSONL."""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

OVERALL = "overall"
SKIPPED = "skipped"  # the `malformed` value of a per-sample record whose media or tokens were unusable


@dataclass
class ResultRow:
    """One line of the results table: a benchmark's sub-task (or ``overall``) with its headline score.

    ``details`` holds the other numbers of the row (floats are scores in [0, 1], ints are counts);
    ``malformed`` (outputs scored wrong, by failure reason) and ``skipped`` (samples whose media or
    tokens were unusable, never scored) are filled from the per-sample records by :func:`attach_counts`.
    """

    benchmark: str
    subtask: str
    metric: str
    score: float
    count: int
    details: dict[str, float | int] = field(default_factory=dict)
    malformed: dict[str, int] = field(default_factory=dict)
    skipped: int = 0


def covers(row_subtask: str, record_subtask: str) -> bool:
    """Whether a row counts a record: ``overall`` counts all, ``aspect`` counts ``aspect`` and ``aspect/...``."""
    return row_subtask in (OVERALL, record_subtask) or record_subtask.startswith(row_subtask + "/")


def attach_counts(rows: Sequence[ResultRow], records: Iterable[Mapping[str, Any]]) -> None:
    """Fill each row's ``malformed`` counts and ``skipped`` number from the per-sample records."""
    records = list(records)
    for row in rows:
        mine = [r for r in records if r["benchmark"] == row.benchmark and covers(row.subtask, r["subtask"])]
        row.skipped = sum(r["malformed"] == SKIPPED for r in mine)
        row.malformed = dict(
            sorted(Counter(r["malformed"] for r in mine if r["malformed"] not in (None, SKIPPED)).items())
        )


def _fmt(value: float) -> str:
    if isinstance(value, int):  # counts (bool is an int too)
        return str(value)
    return "nan" if math.isnan(value) else f"{100 * value:.2f}"


def markdown(rows: Sequence[ResultRow]) -> str:
    """The results table; scores ×100 (counts as they are), malformed outputs summed with their reasons."""
    lines = [
        "| benchmark | subtask | metric | score | n | malformed | skipped | details |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        bad = sum(row.malformed.values())
        reasons = ", ".join(f"{k} {v}" for k, v in row.malformed.items())
        details = " ".join(f"{k}={_fmt(v)}" for k, v in row.details.items())
        lines.append(
            f"| {row.benchmark} | {row.subtask} | {row.metric} | {_fmt(float(row.score))} | {row.count} | "
            f"{bad}{f' ({reasons})' if reasons else ''} | {row.skipped} | {details} |"
        )
    return "\n".join(lines)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    return value


def write_results(
    rows: Sequence[ResultRow],
    records: Sequence[Mapping[str, Any]],
    out_dir: str | Path,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write ``results.md``, ``results.json``, ``results.csv`` (one line per row and number),
    ``predictions.jsonl`` (one line per scored or skipped sample) and ``plots/*.png`` (:func:`write_plots`)
    into ``out_dir``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in ("results.md", "results.json", "results.csv", "predictions.jsonl")}
    paths["results.md"].write_text(markdown(rows) + "\n", encoding="utf-8")
    payload = {"meta": dict(meta or {}), "rows": [_json_safe(asdict(r)) for r in rows]}
    paths["results.json"].write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    with open(paths["results.csv"], "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["benchmark", "subtask", "metric", "value", "count", "skipped"])
        for row in rows:
            numbers = {row.metric: row.score, **row.details, "malformed": sum(row.malformed.values())}
            numbers |= {f"malformed/{k}": v for k, v in row.malformed.items()}
            for name, value in numbers.items():
                writer.writerow([row.benchmark, row.subtask, name, value, row.count, row.skipped])
    with open(paths["predictions.jsonl"], "w", encoding="utf-8", newline="\n") as f:
        f.writelines(json.dumps(_json_safe(dict(r)), ensure_ascii=False) + "\n" for r in records)
    return paths | {f"plots/{p.name}": p for p in write_plots(rows, out / "plots")}


def _headlines(rows: Sequence[ResultRow]) -> list[ResultRow]:
    """Each suite's own numbers: its ``overall`` row, or where it has none (eBay) its rows without a "/"."""
    with_overall = {r.benchmark for r in rows if r.subtask == OVERALL}
    return [r for r in rows if r.subtask == OVERALL or (r.benchmark not in with_overall and "/" not in r.subtask)]


def write_plots(rows: Sequence[ResultRow], out_dir: str | Path) -> list[Path]:
    """One bar chart per benchmark (a bar per table row: its sub-tasks, then its headline rows) and
    ``overview.png`` (every benchmark's headline rows), scores x100, each bar labelled with its value, n and
    malformed count. Drawn on matplotlib's Agg canvas without pyplot, so no global backend changes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    charts = {b: [r for r in rows if r.benchmark == b] for b in dict.fromkeys(r.benchmark for r in rows)}
    headlines = _headlines(rows)
    charts["overview"] = headlines
    paths = []
    for name, chart in charts.items():
        if not chart:
            continue
        fig = Figure(figsize=(7.5, 1.3 + 0.38 * len(chart)), dpi=110)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        labels = [f"{r.benchmark}: {r.subtask}" if name == "overview" else r.subtask for r in chart][::-1]
        values = [0.0 if math.isnan(r.score) else 100 * r.score for r in chart][::-1]
        colours = ["#1f4e79" if r in headlines else "#7fb3e0" for r in chart][::-1]
        bars = ax.barh(labels, values, color=colours)
        for bar, row in zip(bars, chart[::-1]):
            note = f"{_fmt(float(row.score))} {row.metric}  n={row.count}  malformed={sum(row.malformed.values())}"
            ax.text(bar.get_width() + 1, bar.get_y() + bar.get_height() / 2, note, va="center", fontsize=7)
        top = max(100.0, *values)
        ax.set_xlim(0, top * 1.45)  # room for the labels right of the bars
        ax.set_xticks([t for t in range(0, int(top) + 1, 20)])
        ax.set_xlabel("score x100")
        ax.set_title("headline scores" if name == "overview" else f"{name}: per sub-task", fontsize=10)
        ax.tick_params(axis="y", labelsize=8)
        fig.tight_layout()
        paths.append(out / f"{name}.png")
        fig.savefig(paths[-1])
    return paths

"""A sweep's results: results.csv and results.md (one row per point), a score bar chart and the loss curves."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

FIXED = ("point", "steps", "tokens", "fit_seconds", "first_loss", "final_loss")


def _columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    columns = list(FIXED)
    for row in rows:
        columns += [k for k in row if k not in columns and k != "status"]
    return columns


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.3f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "-" if value is None else str(value)


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    """One markdown row per point: its labels, training numbers and each benchmark's overall score."""
    columns = _columns(rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def loss_curve(event_dir: Path, tag: str = "train/loss") -> list[tuple[int, float]]:
    """(step, value) of a scalar from a run's TensorBoard event files; [] when there are none.

    Several runs in one folder (a pipeline's steps, each counting from 0) are laid end to end.
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    if not event_dir.is_dir():
        return []
    # 0: keep every point; no purge, which would drop a finished step's points when the next step restarts at 0
    events = EventAccumulator(str(event_dir), size_guidance={"scalars": 0}, purge_orphaned_data=False)
    events.Reload()
    if tag not in events.Tags()["scalars"]:
        return []
    curve, offset, previous = [], 0, -1
    for event in events.Scalars(tag):
        if event.step + offset <= previous:  # the next run of the folder
            offset = previous + 1
        previous = event.step + offset
        curve.append((previous, event.value))
    return curve


def write_report(rows: Sequence[dict[str, Any]], out: Path, event_dirs: Sequence[Path]) -> dict[str, Path]:
    """Writes results.csv, results.md, score.png (when points were tested) and loss.png; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a cluster node
    import matplotlib.pyplot as plt

    paths = {"csv": out / "results.csv", "md": out / "results.md"}
    columns = _columns(rows)
    with open(paths["csv"], "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    paths["md"].write_text(markdown(rows) + "\n", encoding="utf-8")
    names = [row["point"] for row in rows]
    if any("score" in row for row in rows):
        fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(rows)), 3.5))
        ax.bar(names, [row.get("score", float("nan")) for row in rows], color="tab:blue")
        ax.set_ylabel("mean overall score")
        ax.set_title(out.name)
        ax.tick_params(axis="x", rotation=30)
        fig.tight_layout()
        paths["score"] = out / "score.png"
        fig.savefig(paths["score"], dpi=120)
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, event_dir in zip(names, event_dirs):
        curve = loss_curve(event_dir)
        if curve:
            ax.plot(*zip(*curve), label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("train/loss")
    if ax.lines:
        ax.legend(fontsize=8)
    fig.tight_layout()
    paths["loss"] = out / "loss.png"
    fig.savefig(paths["loss"], dpi=120)
    plt.close(fig)
    return paths

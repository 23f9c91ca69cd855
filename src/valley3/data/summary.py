"""The `summary.json` every data tool writes beside its output: counts, time and rates."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


def write_summary(out_dir: str | Path, summary: dict[str, Any], start: float,
                  rates: dict[str, float] | None = None) -> dict[str, Any]:
    """`summary` with "seconds" since `start` (a `time.perf_counter()`) and rates per second, written to
    `<out_dir>/summary.json` and returned.

    Args:
        out_dir: the tool's output folder.
        summary: the tool's numbers; "tool" and "before" (items read) are expected, "after" and "skipped" usual.
        start: when the tool started.
        rates: totals to report per second besides "items_per_s" (from "before"), e.g. {"media_mb_per_s": MB}.
    """
    seconds = time.perf_counter() - start
    totals = {"items_per_s": summary["before"], **(rates or {})}
    summary = {**summary, "seconds": round(seconds, 3),
               **{name: round(total / seconds, 3) if seconds else None for name, total in totals.items()}}
    (Path(out_dir) / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary

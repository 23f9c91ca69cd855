"""Evaluation per effort level or thinking budget: one table, a plot of score against thinking tokens, s1's metrics.

s1 (Muennighoff et al., 2025, "s1: Simple test-time scaling") judges a test-time scaling method by Control (the
share of runs whose thinking stays within the budget asked for), Scaling (the mean slope of score against
thinking over every pair of settings) and Performance (the best score). Here Control is per sample, Scaling is
in score points (x100) per 100 thinking tokens, and Performance is each suite's best score.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path

_PER = 100  # Scaling's unit of thinking tokens


@dataclass
class SettingResult:
    """One setting's outcome: its thinking per sample and each suite's overall score (in [0, 1])."""

    name: str
    effort: str | None
    cap: int | None
    thinking_tokens: list[int] = field(default_factory=list)
    one_block: list[bool] = field(default_factory=list)  # exactly one <thinking>...</thinking> per output
    well_formed: list[bool] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def mean_thinking(self) -> float:
        return statistics.fmean(self.thinking_tokens) if self.thinking_tokens else 0.0

    @property
    def median_thinking(self) -> float:
        return float(statistics.median(self.thinking_tokens)) if self.thinking_tokens else 0.0

    @property
    def control(self) -> float | None:
        """Share of samples whose thinking is within the cap (None without a cap)."""
        if self.cap is None or not self.thinking_tokens:
            return None
        return sum(n <= self.cap for n in self.thinking_tokens) / len(self.thinking_tokens)


def _share(flags: list[bool]) -> float:
    return sum(flags) / len(flags) if flags else 0.0


def scaling(points: list[tuple[float, float]]) -> float | None:
    """s1's Scaling: the mean over pairs of settings of (score_b - score_a) / (thinking_b - thinking_a), score x100
    per 100 thinking tokens; pairs of equal thinking are left out (None when no pair is left)."""
    slopes = [100 * (fb - fa) / ((b - a) / _PER) for (a, fa), (b, fb) in combinations(sorted(points), 2) if b > a]
    return statistics.fmean(slopes) if slopes else None


def summary(results: list[SettingResult]) -> dict[str, dict[str, float | None]]:
    """Per suite: Control (over every capped sample), Scaling and Performance (the best score, x100)."""
    capped = [n <= r.cap for r in results if r.cap is not None for n in r.thinking_tokens]
    control = _share(capped) if capped else None
    suites = list(dict.fromkeys(s for r in results for s in r.scores))
    return {s: {"control": control,
                "scaling": scaling([(r.mean_thinking, r.scores[s]) for r in results if s in r.scores]),
                "performance": 100 * max(r.scores[s] for r in results if s in r.scores)} for s in suites}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _ratio(value: float, below: float) -> str:
    if below == 0:
        return "inf" if value else "-"
    return f"{value / below:.2f}"


def markdown(results: list[SettingResult]) -> str:
    """One row per setting (thinking statistics and each suite's score x100) and one for all outputs, then s1's
    metrics per suite. "x median above" is the setting's median thinking over the previous setting's."""
    suites = list(dict.fromkeys(s for r in results for s in r.scores))
    head = ("| setting | effort | cap | n | mean thinking | median thinking | x median above | one block % | "
            "well formed % | control % |")
    lines = [head + "".join(f" {s} |" for s in suites), "|---" * 10 + "|" + "---:|" * len(suites)]
    for i, r in enumerate(results):
        ratio = _ratio(r.median_thinking, results[i - 1].median_thinking) if i else "-"
        cells = [r.name, r.effort or "-", "-" if r.cap is None else str(r.cap), str(len(r.thinking_tokens)),
                 f"{r.mean_thinking:.1f}", f"{r.median_thinking:.1f}", ratio, _pct(_share(r.one_block)),
                 _pct(_share(r.well_formed)), _pct(r.control), *(_pct(r.scores.get(s)) for s in suites)]
        lines.append("| " + " | ".join(cells) + " |")
    every = SettingResult("all", None, None, [n for r in results for n in r.thinking_tokens],
                          [f for r in results for f in r.one_block], [f for r in results for f in r.well_formed])
    lines.append(f"| all | | | {len(every.thinking_tokens)} | {every.mean_thinking:.1f} | {every.median_thinking:.1f} "
                 f"| | {_pct(_share(every.one_block))} | {_pct(_share(every.well_formed))} | |" + " |" * len(suites))
    lines += ["", "| suite | Control % | Scaling (points per 100 thinking tokens) | Performance |", "|---|---:|---:|---:|"]
    for suite, m in summary(results).items():
        slope = "-" if m["scaling"] is None else f"{m['scaling']:.2f}"
        lines.append(f"| {suite} | {_pct(m['control'])} | {slope} | {m['performance']:.1f} |")
    return "\n".join(lines)


def plot(results: list[SettingResult], path: Path) -> Path:
    """Score (x100) against mean thinking tokens, one line per suite, each point named by its setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for suite in dict.fromkeys(s for r in results for s in r.scores):
        pts = sorted((r.mean_thinking, 100 * r.scores[suite], r.name) for r in results if suite in r.scores)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=suite)
        for x, y, name in pts:
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7)
    ax.set_xlabel("mean thinking tokens")
    ax.set_ylabel("score")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_reasoning_report(results: list[SettingResult], out_dir: str | Path) -> dict[str, Path]:
    """`reasoning.md` (the tables), `reasoning.json` (per setting and s1's metrics) and `reasoning.png`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"md": out / "reasoning.md", "json": out / "reasoning.json", "png": out / "reasoning.png"}
    paths["md"].write_text(markdown(results) + "\n", encoding="utf-8")
    settings = [asdict(r) | {"mean_thinking": r.mean_thinking, "median_thinking": r.median_thinking,
                             "control": r.control, "one_block_share": _share(r.one_block),
                             "well_formed_share": _share(r.well_formed)} for r in results]
    paths["json"].write_text(json.dumps({"settings": settings, "s1": summary(results)}, indent=1), encoding="utf-8")
    plot(results, paths["png"])
    return paths

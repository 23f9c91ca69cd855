"""Helpers of the benchmark tests: write a hand-made JSONL, feed scripted answers, read the rows by sub-task."""

from __future__ import annotations

import json
from pathlib import Path

from valley3.eval.benchmarks import Benchmark
from valley3.eval.report import ResultRow


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def run(benchmark: Benchmark, answers: dict[str, str], batch: int = 3) -> dict[str, ResultRow]:
    """Score ``answers[uid]`` for every item, in batches taken in reverse order (rotations split across
    batches), and return the table rows by sub-task."""
    items = list(reversed(benchmark.items))
    metrics = benchmark.metrics()
    for start in range(0, len(items), batch):
        chunk = items[start : start + batch]
        benchmark.evaluate(metrics, chunk, [answers[i.uid] for i in chunk])
    results = {key: metric.compute() for key, metric in metrics.items()}
    return {row.subtask: row for row in benchmark.rows(results)}

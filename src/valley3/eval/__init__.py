"""Evaluation: torchmetrics metrics, benchmark suites, the BenchmarkDataModule and the results report."""

from valley3.eval.datamodule import BenchmarkDataModule, EvenShardSampler
from valley3.eval.report import ResultRow, markdown, write_results

__all__ = ["BenchmarkDataModule", "EvenShardSampler", "ResultRow", "markdown", "write_results"]

"""Lightning callbacks: run summaries (and later throughput, media-skip counters, sample generations)."""

from valley3.callbacks.summary import LossSummary

__all__ = ["LossSummary"]

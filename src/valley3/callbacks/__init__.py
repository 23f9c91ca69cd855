"""Lightning callbacks: run summaries, throughput (tokens/s, samples/s, MFU) and the data-wait share."""

from valley3.callbacks.summary import LossSummary
from valley3.callbacks.throughput import DataWait, TokenThroughput, flops_per_token

__all__ = ["DataWait", "LossSummary", "TokenThroughput", "flops_per_token"]

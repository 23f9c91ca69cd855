"""Training speed: Lightning's ThroughputMonitor on real tokens and model FLOPs, and the share of time spent on data."""

from __future__ import annotations

import time
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ThroughputMonitor
from torch import nn

from valley3.data.batch import Batch


def _has_tokens(batch: Any) -> bool:
    """A token batch with samples left (a GRPO step's batch holds prompt records instead)."""
    return isinstance(batch, Batch) and not batch.empty


def batch_tokens(batch: Batch | Any) -> int:
    """Non-padding tokens of a training batch (packed rows count each sample's tokens once)."""
    return int(batch.attention_mask.sum()) if _has_tokens(batch) else 0


def batch_samples(batch: Batch | Any) -> int:
    """Samples of a training batch: a packed row holds several."""
    return len(batch.sample_ids) if _has_tokens(batch) else 0


def _text_config(model: nn.Module) -> Any:
    decoder = getattr(model, "decoder", model)
    config = getattr(getattr(decoder, "model", decoder), "config", None)
    return getattr(config, "text_config", config)  # Qwen3-VL nests the language model's shape


def flops_per_token(model: nn.Module, seq_len: int) -> float:
    """Training FLOPs per token: 2N forward + 2N for activation gradients + 2N_trainable for weight gradients,
    plus causal attention's 12 * layers * attention width * seq_len (PaLM, appendix B).

    N counts every parameter but the input embedding table (a lookup, no multiply); media encoders are counted as
    if they ran once per text token, which over-counts them slightly in text-heavy batches.
    """
    embedding = None
    if hasattr(model, "decoder") and hasattr(model.decoder, "model"):
        embedding = model.decoder.model.get_input_embeddings()
    skip = {id(p) for p in embedding.parameters()} if embedding is not None else set()
    total = sum(p.numel() for p in model.parameters() if id(p) not in skip)
    trained = sum(p.numel() for p in model.parameters() if id(p) not in skip and p.requires_grad)
    config = _text_config(model)
    attention = 0
    if config is not None and hasattr(config, "num_hidden_layers"):
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        attention = 12 * config.num_hidden_layers * config.num_attention_heads * head_dim * seq_len
    return 4 * total + 2 * trained + attention


class TokenThroughput(ThroughputMonitor):
    """Lightning's ThroughputMonitor counting real tokens and samples, with the model's FLOPs for MFU.

    Logs `train/device/{samples,items,batches,flops}_per_sec` (items: non-padding tokens) and `train/device/mfu`
    once `window_size` batches are in, plus the all-device rates from two devices on; MFU needs the device's peak
    FLOP/s, which Lightning knows for common GPUs and TPUs (not CPUs).

    Args:
        window_size: batches the rates are averaged over.
        peak_flops: the device's peak FLOP/s where Lightning does not know it (CPUs, new GPUs); None: Lightning's.
    """

    def __init__(self, window_size: int = 10, peak_flops: float | None = None):
        super().__init__(batch_size_fn=batch_samples, length_fn=batch_tokens, window_size=window_size)
        self.peak_flops = peak_flops

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if self.peak_flops is not None:
            self.available_flops = self.peak_flops
            for throughput in self._throughputs.values():
                throughput.available_flops = self.peak_flops

    def on_train_batch_start(self, trainer, pl_module, batch: Any, batch_idx: int) -> None:
        # ThroughputMonitor reads `flops_per_batch` off the module after the step; set it for this batch's shape
        if _has_tokens(batch):
            per_token = flops_per_token(pl_module.model, batch.input_ids.shape[1])
            pl_module.flops_per_batch = int(per_token * batch_tokens(batch))


class DataWait(pl.Callback):
    """Logs `train/data_wait_share`: the part of each step between the previous batch's end and this batch's
    start (the loader fetching and collating), averaged over the last `window_size` steps; the goal is < 0.05.

    Args:
        window_size: steps the share is averaged over.
    """

    def __init__(self, window_size: int = 10):
        self.window_size = window_size
        self._end: float | None = None
        self._start = 0.0
        self._waits: list[tuple[float, float]] = []  # (wait, whole step) per step

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._end = time.perf_counter()  # the first fetch of an epoch counts as waiting too

    def on_train_batch_start(self, trainer, pl_module, batch: Any, batch_idx: int) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs: Any, batch: Any, batch_idx: int) -> None:
        now = time.perf_counter()
        if self._end is not None:
            self._waits = [*self._waits, (self._start - self._end, now - self._end)][-self.window_size :]
            wait, step = map(sum, zip(*self._waits))
            n = batch.input_ids.shape[0] if _has_tokens(batch) else 1
            pl_module.log("train/data_wait_share", wait / max(step, 1e-9), batch_size=n)
        self._end = now

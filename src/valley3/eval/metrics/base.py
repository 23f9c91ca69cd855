"""EvalMetric: the shared base of the eval metrics (sub-task buckets, malformed-output counts, safe sync)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities.distributed import gather_all_tensors

from valley3.eval.metrics.extract import FAILURE_REASONS


def _gather_empty_as(result: Tensor, group: Any = None, dtype: torch.dtype = torch.int64) -> list[Tensor]:
    # torchmetrics stands in an empty *float* tensor for a rank that saw no data; our "cat" states are
    # integers, and all_gather needs one dtype on every rank.
    if result.numel() == 0 and result.is_floating_point():
        result = result.to(dtype)
    return gather_all_tensors(result, group)


class EvalMetric(Metric):
    """Base of the eval metrics: names sub-task buckets and counts malformed outputs per failure reason.

    States are tensors only (counts, int64 ids), so every subclass syncs across ranks through
    torchmetrics' ``dist_reduce_fx``; strings are reduced to counts or hashes inside ``update``.

    Args:
        subtasks: names of the sub-task buckets, fixed up front so every rank holds same-shaped states;
            ``None`` keeps one bucket, ``"all"``.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    _cat_dtype = torch.int64  # dtype of the subclass's "cat" (list) states

    def __init__(self, subtasks: Sequence[str] | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("dist_sync_fn", partial(_gather_empty_as, dtype=self._cat_dtype))
        super().__init__(**kwargs)
        self.subtasks = list(subtasks) if subtasks is not None else ["all"]
        if not self.subtasks or len(set(self.subtasks)) != len(self.subtasks):
            raise ValueError(f"subtasks must be non-empty and unique, got {self.subtasks}")
        self._subtask_index = {name: i for i, name in enumerate(self.subtasks)}
        self.add_state("malformed", torch.zeros(len(FAILURE_REASONS), dtype=torch.int64), dist_reduce_fx="sum")

    def _apply(self, fn: Callable, exclude_state: Sequence[str] = "") -> "EvalMetric":
        # Lightning's "bf16-true" / "16-true" precision casts the whole LightningModule with .to(dtype), and
        # torchmetrics lets that reach the states: a bf16 sum stops growing at 256 (1000 right answers out of
        # 1000 read 0.256). Counts and float64 sums keep their dtypes; only the device follows the module.
        def keep_dtype(tensor: Tensor) -> Tensor:
            out = fn(tensor)
            return out.to(tensor.dtype) if isinstance(out, Tensor) and out.dtype != tensor.dtype else out

        return super()._apply(keep_dtype, exclude_state)

    def _subtask_ids(self, subtasks: Sequence[str] | str | None, n: int) -> list[int]:
        """Bucket index of each of ``n`` samples; one name or ``None`` (single bucket) covers them all."""
        if subtasks is None:
            if len(self.subtasks) != 1:
                raise ValueError(f"update needs subtasks: this metric has buckets {self.subtasks}")
            return [0] * n
        names = [subtasks] * n if isinstance(subtasks, str) else list(subtasks)
        if len(names) != n:
            raise ValueError(f"got {len(names)} subtasks for {n} samples")
        unknown = sorted({s for s in names if s not in self._subtask_index})
        if unknown:
            raise ValueError(f"unknown subtasks {unknown}; this metric knows {self.subtasks}")
        return [self._subtask_index[s] for s in names]

    def _count_failures(self, reasons: Iterable[str | None]) -> None:
        _bump(self.malformed, [FAILURE_REASONS.index(r) for r in reasons if r is not None])

    def _malformed_dict(self) -> dict[str, Tensor]:
        out = {f"malformed/{r}": self.malformed[i] for i, r in enumerate(FAILURE_REASONS)}
        out["malformed"] = self.malformed.sum()
        return out

    def _per_subtask(self, prefix: str, values: Tensor) -> dict[str, Tensor]:
        """``{prefix/<subtask>: value}``; a metric with a single unnamed bucket reports none."""
        if self.subtasks == ["all"]:
            return {}
        return {f"{prefix}/{name}": values[i] for i, name in enumerate(self.subtasks)}


def _bump(state: Tensor, indices: Sequence[int], values: Sequence[float] | None = None) -> None:
    """``state[indices] += values`` (1 each by default) as one op: one kernel per batch on GPU, not per sample."""
    if len(indices):
        src = torch.tensor(values if values is not None else [1] * len(indices), dtype=state.dtype, device=state.device)
        state.index_add_(0, torch.tensor(indices, dtype=torch.int64, device=state.device), src)


def _check_lengths(**seqs: Sequence[Any]) -> int:
    lengths = {name: len(seq) for name, seq in seqs.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"update arguments differ in length: {lengths}")
    return next(iter(lengths.values()))


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    """``num / den`` as float64, NaN where ``den`` is 0 (a bucket with no samples)."""
    num, den = num.to(torch.float64), den.to(torch.float64)
    return torch.where(den > 0, num / den.clamp(min=1), torch.full_like(num, float("nan")))

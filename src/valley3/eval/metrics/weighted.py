"""Per-sub-task scores from per-sample scores, averaged over sub-tasks weighted by their sample counts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from valley3.eval.metrics.base import EvalMetric, _bump, _ratio


class WeightedSubtaskScore(EvalMetric):
    """Per-sub-task scores, and their average weighted by each sub-task's sample count.

    A sub-task's score is the mean of its per-sample scores, or for an ``f1_subtasks`` one the micro F1 of
    its samples' counts, ``2 sum(tp) / (sum(pred) + sum(ref))`` (eCeLLM's attribute-value extraction).
    ``score = sum_s n_s * score_s / sum_s n_s`` (the mean over all samples when no sub-task is F1);
    ``macro`` is the unweighted mean over the sub-tasks that have samples.

    Args:
        subtasks: the sub-task names.
        f1_subtasks: the sub-tasks scored by micro F1 of per-sample ``tp``/``pred``/``ref`` counts.
    """

    def __init__(self, subtasks: Sequence[str], f1_subtasks: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(subtasks, **kwargs)
        unknown = set(f1_subtasks) - set(self.subtasks)
        if unknown:
            raise ValueError(f"f1_subtasks {sorted(unknown)} are not among subtasks {self.subtasks}")
        n = len(self.subtasks)
        self.f1_mask = torch.tensor([s in set(f1_subtasks) for s in self.subtasks])
        # float64: a per-sample score may be a fraction (Recall@k with several gold ids, ROUGE-L).
        self.add_state("score_sum", torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")
        for name in ("total", "tp", "pred", "ref"):
            self.add_state(name, torch.zeros(n, dtype=torch.int64), dist_reduce_fx="sum")

    def update(
        self,
        scores: Sequence[float] | Tensor,
        subtasks: Sequence[str] | str,
        counts: Sequence[Mapping[str, int] | None] | None = None,
    ) -> None:
        """Args: one score in [0, 1] per sample (correct = 1), sub-task per sample (or one for all), and for
        F1 sub-tasks each sample's ``{"tp", "pred", "ref"}`` counts (``None`` elsewhere)."""
        scores = scores.tolist() if isinstance(scores, Tensor) else [float(s) for s in scores]
        subs = self._subtask_ids(subtasks, len(scores))
        _bump(self.score_sum, subs, scores)
        _bump(self.total, subs)
        for name in ("tp", "pred", "ref"):
            pairs = [(s, c[name]) for s, c in zip(subs, counts or ()) if c is not None]
            _bump(getattr(self, name), [s for s, _ in pairs], [v for _, v in pairs])

    def compute(self) -> dict[str, Tensor]:
        """``score`` (sample-weighted), ``macro``, ``count``, ``score/<subtask>``, ``count/<subtask>``,
        ``malformed[/<reason>]``."""
        mean = _ratio(self.score_sum, self.total)
        f1 = torch.where(self.total > 0, _ratio(2 * self.tp, self.pred + self.ref).nan_to_num(0.0), mean)
        per_task = torch.where(self.f1_mask.to(mean.device), f1, mean)
        seen = self.total > 0
        weights = self.total.to(torch.float64)
        nan = per_task.new_tensor(float("nan"))
        out = {
            "score": (per_task[seen] * weights[seen]).sum() / weights.sum() if seen.any() else nan,
            "macro": per_task[seen].mean() if seen.any() else nan,
            "count": self.total.sum(),
        }
        out |= self._per_subtask("score", per_task) | self._per_subtask("count", self.total)
        return out | self._malformed_dict()

"""Sample-weighted average over sub-tasks (eComMMMU: Recall@1 for SR, accuracy elsewhere)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from valley3.eval.metrics.base import EvalMetric, _bump, _check_lengths, _ratio
from valley3.eval.metrics.match import match_answer
from valley3.eval.metrics.retrieval import parse_ranking, recall_at_k

ECOMMMMU_SUBTASKS: tuple[str, ...] = ("AP", "BQA", "CP", "SR", "MPC", "PSI", "SA", "PRP")


class WeightedSubtaskScore(EvalMetric):
    """Per-sub-task mean of per-sample scores, and their average weighted by each sub-task's sample count.

    ``score = sum_s n_s * mean_s / sum_s n_s`` (equal to the mean over all samples); ``macro`` is the
    unweighted mean over the sub-tasks that have samples.

    Args:
        subtasks: the sub-task names.
    """

    def __init__(self, subtasks: Sequence[str], **kwargs: Any) -> None:
        super().__init__(subtasks, **kwargs)
        n = len(self.subtasks)
        # float64: a per-sample score may be a fraction (Recall@k with several gold ids).
        self.add_state("score_sum", torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros(n, dtype=torch.int64), dist_reduce_fx="sum")

    def _add(self, scores: Sequence[float], subtasks: Sequence[str] | str) -> None:
        subs = self._subtask_ids(subtasks, len(scores))
        _bump(self.score_sum, subs, [float(s) for s in scores])
        _bump(self.total, subs)

    def update(self, scores: Sequence[float] | Tensor, subtasks: Sequence[str] | str) -> None:
        """Args: one score in [0, 1] per sample (correct = 1), sub-task per sample (or one for all)."""
        self._add(scores.tolist() if isinstance(scores, Tensor) else list(scores), subtasks)

    def compute(self) -> dict[str, Tensor]:
        """``score`` (sample-weighted), ``macro``, ``count``, ``score/<subtask>``, ``count/<subtask>``,
        ``malformed[/<reason>]``."""
        per_task = _ratio(self.score_sum, self.total)
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


class EComMMMUScore(WeightedSubtaskScore):
    """eComMMMU: Recall@1 on the ranking sub-tasks, answer accuracy elsewhere, averaged weighted by samples.

    Accuracy uses :func:`match_answer` (normalised string match; a letter target also accepts the
    output's option letter). Recall@1 parses the output as ranked ids (:func:`parse_ranking`); the
    gold may be one id or several.

    Args:
        subtasks: sub-task names, the paper's eight by default.
        recall_subtasks: the sub-tasks scored by Recall@1 (SR in the paper).
        field: JSON field holding the answer when the model answers in JSON.
    """

    def __init__(
        self,
        subtasks: Sequence[str] = ECOMMMMU_SUBTASKS,
        recall_subtasks: Sequence[str] = ("SR",),
        field: str = "answer",
        **kwargs: Any,
    ) -> None:
        super().__init__(subtasks, **kwargs)
        unknown = set(recall_subtasks) - set(self.subtasks)
        if unknown:
            raise ValueError(f"recall_subtasks {sorted(unknown)} are not among subtasks {self.subtasks}")
        self.recall_subtasks, self.field = set(recall_subtasks), field

    def update(self, preds: Sequence[str | None], targets: Sequence[Any], subtasks: Sequence[str] | str) -> None:
        """Args: raw outputs; target answer (recall sub-tasks: gold id or ids) per sample; sub-task per sample."""
        n = _check_lengths(preds=preds, targets=targets)
        names = [subtasks] * n if isinstance(subtasks, str) else list(subtasks)
        scores, reasons = [], []
        for pred, target, sub in zip(preds, targets, names):
            if sub in self.recall_subtasks:
                ranking = parse_ranking(pred, self.field)
                reason, score = ranking.reason, recall_at_k(ranking.value or [], target, k=1)
            else:
                ok, reason = match_answer(pred, target, self.field)
                score = float(ok)
            reasons.append(reason)
            scores.append(score)
        self._add(scores, names)
        self._count_failures(reasons)

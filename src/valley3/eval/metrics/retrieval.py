"""Recall@k over ranked candidate ids (eComMMMU SR, search and recommendation tasks)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from valley3.eval.metrics.base import EvalMetric, _check_lengths, _ratio
from valley3.eval.metrics.extract import Extracted, _fail, extract_answer_text

_ENUMERATION = re.compile(r"^\s*(?:\d+\s*[.):]|[-*•])\s*")  # "1. ", "2) ", "- " before a ranked id


def parse_ranking(pred: str | Sequence[Any] | None, field: str = "answer") -> Extracted:
    """Ranked ids from a raw output ("item_3, item_7", one per line, a JSON list or ``answer`` field);
    a list passes through. Ids are compared as stripped strings."""
    if pred is not None and not isinstance(pred, str):
        return Extracted([str(x).strip() for x in pred])
    got = extract_answer_text(pred, field)
    if not got.ok:
        return got
    body = got.value
    if body.startswith("["):
        try:
            items = json.loads(body)
        except json.JSONDecodeError:
            items = None
        if isinstance(items, list):
            return Extracted([str(x).strip() for x in items])
    items = [_ENUMERATION.sub("", part).strip() for part in re.split(r"[,;，；\n]+", body)]
    items = [item for item in items if item]
    return Extracted(items) if items else _fail("no_answer")


def recall_at_k(ranked: Sequence[Any], gold: Any | Sequence[Any], k: int) -> float:
    """Share of the gold ids found in the top ``k`` of ``ranked`` (the hit rate when there is one gold id)."""
    gold_ids = {str(gold).strip()} if isinstance(gold, (str, int)) else {str(g).strip() for g in gold}
    if not gold_ids:
        raise ValueError("recall_at_k needs at least one gold id")
    top = {str(x).strip() for x in list(ranked)[:k]}
    return len(gold_ids & top) / len(gold_ids)


class RecallAtK(EvalMetric):
    """Mean Recall@k over queries, for each k.

    Per query, Recall@k = |gold ∩ top-k| / |gold|; with one gold id it is 1 if the gold id is in the top
    k, else 0. An unparseable prediction ranks nothing (recall 0) and is counted under ``malformed``.

    Args:
        ks: the cut-offs to report.
        field: JSON field holding the ranking when the model answers in JSON.
    """

    def __init__(self, ks: Sequence[int] = (1, 5, 10), field: str = "answer", **kwargs: Any) -> None:
        super().__init__(None, **kwargs)
        if not ks or min(ks) < 1:
            raise ValueError(f"ks must be positive cut-offs, got {ks}")
        self.ks, self.field = list(ks), field
        # float64 sums: per-query recall is a fraction when a query has several gold ids.
        self.add_state("recall_sum", torch.zeros(len(self.ks), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, preds: Sequence[str | Sequence[Any] | None], targets: Sequence[Any]) -> None:
        """Args: ranked candidate ids (a list, or a raw output to parse) per query; gold id or ids per query."""
        n = _check_lengths(preds=preds, targets=targets)
        sums, reasons = [0.0] * len(self.ks), []
        for pred, gold in zip(preds, targets):
            ranking = parse_ranking(pred, self.field)
            reasons.append(ranking.reason)
            for i, k in enumerate(self.ks):
                sums[i] += recall_at_k(ranking.value or [], gold, k)
        self.recall_sum += torch.tensor(sums, dtype=torch.float64, device=self.recall_sum.device)
        self.count += n
        self._count_failures(reasons)

    def compute(self) -> dict[str, Tensor]:
        """``recall@<k>`` for each k, ``count`` (queries), ``malformed[/<reason>]``."""
        recalls = _ratio(self.recall_sum, self.count.expand_as(self.recall_sum))
        out = {f"recall@{k}": recalls[i] for i, k in enumerate(self.ks)}
        return out | {"count": self.count} | self._malformed_dict()

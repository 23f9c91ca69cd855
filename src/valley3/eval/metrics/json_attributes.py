"""JSON attribute precision / recall / F1 and hallucinated-field rate (eBay Dynamic Attribute Extraction)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from valley3.eval.metrics.base import EvalMetric, _check_lengths
from valley3.eval.metrics.extract import _norm_key, extract_json, extract_json_field
from valley3.eval.metrics.match import normalize_text


def flatten_json(obj: Any, prefix: str = "") -> list[tuple[str, str]]:
    """``(dotted.key.path, normalised value)`` pairs of a JSON value.

    Nested objects give dotted paths (``{"size": {"waist": 32}}`` -> ``("size.waist", "32")``); each list
    element is one value under the list's key (a list of objects extends the path by their keys); keys
    are lowercased with ``_``/``-``/spaces folded; ``null`` and empty strings are "not stated" and dropped.
    """
    if isinstance(obj, Mapping):
        pairs = []
        for key, value in obj.items():
            pairs += flatten_json(value, f"{prefix}.{_norm_key(key)}" if prefix else _norm_key(key))
        return pairs
    if isinstance(obj, (list, tuple)):
        return [pair for item in obj for pair in flatten_json(item, prefix)]
    if obj is None:
        return []
    value = str(obj).lower() if isinstance(obj, bool) else normalize_text(obj)
    return [(prefix, value)] if value else []


def attribute_counts(pred: Mapping[str, Any] | None, ref: Mapping[str, Any]) -> dict[str, int]:
    """Per-sample counts: ``tp`` (multiset intersection of (key, value) pairs), ``pred``/``ref`` pair counts,
    ``pred_keys`` (distinct predicted key paths) and ``hallucinated_keys`` (those absent from the reference)."""
    pred_pairs, ref_pairs = Counter(flatten_json(pred or {})), Counter(flatten_json(ref))
    pred_keys, ref_keys = {k for k, _ in pred_pairs}, {k for k, _ in ref_pairs}
    return {
        "tp": sum((pred_pairs & ref_pairs).values()),
        "pred": sum(pred_pairs.values()),
        "ref": sum(ref_pairs.values()),
        "pred_keys": len(pred_keys),
        "hallucinated_keys": len(pred_keys - ref_keys),
    }


class JSONAttributeF1(EvalMetric):
    """Micro-averaged key/value precision, recall and F1 of JSON attributes, plus the hallucinated-field rate.

    Over all samples: P = sum(tp) / sum(pred pairs), R = sum(tp) / sum(ref pairs), F1 = 2PR / (P + R);
    hallucination_rate = sum(predicted key paths not in the reference) / sum(predicted key paths).
    An unparseable prediction predicts nothing (it lowers recall) and is counted under ``malformed``.

    Args:
        field: when set, score ``obj[field]`` of the predicted object (e.g. ``"answer"`` for
            ``{"thinking process": ..., "answer": {...}}``); ``None`` scores the whole object.
    """

    _COUNTS = ("tp", "pred", "ref", "pred_keys", "hallucinated_keys", "samples")

    def __init__(self, field: str | None = None, **kwargs: Any) -> None:
        super().__init__(None, **kwargs)
        self.field = field
        for name in self._COUNTS:
            self.add_state(f"n_{name}", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

    def _parse(self, pred: str | Mapping[str, Any] | None) -> tuple[Mapping[str, Any] | None, str | None]:
        if isinstance(pred, Mapping):
            return (pred[self.field] if self.field is not None and self.field in pred else pred), None
        got = extract_json(pred) if self.field is None else extract_json_field(pred, self.field)
        return got.value, got.reason

    def update(
        self, preds: Sequence[str | Mapping[str, Any] | None], targets: Sequence[str | Mapping[str, Any]]
    ) -> None:
        """Args: raw outputs (or parsed objects), reference objects (or their JSON strings)."""
        n = _check_lengths(preds=preds, targets=targets)
        totals, reasons = Counter(), []
        for pred, target in zip(preds, targets):
            ref = json.loads(target) if isinstance(target, str) else target
            parsed, reason = self._parse(pred)
            totals.update(attribute_counts(parsed, ref))
            reasons.append(reason)
        for name, value in totals.items():
            getattr(self, f"n_{name}").add_(value)
        self.n_samples += n
        self._count_failures(reasons)

    def compute(self) -> dict[str, Tensor]:
        """``precision``, ``recall``, ``f1``, ``hallucination_rate`` (0 where nothing was predicted; NaN
        before any sample), the totals ``tp``, ``pred``, ``ref``, ``count``, and ``malformed[/<reason>]``."""
        tp, pred, ref = (getattr(self, f"n_{n}").to(torch.float64) for n in ("tp", "pred", "ref"))
        p = tp / pred if pred > 0 else tp.new_tensor(0.0)
        r = tp / ref if ref > 0 else tp.new_tensor(0.0)
        f1 = 2 * p * r / (p + r) if p + r > 0 else tp.new_tensor(0.0)
        keys = self.n_pred_keys.to(torch.float64)
        rate = self.n_hallucinated_keys / keys if keys > 0 else tp.new_tensor(0.0)
        scores = {"precision": p, "recall": r, "f1": f1, "hallucination_rate": rate}
        if self.n_samples == 0:
            scores = {k: v.new_tensor(float("nan")) for k, v in scores.items()}
        totals = {"tp": self.n_tp, "pred": self.n_pred, "ref": self.n_ref, "count": self.n_samples}
        return scores | totals | self._malformed_dict()

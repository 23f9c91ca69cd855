"""JSON attribute precision / recall / F1 and hallucinated-field rate (eBay DAE, ECInstruct's AVE triples)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from valley3.eval.metrics.base import EvalMetric, _check_lengths
from valley3.eval.metrics.extract import _norm_key, extract_json, unwrap_field
from valley3.eval.metrics.match import normalize_text


def flatten_json(obj: Any, prefix: str = "") -> list[tuple[str, str]]:
    """The distinct ``(dotted.key.path, normalised value)`` pairs of a JSON value, in order.

    Nested objects give dotted paths (``{"size": {"waist": 32}}`` -> ``("size.waist", "32")``); each scalar of
    a list is one value under the list's key; an object (or list) inside a list is one whole value, its
    normalised JSON, so values swapped between two listed objects match nothing. Keys are lowercased with
    ``_``/``-``/spaces folded; ``null`` and empty strings are "not stated" and dropped.
    """
    if isinstance(obj, Mapping):
        pairs = []
        for key, value in obj.items():
            pairs += flatten_json(value, f"{prefix}.{_norm_key(key)}" if prefix else _norm_key(key))
        return list(dict.fromkeys(pairs))
    if isinstance(obj, (list, tuple)):
        pairs = []
        for item in obj:
            if not isinstance(item, (Mapping, list, tuple)):
                pairs += flatten_json(item, prefix)
            elif whole := _normalised(item):
                pairs.append((prefix, json.dumps(whole, sort_keys=True, ensure_ascii=False)))
        return list(dict.fromkeys(pairs))
    if obj is None:
        return []
    value = str(obj).lower() if isinstance(obj, bool) else normalize_text(obj)
    return [(prefix, value)] if value else []


def _normalised(obj: Any) -> Any:
    """A JSON value with keys folded, scalars normalised, unstated (null, empty) entries and list order dropped."""
    if isinstance(obj, Mapping):
        out = {_norm_key(k): _normalised(v) for k, v in obj.items()}
        return {k: v for k, v in out.items() if v not in (None, "", [], {})}
    if isinstance(obj, (list, tuple)):
        unique = {json.dumps(v, sort_keys=True, ensure_ascii=False): v for v in map(_normalised, obj)}
        return [unique[k] for k in sorted(unique)]
    if obj is None:
        return None
    return str(obj).lower() if isinstance(obj, bool) else normalize_text(obj)


def _tuples(items: Sequence[Any], keys: Sequence[str]) -> set[str]:
    """Each listed object as the exact JSON of its ``keys`` (others ignored, as eCeLLM); anything else whole."""
    out = set()
    for item in items:
        if isinstance(item, Mapping) and all(k in item for k in keys):
            out.add(json.dumps([item[k] for k in keys], sort_keys=True, ensure_ascii=False))
        else:
            out.add("invalid:" + json.dumps(item, sort_keys=True, ensure_ascii=False))
    return out


def attribute_counts(pred: Any, ref: Any, tuple_keys: Sequence[str] | None = None) -> dict[str, int]:
    """Per-sample counts over distinct items (sets, so a repeated claim counts once): ``tp``, ``pred``, ``ref``,
    ``pred_keys`` (distinct predicted key paths) and ``hallucinated_keys`` (those absent from the reference).

    Items are the ``(key path, value)`` pairs of :func:`flatten_json`; with ``tuple_keys`` both sides are lists
    of objects matched whole on exactly those fields (ECInstruct's attribute / value / source triples).
    """
    if tuple_keys is not None:
        p = _tuples(pred or [], tuple_keys) if isinstance(pred, list) else set()
        r = _tuples(ref, tuple_keys)
        return {"tp": len(p & r), "pred": len(p), "ref": len(r), "pred_keys": 0, "hallucinated_keys": 0}
    pred_pairs, ref_pairs = set(flatten_json(pred or {})), set(flatten_json(ref))
    pred_keys, ref_keys = {k for k, _ in pred_pairs}, {k for k, _ in ref_pairs}
    return {
        "tp": len(pred_pairs & ref_pairs),
        "pred": len(pred_pairs),
        "ref": len(ref_pairs),
        "pred_keys": len(pred_keys),
        "hallucinated_keys": len(pred_keys - ref_keys),
    }


def score_json(
    pred: str | Any, ref: Any, field: str | None = None, tuple_keys: Sequence[str] | None = None
) -> tuple[dict[str, int], str | None, Any]:
    """One output's :func:`attribute_counts` against a reference, its malformed reason and the JSON value scored.

    The output's JSON (:func:`extract_json`; a parsed value is taken as is) is unwrapped from ``field`` when it
    holds one; a value of another shape than the reference (an array for an object) is ``wrong_type``. A
    malformed output predicts nothing.
    """
    if isinstance(pred, (str, type(None))):
        got = extract_json(pred)
        value, reason = got.value, got.reason
    else:
        value, reason = pred, None
    value = unwrap_field(value, field)
    if reason is None and not isinstance(value, list if isinstance(ref, list) else Mapping):
        reason = "wrong_type"
    value = value if reason is None else None
    return attribute_counts(value, ref, tuple_keys), reason, value


def sample_f1(counts: Mapping[str, int], reason: str | None) -> float:
    """One sample's F1, 2 tp / (pred + ref): 0 for a malformed output, 1 for a well-formed one when neither
    side states anything. (Tables use the micro F1 over all samples' counts, never the mean of these.)"""
    total = counts["pred"] + counts["ref"]
    if reason is not None:
        return 0.0
    return 2 * counts["tp"] / total if total else 1.0


class JSONAttributeF1(EvalMetric):
    """Micro-averaged key/value precision, recall and F1 of JSON attributes, plus the hallucinated-field rate.

    Over all samples: P = sum(tp) / sum(pred), R = sum(tp) / sum(ref), F1 = 2 sum(tp) / (sum(pred) + sum(ref));
    hallucination_rate = sum(predicted key paths not in the reference) / sum(predicted key paths). A malformed
    prediction predicts nothing (it lowers recall) and is counted under ``malformed``; a sample whose reference
    is empty adds its predictions to the precision's denominator only.

    Args:
        field: unwrap ``obj[field]`` when the predicted object holds it (``"answer"`` for
            ``{"thinking process": ..., "answer": {...}}``); ``None`` scores the whole object.
        tuple_keys: match listed objects whole on these fields (``["attribute", "value", "source"]``).
    """

    _COUNTS = ("tp", "pred", "ref", "pred_keys", "hallucinated_keys", "samples")

    def __init__(self, field: str | None = None, tuple_keys: Sequence[str] | None = None, **kwargs: Any) -> None:
        super().__init__(None, **kwargs)
        self.field, self.tuple_keys = field, list(tuple_keys) if tuple_keys else None
        for name in self._COUNTS:
            self.add_state(f"n_{name}", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

    def update(
        self,
        preds: Sequence[str | Mapping[str, Any] | None] = (),
        targets: Sequence[Any] = (),
        *,
        counts: Sequence[Mapping[str, int]] | None = None,
        reasons: Sequence[str | None] = (),
    ) -> None:
        """Args: raw outputs (or parsed values) and reference objects (or their JSON strings); or instead, the
        per-sample :func:`attribute_counts` already scored (a benchmark's ``score``) with malformed ``reasons``."""
        if counts is None:
            _check_lengths(preds=preds, targets=targets)
            scored = [
                score_json(p, json.loads(t) if isinstance(t, str) else t, self.field, self.tuple_keys)
                for p, t in zip(preds, targets)
            ]
            counts, reasons = [c for c, _, _ in scored], [r for _, r, _ in scored]
        totals = Counter()
        for c in counts:
            totals.update(c)
        for name in self._COUNTS[:-1]:
            getattr(self, f"n_{name}").add_(totals[name])
        self.n_samples += len(counts)
        self._count_failures(reasons)

    def compute(self) -> dict[str, Tensor]:
        """``precision``, ``recall``, ``f1``, ``hallucination_rate`` (0 where nothing was predicted; NaN
        before any sample), the totals ``tp``, ``pred``, ``ref``, ``count``, and ``malformed[/<reason>]``."""
        tp, pred, ref = (getattr(self, f"n_{n}").to(torch.float64) for n in ("tp", "pred", "ref"))
        p = tp / pred if pred > 0 else tp.new_tensor(0.0)
        r = tp / ref if ref > 0 else tp.new_tensor(0.0)
        f1 = 2 * tp / (pred + ref) if pred + ref > 0 else tp.new_tensor(0.0)
        keys = self.n_pred_keys.to(torch.float64)
        rate = self.n_hallucinated_keys / keys if keys > 0 else tp.new_tensor(0.0)
        scores = {"precision": p, "recall": r, "f1": f1, "hallucination_rate": rate}
        if self.n_samples == 0:
            scores = {k: v.new_tensor(float("nan")) for k, v in scores.items()}
        totals = {"tp": self.n_tp, "pred": self.n_pred, "ref": self.n_ref, "count": self.n_samples}
        return scores | totals | self._malformed_dict()

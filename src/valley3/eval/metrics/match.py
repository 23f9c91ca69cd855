"""Normalised string match (eBay Aspect Prediction, short answers) and classification over given classes."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from valley3.eval.metrics.base import EvalMetric, _bump, _check_lengths, _ratio
from valley3.eval.metrics.extract import LETTERS, extract_answer_text, extract_letter

_ARTICLES = re.compile(r"\b(?:a|an|the)\b")


def normalize_text(text: Any) -> str:
    """NFKC, lowercase, punctuation removed (SQuAD style: "T-shirt" -> "tshirt") except between digits
    ("1.5", "1,000"), articles dropped unless nothing else is left, whitespace collapsed; an integral
    float prints as an int."""
    if isinstance(text, float) and text.is_integer():
        text = int(text)
    text = unicodedata.normalize("NFKC", str(text)).lower()
    text = "".join(ch for i, ch in enumerate(text) if _keep(text, i))
    return " ".join(_ARTICLES.sub(" ", text).split()) or " ".join(text.split())  # a value "A" stays "a"


def _keep(text: str, i: int) -> bool:
    if not unicodedata.category(text[i]).startswith("P"):
        return True
    return 0 < i < len(text) - 1 and text[i - 1].isdigit() and text[i + 1].isdigit()


def match_answer(
    pred: str | None, target: str | Sequence[str], field: str = "answer", options: Sequence[str] | None = None
) -> tuple[bool, str | None]:
    """Whether a raw output's answer equals a target (or any of several) after normalisation.

    The answer is the text after thinking (the JSON ``field`` when the output is JSON). A target that is a
    single letter is an option letter: the output must name that option and no other (:func:`extract_letter`,
    with the option texts when given), never a normalised string match ("A B" loses its article "A").

    Returns:
        ``(correct, failure reason or None)``; a malformed output is wrong with its reason.
    """
    targets = [target] if isinstance(target, str) else list(target)
    letters = {s for s in (t.strip().upper() for t in targets) if len(s) == 1 and s in LETTERS}
    words = [t for t in targets if t.strip().upper() not in letters]
    if letters:
        got = extract_letter(pred, num_options=max(4, *(LETTERS.index(s) + 1 for s in letters)), options=options)
        if (got.ok and got.value in letters) or not words:
            return got.ok and got.value in letters, got.reason
    got = extract_answer_text(pred, field)
    if not got.ok:
        return False, got.reason
    answer = normalize_text(got.value)
    return any(answer == normalize_text(t) for t in words), None


def classify_answer(
    pred: str | None, target: str, classes: Iterable[str], field: str = "answer"
) -> tuple[bool, bool, str | None, str | None]:
    """One output against a gold class: ``(correct, out_of_set, malformed reason, answer read)``; the whole
    answer must be one of ``classes`` after normalisation ("short or long" is out of set)."""
    allowed = {normalize_text(c) for c in classes}
    if normalize_text(target) not in allowed:
        raise ValueError(f"target {target!r} is not a class among {sorted(allowed)}")
    got = extract_answer_text(pred, field)
    answer = normalize_text(got.value) if got.ok else None
    return answer == normalize_text(target), got.ok and answer not in allowed, got.reason, got.value


class StringMatch(EvalMetric):
    """Accuracy of normalised string match, per sub-task and overall (micro over samples).

    Args:
        subtasks: sub-task names (e.g. general, fashion, fashion_title_category); ``None`` for one bucket.
        field: JSON field holding the answer when the model answers in JSON.
    """

    def __init__(self, subtasks: Sequence[str] | None = None, field: str = "answer", **kwargs: Any) -> None:
        super().__init__(subtasks, **kwargs)
        self.field = field
        n = len(self.subtasks)
        self.add_state("correct", torch.zeros(n, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros(n, dtype=torch.int64), dist_reduce_fx="sum")

    def update(
        self,
        preds: Sequence[str | None] = (),
        targets: Sequence[str | Sequence[str]] = (),
        subtasks: Sequence[str] | str | None = None,
        *,
        correct: Sequence[bool] | None = None,
        reasons: Sequence[str | None] = (),
    ) -> None:
        """Args: raw outputs, target string (or list of accepted strings) per sample, sub-task per sample; or
        instead of outputs and targets, ``correct`` verdicts already scored (a benchmark's ``score``) with their
        malformed ``reasons``."""
        if correct is None:
            _check_lengths(preds=preds, targets=targets)
            scored = [match_answer(p, t, self.field) for p, t in zip(preds, targets)]
            correct, reasons = [ok for ok, _ in scored], [r for _, r in scored]
        subs = self._subtask_ids(subtasks, len(correct))
        _bump(self.correct, subs, [int(ok) for ok in correct])
        _bump(self.total, subs)
        self._count_failures(reasons)

    def compute(self) -> dict[str, Tensor]:
        """``acc``, ``count``, ``acc/<subtask>``, ``count/<subtask>``, ``malformed[/<reason>]``."""
        out = {"acc": _ratio(self.correct.sum(), self.total.sum()), "count": self.total.sum()}
        out |= self._per_subtask("acc", _ratio(self.correct, self.total)) | self._per_subtask("count", self.total)
        return out | self._malformed_dict()


class ClassificationAccuracy(EvalMetric):
    """Per-attribute accuracy over given classes and its mean (eBay Deep Fashion Understanding).

    A prediction whose normalised answer is not one of the attribute's classes is wrong and counted
    as ``out_of_set``; a malformed output is wrong and counted under ``malformed/<reason>``.

    Args:
        classes: attribute name -> its class names, e.g. ``{"sleeve": ["long", "short", "sleeveless"]}``.
        field: JSON field holding the answer when the model answers in JSON.
    """

    def __init__(self, classes: Mapping[str, Sequence[str]], field: str = "answer", **kwargs: Any) -> None:
        super().__init__(list(classes), **kwargs)
        self.field = field
        self.classes = {attr: {normalize_text(c) for c in names} for attr, names in classes.items()}
        n = len(self.subtasks)
        for name in ("correct", "total", "out_of_set"):
            self.add_state(name, torch.zeros(n, dtype=torch.int64), dist_reduce_fx="sum")

    def update(
        self,
        preds: Sequence[str | None] = (),
        targets: Sequence[str] = (),
        attributes: Sequence[str] | str = (),
        *,
        correct: Sequence[bool] | None = None,
        out_of_set: Sequence[bool] = (),
        reasons: Sequence[str | None] = (),
    ) -> None:
        """Args: raw outputs, gold class per sample, attribute per sample (or one for all); or instead of outputs
        and targets, verdicts already scored (:func:`classify_answer`): ``correct``, ``out_of_set``, ``reasons``."""
        if correct is None:
            n = _check_lengths(preds=preds, targets=targets)
            names = [attributes] * n if isinstance(attributes, str) else list(attributes)
            verdicts = [classify_answer(p, t, self.classes[a], self.field) for p, t, a in zip(preds, targets, names)]
            correct, out_of_set, reasons = ([v[k] for v in verdicts] for k in range(3))
        ids = self._subtask_ids(attributes, len(correct))
        _bump(self.correct, ids, [int(c) for c in correct])
        _bump(self.out_of_set, ids, [int(o) for o in out_of_set])
        _bump(self.total, ids)
        self._count_failures(reasons)

    def compute(self) -> dict[str, Tensor]:
        """``acc`` (mean over attributes seen), ``acc_micro``, ``acc/<attr>``, ``count/<attr>``,
        ``out_of_set[/<attr>]``, ``malformed[/<reason>]``."""
        per_attr = _ratio(self.correct, self.total)
        seen = self.total > 0
        out = {
            "acc": per_attr[seen].mean() if seen.any() else per_attr.new_tensor(float("nan")),
            "acc_micro": _ratio(self.correct.sum(), self.total.sum()),
            "count": self.total.sum(),
            "out_of_set": self.out_of_set.sum(),
        }
        out |= {f"acc/{a}": per_attr[i] for i, a in enumerate(self.subtasks)}
        out |= {f"count/{a}": self.total[i] for i, a in enumerate(self.subtasks)}
        out |= {f"out_of_set/{a}": self.out_of_set[i] for i, a in enumerate(self.subtasks)}
        return out | self._malformed_dict()

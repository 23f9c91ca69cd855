"""Normalised string match (eBay Aspect Prediction, short answers) and classification over given classes."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from valley3.eval.metrics.base import EvalMetric, _bump, _check_lengths, _ratio
from valley3.eval.metrics.extract import extract_answer_text, extract_letter

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


def match_answer(pred: str | None, target: str | Sequence[str], field: str = "answer") -> tuple[bool, str | None]:
    """Whether a raw output's answer equals a target (or any of several) after normalisation.

    The answer is the text after thinking (the JSON ``field`` when the output is JSON). A target that is
    a single letter also accepts the option letter of the output ("(B) red", "the answer is B").

    Returns:
        ``(correct, failure reason or None)``; a malformed output is wrong with its reason.
    """
    targets = [target] if isinstance(target, str) else list(target)
    got = extract_answer_text(pred, field)
    if not got.ok:
        return False, got.reason
    answer = normalize_text(got.value)
    if any(answer == normalize_text(t) for t in targets):
        return True, None
    letters = {s.upper() for s in (t.strip() for t in targets) if len(s) == 1 and s.isascii() and s.isalpha()}
    if letters:
        letter = extract_letter(pred, num_options=26)
        return letter.ok and letter.value in letters, None
    return False, None


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
        preds: Sequence[str | None],
        targets: Sequence[str | Sequence[str]],
        subtasks: Sequence[str] | str | None = None,
    ) -> None:
        """Args: raw outputs, target string (or list of accepted strings) per sample, sub-task per sample."""
        n = _check_lengths(preds=preds, targets=targets)
        subs = self._subtask_ids(subtasks, n)
        oks, reasons = zip(*(match_answer(p, t, self.field) for p, t in zip(preds, targets))) if n else ((), ())
        _bump(self.correct, subs, [int(ok) for ok in oks])
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

    def update(self, preds: Sequence[str | None], targets: Sequence[str], attributes: Sequence[str] | str) -> None:
        """Args: raw outputs, gold class per sample, attribute per sample (or one for all)."""
        n = _check_lengths(preds=preds, targets=targets)
        ids = self._subtask_ids(attributes, n)
        correct, out_of_set, reasons = [], [], []
        for pred, target, idx in zip(preds, targets, ids):
            allowed = self.classes[self.subtasks[idx]]
            gold = normalize_text(target)
            if gold not in allowed:
                raise ValueError(f"target {target!r} is not a class of attribute {self.subtasks[idx]!r}")
            got = extract_answer_text(pred, self.field)
            answer = normalize_text(got.value) if got.ok else None
            reasons.append(got.reason)
            out_of_set.append(int(got.ok and answer not in allowed))
            correct.append(int(answer == gold))
        _bump(self.correct, ids, correct)
        _bump(self.out_of_set, ids, out_of_set)
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

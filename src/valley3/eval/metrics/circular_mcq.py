"""Circular multiple choice (Valley2 Ecom-VQA): a question passes only if every rotation of its options is right."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torchmetrics.utilities import dim_zero_cat

from valley3.eval.metrics.base import EvalMetric, _check_lengths, _ratio
from valley3.eval.metrics.extract import LETTERS, extract_letter

@dataclass(frozen=True)
class Rotation:
    """One asking of a question: options in this order, ``answer`` the correct letter, ``index`` the rotation."""

    options: list[str]
    answer: str
    index: int


def rotate_options(options: Sequence[str], answer: int | str) -> list[Rotation]:
    """The ``len(options)`` cyclic rotations of a question, the correct answer at letter ``r`` in rotation ``r``.

    Args:
        options: the option texts in their original order.
        answer: the correct option, as an index or a letter ("B").
    """
    n = len(options)
    if not 2 <= n <= len(LETTERS):
        raise ValueError(f"need 2..26 options, got {n}")
    a = LETTERS.index(answer.strip().upper()) if isinstance(answer, str) else int(answer)
    if not 0 <= a < n:
        raise ValueError(f"answer {answer!r} is not one of {n} options")
    rotations = []
    for r in range(n):
        shift = (a - r) % n  # rotated[i] = options[(i + shift) % n], so the answer lands at i = r
        rotations.append(Rotation(list(options[shift:]) + list(options[:shift]), LETTERS[r], r))
    return rotations


def _hash_id(question_id: Any) -> int:
    """A stable signed 64-bit key for a question id (Python's ``hash`` differs between processes)."""
    digest = hashlib.blake2b(str(question_id).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


class CircularMCQ(EvalMetric):
    """Circular MCQ accuracy per sub-task and overall, from one prediction per (question, rotation).

    Each ``update`` row is one rotation; rotations of a question may arrive in different batches or on
    different ranks. Rows are kept as int64 ``(hash(question_id), rotation, subtask, correct)`` and
    grouped by question in ``compute``, so the question-level AND happens after the cross-rank sync.
    A question passes iff all its rows are right and at least ``num_rotations`` distinct rotations were
    seen (rows without a rotation index count one each); a question seen fewer times fails and is
    counted as ``incomplete``. Duplicated rows (a padding sampler) do not change the verdict.

    Args:
        subtasks: sub-task names (e.g. IU, OCR, DS, MIU, PTU, GVU, PEU, AL, VCR).
        num_options: letters beyond this count are malformed (``invalid_letter``).
        num_rotations: rotations a question needs to pass; defaults to ``num_options``.
    """

    def __init__(
        self,
        subtasks: Sequence[str] | None = None,
        num_options: int = 4,
        num_rotations: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(subtasks, **kwargs)
        self.num_options = num_options
        self.num_rotations = num_rotations or num_options
        self.add_state("records", [], dist_reduce_fx="cat")

    def update(
        self,
        question_ids: Sequence[Any],
        preds: Sequence[str | None] = (),
        targets: Sequence[str] = (),
        subtasks: Sequence[str] | str | None = None,
        rotations: Sequence[int] | None = None,
        options: Sequence[Sequence[str]] | None = None,
        *,
        correct: Sequence[bool] | None = None,
        reasons: Sequence[str | None] = (),
    ) -> None:
        """Args: question ids, raw outputs (or letters), correct letters, sub-task per row, rotation per row,
        the option texts of each row in its rotated order (an answer may name an option by its text); or
        instead of outputs and targets, ``correct`` rows already scored (a benchmark's ``score``) and ``reasons``."""
        if correct is None:
            correct, reasons = self._score(question_ids, preds, targets, options)
        n = _check_lengths(question_ids=question_ids, correct=correct)
        if rotations is not None:
            _check_lengths(question_ids=question_ids, rotations=rotations)
        sub_ids = self._subtask_ids(subtasks, n)
        rows = [
            [_hash_id(question_ids[i]), -1 if rotations is None else int(rotations[i]), sub_ids[i], int(correct[i])]
            for i in range(n)
        ]
        self._count_failures(reasons)
        if rows:
            self.records.append(torch.tensor(rows, dtype=torch.int64, device=self.device).flatten())

    def _score(
        self, question_ids: Sequence[Any], preds: Sequence[str | None], targets: Sequence[str], options: Any
    ) -> tuple[list[bool], list[str | None]]:
        n = _check_lengths(question_ids=question_ids, preds=preds, targets=targets)
        correct, reasons = [], []
        for i in range(n):
            target = str(targets[i]).strip().upper()
            if len(target) != 1 or LETTERS.find(target) not in range(self.num_options):
                raise ValueError(f"target {targets[i]!r} is not a letter among {self.num_options} options")
            got = extract_letter(preds[i], self.num_options, options[i] if options is not None else None)
            correct.append(got.ok and got.value == target)
            reasons.append(got.reason)
        return correct, reasons

    def compute(self) -> dict[str, Tensor]:
        """``acc``, ``acc/<subtask>``, ``count`` (questions), ``count/<subtask>``, ``rotation_acc`` (per
        row, not circular), ``incomplete`` (questions with too few rotations), ``malformed[/<reason>]``."""
        recs = dim_zero_cat(self.records) if len(self.records) else torch.zeros(0, dtype=torch.int64)
        recs = recs.view(-1, 4).to(self.malformed.device)
        keys, inv = torch.unique(recs[:, 0], return_inverse=True)
        nq, rot, correct = len(keys), recs[:, 1], recs[:, 3]
        wrong = torch.zeros(nq, dtype=torch.int64, device=recs.device).index_add_(0, inv, 1 - correct)
        has_rot = rot >= 0
        pairs = torch.unique(torch.stack([inv[has_rot], rot[has_rot]], dim=1), dim=0)
        seen = torch.bincount(pairs[:, 0], minlength=nq) + torch.bincount(inv[~has_rot], minlength=nq)
        complete = seen >= self.num_rotations
        passed = ((wrong == 0) & complete).to(torch.int64)
        sub = torch.zeros(nq, dtype=torch.int64, device=recs.device).scatter_(0, inv, recs[:, 2])
        n_sub = len(self.subtasks)
        passed_sub = torch.zeros(n_sub, dtype=torch.int64, device=recs.device).index_add_(0, sub, passed)
        count_sub = torch.bincount(sub, minlength=n_sub)
        out = {
            "acc": _ratio(passed.sum(), torch.tensor(nq, device=recs.device)),
            "count": torch.tensor(nq, device=recs.device),
            **self._per_subtask("acc", _ratio(passed_sub, count_sub)),
            **self._per_subtask("count", count_sub),
            "rotation_acc": _ratio(correct.sum(), torch.tensor(len(correct), device=recs.device)),
            "incomplete": (~complete).sum(),
        }
        return {**out, **self._malformed_dict()}

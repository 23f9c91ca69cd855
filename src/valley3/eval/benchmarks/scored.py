"""What a benchmark makes of one output (:class:`Scored`) and the metric that averages those per sub-task."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from valley3.eval.metrics import WeightedSubtaskScore, extract_answer_text, match_answer


@dataclass
class Scored:
    """One output as its benchmark scored it: what the table adds up and what ``predictions.jsonl`` shows.

    ``score`` is in [0, 1] (``None`` for corpus-only metrics), ``malformed`` the failure reason or ``None``,
    ``extracted`` the answer the scorer read (a letter, a text, a JSON value), and ``extra`` the sample's
    numbers behind a non-mean aggregate (``counts`` of a micro F1, ``verdicts`` of a judge), written as they are.
    """

    score: float | None
    malformed: str | None = None
    extracted: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


class SampleScore(WeightedSubtaskScore):
    """Per-sample scores a benchmark already computed, averaged per sub-task (micro F1 of the counts for
    ``f1_subtasks``), plus their malformed reasons."""

    def update(
        self,
        scores: Sequence[float],
        subtasks: Sequence[str],
        reasons: Sequence[str | None] = (),
        counts: Sequence[Mapping[str, int] | None] | None = None,
    ) -> None:
        super().update(scores, subtasks, counts)
        self._count_failures(reasons)


def scored_match(prediction: str | None, target: str | Sequence[str], options: Sequence[str] | None = None) -> Scored:
    """:func:`match_answer` as a :class:`Scored`: 1 when the answer is the target (a letter target: names only that
    option), with the answer text it read."""
    ok, reason = match_answer(prediction, target, options=options)
    got = extract_answer_text(prediction)
    return Scored(float(ok), reason, got.value)

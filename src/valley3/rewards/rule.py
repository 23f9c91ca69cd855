"""Rule-based scorers: a model's answer against a reference answer -> a score in [0, 1] (rejection sampling, GRPO)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from valley3.eval.metrics.extract import extract_answer_text, extract_json, extract_letter
from valley3.eval.metrics.json_attributes import attribute_counts
from valley3.eval.metrics.match import match_answer, normalize_text

SCORERS = ("exact", "choice", "json", "auto")


def _reference_text(reference: str) -> str:
    """The reference's answer (after any thinking block, its "Answer:" prefix or its JSON ``answer`` field)."""
    got = extract_answer_text(reference)
    return got.value if got.ok else reference


def exact_score(answer: str | None, reference: str) -> float:
    """1.0 when the answer equals the reference after normalisation (case, punctuation, articles), else 0.0.

    A single-letter reference also accepts the answer's option letter ("(B) red", "the answer is B").
    """
    return float(match_answer(answer, _reference_text(reference))[0])


def reference_letter(reference: str) -> str | None:
    """The option letter a reference states ("B", "B.", "(B)", "Answer: B"), or None when it states none."""
    letter = extract_letter(reference, num_options=26)
    return letter.value if letter.ok else None


def choice_score(answer: str | None, reference: str, num_options: int = 26) -> float:
    """1.0 when the answer's multiple-choice letter is the reference's letter, else 0.0.

    A letter beyond `num_options`, or no letter at all, scores 0.0.

    Raises:
        ValueError: the reference states no option letter.
    """
    want = reference_letter(reference)
    if want is None:
        raise ValueError(f"choice scorer: the reference {reference!r} states no option letter")
    got = extract_letter(answer, num_options=num_options)
    return float(got.ok and got.value == want)


def reference_json(reference: str | Mapping[str, Any]) -> Any:
    """The reference's JSON object (a mapping is taken as is).

    Raises:
        ValueError: the reference holds no JSON object.
    """
    if isinstance(reference, Mapping):
        return reference
    got = extract_json(reference)
    if not got.ok:
        raise ValueError(f"json scorer: the reference {reference[:80]!r} holds no JSON object ({got.reason})")
    return got.value


def json_f1(answer: str | None, reference: str | Mapping[str, Any]) -> float:
    """Key/value F1 of the answer's JSON attributes against the reference's (see `eval.metrics.attribute_counts`).

    Nested keys compare as dotted paths and values after normalisation. An answer without a JSON object
    scores 0.0; an empty answer object against an empty reference scores 1.0.
    """
    ref = reference_json(reference)
    got = extract_json(answer)
    if not got.ok:
        return 0.0
    counts = attribute_counts(got.value if isinstance(got.value, Mapping) else {}, ref)
    if counts["pred"] + counts["ref"] == 0:
        return 1.0
    return 2 * counts["tp"] / (counts["pred"] + counts["ref"])  # = 2PR / (P + R)


def reference_kind(reference: str) -> str:
    """The scorer a reference's shape calls for: "json" (a JSON object), "choice" (nothing but an option
    letter: "B", "B.", "(B)", "Answer: B"), else "exact"."""
    stripped = reference.strip()
    if stripped.startswith(("{", "```")) and extract_json(stripped).ok:
        return "json"
    if len(normalize_text(_reference_text(stripped))) == 1 and reference_letter(stripped) is not None:
        return "choice"
    return "exact"


@dataclass(frozen=True)
class RuleScorer:
    """Scores answers against references with one rule; `passed` turns a score into right/wrong.

    Args:
        kind: "exact" (normalised string match), "choice" (option letter), "json" (attribute F1),
            or "auto" (chosen per reference by `reference_kind`).
        json_threshold: a JSON answer passes when its F1 is at least this (exact and choice pass at 1.0).
    """

    kind: str = "auto"
    json_threshold: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in SCORERS:
            raise ValueError(f"scorer must be one of {SCORERS}, got {self.kind!r}")
        if not 0.0 <= self.json_threshold <= 1.0:
            raise ValueError(f"json_threshold must lie in [0, 1], got {self.json_threshold}")

    def kind_for(self, reference: str) -> str:
        """The rule used for this reference (the scorer's own kind unless it is "auto")."""
        return reference_kind(reference) if self.kind == "auto" else self.kind

    def check(self, reference: str) -> str:
        """The rule for this reference; raises ValueError when the reference does not fit it (no letter, no JSON)."""
        kind = self.kind_for(reference)
        if kind == "choice" and reference_letter(reference) is None:
            raise ValueError(f"choice scorer: the reference {reference!r} states no option letter")
        if kind == "json":
            reference_json(reference)
        return kind

    def score(self, answer: str | None, reference: str) -> float:
        """The answer's score in [0, 1]."""
        return _RULES[self.kind_for(reference)](answer, reference)

    def passed(self, score: float, reference: str) -> bool:
        """Whether a score counts as a right answer for this reference's rule."""
        threshold = self.json_threshold if self.kind_for(reference) == "json" else 1.0
        return score >= threshold - 1e-9

    __call__ = score


_RULES: dict[str, Callable[[str | None, Any], float]] = {"exact": exact_score, "choice": choice_score, "json": json_f1}


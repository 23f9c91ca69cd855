"""Rule-based scorers on hand-written answers: exact, choice, JSON attribute F1, and auto's choice of rule."""

from __future__ import annotations

import pytest

from valley3.rewards import RuleScorer, choice_score, exact_score, json_f1, reference_kind


@pytest.mark.parametrize(
    ("answer", "reference", "score"),
    [
        ("Linen.", "Linen.", 1.0),
        ("  LINEN ", "Linen.", 1.0),  # case, punctuation, spaces
        ("The answer is linen", "Linen.", 1.0),  # answer prefix
        ("<thinking>maybe cotton</thinking>Linen", "Linen.", 1.0),  # thinking stripped
        ('{"answer": "linen"}', "Linen.", 1.0),  # JSON answer field
        ("shirt", "A shirt.", 1.0),  # articles dropped
        ("Cotton.", "Linen.", 0.0),
        ("Linen and cotton", "Linen.", 0.0),
        ("", "Linen.", 0.0),
        (None, "Linen.", 0.0),
        ("<thinking>never closed", "Linen.", 0.0),
        ("1.5 kg", "1.5kg", 0.0),  # the space is kept: "1.5 kg" != "1.5kg"
        ("1,000", "1000", 0.0),  # digit punctuation is kept
    ],
)
def test_exact(answer, reference, score):
    assert exact_score(answer, reference) == score


@pytest.mark.parametrize(
    ("answer", "reference", "score"),
    [
        ("A", "A.", 1.0),
        ("(A) shirt", "A.", 1.0),
        ("The answer is A.", "A", 1.0),
        ("I think it is (A)", "(A)", 1.0),
        ('{"answer": "A"}', "Answer: A", 1.0),
        ("B", "A.", 0.0),
        ("shirt", "A.", 0.0),  # no letter
        ("E", "E", 0.0),  # beyond num_options=4 below
    ],
)
def test_choice(answer, reference, score):
    assert choice_score(answer, reference, num_options=4) == score


def test_choice_needs_a_letter_in_the_reference():
    with pytest.raises(ValueError, match="states no option letter"):
        choice_score("A", "a linen shirt")
    with pytest.raises(ValueError, match="states no option letter"):
        RuleScorer("choice").check("Linen.")


def test_json_f1():
    ref = '{"colour": "Red", "size": {"waist": 32}, "material": ["cotton", "linen"]}'  # 4 pairs
    assert json_f1('{"colour": "red", "size": {"waist": "32"}, "material": ["linen", "cotton"]}', ref) == 1.0
    # 2 of 3 predicted pairs right against 4 reference pairs: F1 = 2*2 / (3 + 4)
    assert json_f1('Here: {"colour": "red", "material": "cotton", "brand": "Pavo"}', ref) == pytest.approx(4 / 7)
    assert json_f1("```json\n{\"colour\": \"blue\"}\n```", ref) == 0.0
    assert json_f1('{"colour": "red"', ref) == 0.0  # truncated
    assert json_f1("red", ref) == 0.0
    assert json_f1("{}", "{}") == 1.0
    with pytest.raises(ValueError, match="holds no JSON object"):
        json_f1("{}", "red")


@pytest.mark.parametrize(
    ("reference", "kind"),
    [
        ("A.", "choice"), ("(C)", "choice"), ("Answer: B", "choice"), ("b", "choice"),
        ("A shirt.", "exact"), ("B. Red shoes", "exact"), ("Linen.", "exact"), ("12", "exact"),
        ('{"colour": "red"}', "json"), ('```json\n{"colour": "red"}\n```', "json"), ("{not json", "exact"),
    ],
)
def test_auto_picks_the_rule_by_the_reference(reference, kind):
    assert reference_kind(reference) == kind
    assert RuleScorer("auto").check(reference) == kind


def test_scorer_pass_thresholds():
    ref = '{"colour": "red", "size": "M"}'
    half = '{"colour": "red"}'  # F1 = 2/3
    strict, loose = RuleScorer("auto"), RuleScorer("auto", json_threshold=0.6)
    assert strict.score(half, ref) == pytest.approx(2 / 3)
    assert not strict.passed(strict.score(half, ref), ref)
    assert loose.passed(loose.score(half, ref), ref)
    assert strict.passed(strict.score("A", "A."), "A.") and not strict.passed(strict.score("B", "A."), "A.")
    assert RuleScorer("exact").score("A", "A.") == 1.0  # exact also accepts a lone letter
    assert RuleScorer("exact").score("(A) shirt", "B.") == 0.0
    with pytest.raises(ValueError, match="scorer must be one of"):
        RuleScorer("bleu")
    with pytest.raises(ValueError, match="json_threshold"):
        RuleScorer(json_threshold=1.5)

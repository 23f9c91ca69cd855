"""Rewards: rule-based scorers of an answer against a reference (rejection sampling now, GRPO later)."""

from valley3.rewards.rule import (
    SCORERS,
    RuleScorer,
    choice_score,
    exact_score,
    json_f1,
    reference_kind,
    reference_letter,
)

__all__ = ["SCORERS", "RuleScorer", "choice_score", "exact_score", "json_f1", "reference_kind", "reference_letter"]

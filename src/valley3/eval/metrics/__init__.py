"""Evaluation metrics: torchmetrics Metrics whose states sync across ranks, plus answer extraction."""

from valley3.eval.metrics.base import EvalMetric
from valley3.eval.metrics.caption import CAPTION_METRICS, CaptionMetrics, caption_text, score_captions, simple_tokenize
from valley3.eval.metrics.circular_mcq import CircularMCQ, Rotation, rotate_options
from valley3.eval.metrics.extract import (
    FAILURE_REASONS,
    Extracted,
    extract_answer_text,
    extract_json,
    extract_json_field,
    extract_letter,
    strip_thinking,
    unwrap_field,
)
from valley3.eval.metrics.json_attributes import (
    JSONAttributeF1,
    attribute_counts,
    flatten_json,
    sample_f1,
    score_json,
)
from valley3.eval.metrics.match import (
    ClassificationAccuracy,
    StringMatch,
    classify_answer,
    match_answer,
    normalize_text,
)
from valley3.eval.metrics.retrieval import RecallAtK, parse_ranking, recall_at_k
from valley3.eval.metrics.weighted import WeightedSubtaskScore

__all__ = [
    "CAPTION_METRICS",
    "FAILURE_REASONS",
    "CaptionMetrics",
    "CircularMCQ",
    "ClassificationAccuracy",
    "EvalMetric",
    "Extracted",
    "JSONAttributeF1",
    "RecallAtK",
    "Rotation",
    "StringMatch",
    "WeightedSubtaskScore",
    "attribute_counts",
    "caption_text",
    "classify_answer",
    "extract_answer_text",
    "extract_json",
    "extract_json_field",
    "extract_letter",
    "flatten_json",
    "match_answer",
    "normalize_text",
    "parse_ranking",
    "recall_at_k",
    "rotate_options",
    "sample_f1",
    "score_captions",
    "score_json",
    "simple_tokenize",
    "strip_thinking",
    "unwrap_field",
]

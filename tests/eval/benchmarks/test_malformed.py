"""Malformed outputs (empty, no JSON, truncated JSON, out-of-range letter, unclosed thinking) score wrong in
every suite, are counted by type in the table, and never crash an update."""

from __future__ import annotations

import math

import pytest

from valley3.eval.benchmarks import (
    ChineseEcomQA,
    EBay,
    ECInstruct,
    EcomCaption,
    EComMMMU,
    EcomVQA,
    MMECInstruct,
    OmniEcom,
)
from valley3.eval.report import attach_counts

from ._util import write_jsonl

OUTPUTS = ["", "I think it is fine", '{"answer": "B', "E", "<thinking>the budget ran out"]


def _suites(tmp_path, media):
    img = [media["red"]]
    mcq = {"question": "Q?", "options": ["a", "b", "c", "d"], "answer": "B", "images": img}
    return {
        "mcq": EcomVQA(write_jsonl(tmp_path / "v.jsonl", [{"id": "q", "subtask": "IU", **mcq}])),
        "text": OmniEcom(write_jsonl(tmp_path / "o.jsonl", [{"id": "t", "task": "moderation", "question": "Q?",
                                                               "answer": "yes", "answer_format": "json"}])),
        "json": EBay(write_jsonl(tmp_path / "e.jsonl", [{"id": "d", "task": "dae", "images": img,
                                                           "answer": {"brand": "acme"}}])),
        "ranking": EComMMMU(write_jsonl(tmp_path / "m.jsonl", [{"id": "s", "subtask": "SR", "question": "Q?",
                                                                  "candidates": ["x", "y"], "answer": "y"}])),
        "f1": ECInstruct(write_jsonl(tmp_path / "i.jsonl", [{"id": "a", "task": "Attribute_Value_Extraction",
                                                               "instruction": "I", "output": {"k": "v"}}])),
        "caption": EcomCaption(write_jsonl(tmp_path / "c.jsonl", [{"id": "c", "images": img, "caption": "a bag"}]),
                               metrics=["bleu2", "rouge_l"], tokenizer="simple"),
        "zh": ChineseEcomQA(write_jsonl(tmp_path / "z.jsonl", [{"id": "z", "category": "brand_concept",
                                                                  "question": "是正品吗？", "answer": "是"}])),
        "mm": MMECInstruct(write_jsonl(tmp_path / "mm.jsonl", [{"id": "m", "task": "Sentiment_Analysis",
                                                                  "instruction": "I", "images": img,
                                                                  "options": ["A: pos", "B: neg"], "output": "B"}])),
    }


EXPECTED = {  # the failure reason of each output, per answer kind (None: a well-formed wrong answer)
    "mcq": ["empty", "no_letter", "truncated_json", "invalid_letter", "no_answer"],
    "text": ["empty", None, "truncated_json", None, "no_answer"],
    "json": ["empty", "no_json", "truncated_json", "no_json", "no_answer"],
    "ranking": ["empty", None, "truncated_json", None, "no_answer"],
    "f1": ["empty", "no_json", "truncated_json", "no_json", "no_answer"],
    "caption": ["empty", None, "truncated_json", None, "no_answer"],
    "zh": ["empty", None, "truncated_json", None, "no_answer"],
    "mm": ["empty", "no_letter", "truncated_json", "invalid_letter", "no_answer"],  # options A-B: read as MCQ
}


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_malformed_outputs_score_wrong_and_are_counted_by_type(kind, tmp_path, media):
    bench = _suites(tmp_path, media)[kind]
    item = bench.items[0]
    records = [bench.record(item, out) for out in OUTPUTS]
    assert [r["malformed"] for r in records] == EXPECTED[kind]
    assert all(r["score"] in (0.0, None) for r in records)
    for out in OUTPUTS:  # each output is fed for every prompt of the suite (all 4 rotations for MCQ)
        metrics = bench.metrics()
        bench.evaluate(metrics, bench.items, [out] * len(bench.items))
        rows = bench.rows({k: m.compute() for k, m in metrics.items()})
        assert all(row.score == 0.0 or math.isnan(row.score) for row in rows if row.metric != "bleu2"), rows
    attach_counts(rows, records)
    expected = {r: EXPECTED[kind].count(r) for r in EXPECTED[kind] if r is not None}
    assert rows[-1].malformed == dict(sorted(expected.items()))

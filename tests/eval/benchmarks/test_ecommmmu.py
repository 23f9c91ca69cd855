"""eComMMMU: Recall@1 on SR, accuracy elsewhere, averaged weighted by samples; at most 10 images a question."""

from __future__ import annotations

import pytest

from valley3.data.schema import SchemaError
from valley3.eval.benchmarks import EComMMMU

from ._util import run, write_jsonl


@pytest.fixture
def mmmu(tmp_path, media):
    rows = [
        {"id": "ap1", "subtask": "AP", "question": "Colour?", "images": [media["red"]],
         "options": ["red", "blue", "green", "black"], "answer": 0},
        {"id": "ap2", "subtask": "AP", "question": "Colour?", "images": [media["blue"]],
         "options": ["red", "blue", "green", "black"], "answer": "blue"},
        {"id": "ap3", "subtask": "AP", "question": "Colour?", "images": [media["blue"]],
         "options": ["red", "blue", "green", "black"], "answer": "B"},
        {"id": "sa1", "subtask": "SA", "question": "Positive or negative?", "answer": "positive"},
        {"id": "sr1", "subtask": "SR", "question": "Which listing?", "images": [media["red"]] * 12,
         "candidates": ["item_3", "item_7", "item_9"], "answer": "item_7"},
        {"id": "sr2", "subtask": "SR", "question": "Which listing?", "candidates": ["a", "b", "c"], "answer": ["c"]},
    ]
    return EComMMMU(write_jsonl(tmp_path / "mmmu.jsonl", rows))


def test_ranking_prompt_lists_candidates_and_images_are_capped_at_ten(mmmu):
    sr1 = mmmu.items[4]
    assert "Candidates: item_3, item_7, item_9" in sr1.prompt and sr1.target == ["item_7"]
    assert len(sr1.sample.media) == 10 and sr1.prompt.count("<image>") == 10
    assert [i.target for i in mmmu.items[:3]] == ["A", "B", "B"]


def test_recall_at_1_for_sr_accuracy_elsewhere_weighted_by_samples(mmmu):
    answers = {
        "ap1": "A", "ap2": "C", "ap3": "E",  # AP: 1 of 3 (E is out of range)
        "sa1": "Positive.",  # SA: 1 of 1
        "sr1": "item_7, item_3", "sr2": "b\nc",  # SR: R@1 = (1 + 0) / 2
    }
    rows = run(mmmu, answers)
    assert rows["AP"].score == pytest.approx(1 / 3) and rows["AP"].metric == "acc"
    assert rows["SA"].score == 1.0
    assert rows["SR"].score == 0.5 and rows["SR"].metric == "recall@1"
    overall = rows["overall"]
    assert overall.score == pytest.approx((3 * (1 / 3) + 1 * 1.0 + 2 * 0.5) / 6)  # = 3/6, weighted by samples
    assert overall.details["macro"] == pytest.approx((1 / 3 + 1.0 + 0.5) / 3)
    scored = mmmu.score(mmmu.items[2], "E")
    assert (scored.score, scored.malformed) == (0.0, "invalid_letter")


def test_an_sr_answer_must_be_a_candidate(tmp_path):
    row = {"id": "x", "subtask": "SR", "question": "Q", "candidates": ["a", "b"], "answer": "z"}
    with pytest.raises(SchemaError, match="not among the candidates"):
        _ = EComMMMU(write_jsonl(tmp_path / "m.jsonl", [row])).items

"""Ecom-VQA: each question becomes four rotated prompts; it passes only if all four are answered right."""

from __future__ import annotations

import pytest

from valley3.data.schema import SchemaError
from valley3.eval.benchmarks import EcomVQA

from ._util import run, write_jsonl

OPTIONS = ["red", "blue", "green", "black"]


@pytest.fixture
def vqa(tmp_path, media):
    rows = [
        {"id": "q1", "subtask": "IU", "question": "What colour is it?", "options": OPTIONS, "answer": "B",
         "images": [media["red"]]},
        {"id": "q2", "subtask": "IU", "question": "<image>Which colour?", "options": OPTIONS, "answer": 2,
         "images": [media["blue"]]},
        {"id": "q3", "subtask": "OCR", "question": "Brand?", "options": ["Acme", "Lumo", "Pavo", "Tessa"],
         "answer": "Pavo", "images": [media["red"]]},
        {"id": "q4", "subtask": "MIU", "question": "<image> vs <image>: which is red?",
         "options": ["first", "second", "both", "neither"], "answer": "A", "images": [media["red"], media["blue"]]},
    ]
    return EcomVQA(write_jsonl(tmp_path / "vqa.jsonl", rows))


def test_each_question_is_asked_once_per_rotation_with_the_answer_at_each_letter(vqa, media):
    items = [i for i in vqa.items if i.meta["question"] == "q1"]
    assert [i.uid for i in items] == ["q1#r0", "q1#r1", "q1#r2", "q1#r3"]
    assert [i.target for i in items] == ["A", "B", "C", "D"]
    for item in items:
        lines = item.prompt.splitlines()
        assert lines[0] == "<image>What colour is it?"  # the tag missing from the question goes in front
        assert f"{item.target}. blue" in lines  # the correct option sits at the rotation's letter
        assert lines[-1] == vqa.instruction
        assert item.reference == item.target and item.sample.media[0].path == media["red"]
    assert [m.path for m in vqa.items[-1].sample.media] == [media["red"], media["blue"]]
    assert vqa.present_subtasks == ["IU", "OCR", "MIU"]


def test_circular_scores_per_subtask_and_counts_malformed_rotations(vqa):
    answers = {
        "q1#r0": "A", "q1#r1": "B.", "q1#r2": "Answer: C", "q1#r3": '{"answer": "D"}',  # all right: pass
        "q2#r0": "A", "q2#r1": "B", "q2#r2": "C", "q2#r3": "A",  # 3 of 4 right: fails
        "q3#r0": "<thinking>Pavo is printed</thinking>A", "q3#r1": "(B)", "q3#r2": "C", "q3#r3": "D",  # pass
        "q4#r0": "", "q4#r1": "E", "q4#r2": '{"answer": "C', "q4#r3": "no idea",  # all malformed: fails
    }
    rows = run(vqa, answers)
    assert (rows["IU"].score, rows["IU"].count) == (0.5, 2)
    assert (rows["OCR"].score, rows["MIU"].score) == (1.0, 0.0)
    overall = rows["overall"]
    assert (overall.score, overall.count, overall.metric) == (0.5, 4, "circular_acc")
    assert overall.details["rotation_acc"] == pytest.approx(11 / 16)
    assert [vqa.score(i, answers[i.uid]).malformed for i in vqa.items if i.meta["question"] == "q4"] == [
        "empty", "invalid_letter", "truncated_json", "no_letter",
    ]


def test_a_question_missing_a_rotation_fails(vqa):
    answers = {i.uid: i.target for i in vqa.items}
    metrics = vqa.metrics()
    kept = [i for i in vqa.items if i.uid != "q3#r2"]
    vqa.evaluate(metrics, kept, [answers[i.uid] for i in kept])
    out = metrics["circular"].compute()
    assert out["acc"] == 0.75 and out["incomplete"] == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [({"options": ["a", "b", "c"]}, "3 options"), ({"answer": "Z"}, "answer 'Z'"), ({"subtask": "XX"}, "sub-task"),
     ({"question": None}, "'question'")],
)
def test_bad_records_name_their_line(tmp_path, change, message):
    row = {"id": "q", "subtask": "IU", "question": "Q?", "options": OPTIONS, "answer": "A"} | change
    path = write_jsonl(tmp_path / "bad.jsonl", [{"id": "ok", "subtask": "IU", "question": "Q?", "options": OPTIONS,
                                                 "answer": "A"}, row])
    with pytest.raises(SchemaError, match=rf"bad.jsonl:2: .*{message}"):
        _ = EcomVQA(path).items

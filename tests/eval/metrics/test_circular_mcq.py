"""CircularMCQ: a question passes only if all its rotations are right; per sub-task accuracy; malformed counts."""

import pytest
import torch

from valley3.eval.metrics import CircularMCQ, rotate_options


def _values(out):
    return {k: v.item() for k, v in out.items()}


def test_three_of_four_rotations_right_counts_as_wrong():
    m = CircularMCQ(subtasks=["IU", "OCR"])
    # q1 (IU): 4/4 right; q2 (IU): rotations 0-2 right, rotation 3 wrong -> the question fails.
    m.update(["q1"] * 4, ["A", "B", "C", "D"], list("ABCD"), "IU", rotations=[0, 1, 2, 3])
    m.update(["q2"] * 4, ["A", "B", "C", "A"], list("ABCD"), "IU", rotations=[0, 1, 2, 3])
    out = _values(m.compute())
    assert out["acc/IU"] == 0.5  # 1 passed / 2 questions
    assert out["acc"] == 0.5
    assert out["rotation_acc"] == 7 / 8  # 7 right rows / 8 rows: not the circular score
    assert out["count/IU"] == 2 and out["count/OCR"] == 0
    assert out["acc/OCR"] != out["acc/OCR"]  # NaN: no OCR question seen


def test_per_subtask_accuracy_and_malformed_by_type():
    m = CircularMCQ(subtasks=["IU", "OCR", "DS"])
    # fmt: off
    rows = [  # (question, rotation, subtask, prediction); the correct letter of rotation r is "ABCD"[r]
        ("q1", 0, "IU", "A"), ("q1", 1, "IU", "(B)"), ("q1", 2, "IU", "C."), ("q1", 3, "IU", "Answer: D"),
        ("q2", 0, "IU", "A"), ("q2", 1, "IU", "B"), ("q2", 2, "IU", "C"), ("q2", 3, "IU", "B"),
        ("q3", 0, "OCR", "the answer is A"), ("q3", 1, "OCR", "b"), ("q3", 2, "OCR", "C"), ("q3", 3, "OCR", "D"),
        ("q4", 0, "OCR", ""), ("q4", 1, "OCR", "E"), ("q4", 2, "OCR", "no idea"), ("q4", 3, "OCR", "<thinking>hm"),
        ("q5", 0, "DS", "A"), ("q5", 1, "DS", "B"), ("q5", 2, "DS", "C"), ("q5", 3, "DS", "D"),
    ]
    # fmt: on
    rows = rows[1::2] + rows[0::2]  # rotations of a question arrive in different batches
    for batch in (rows[:7], rows[7:]):
        q, r, s, p = zip(*batch)
        m.update(q, p, ["ABCD"[i] for i in r], s, rotations=r)
    out = _values(m.compute())
    # IU: q1 pass, q2 fail -> 1/2; OCR: q3 pass, q4 fail -> 1/2; DS: q5 pass -> 1/1; overall 3/5.
    assert (out["acc/IU"], out["acc/OCR"], out["acc/DS"], out["acc"]) == (0.5, 0.5, 1.0, 3 / 5)
    assert out["count"] == 5
    assert out["rotation_acc"] == 15 / 20  # wrong rows: q2 rot 3, and q4's four
    assert out["malformed/empty"] == 1 and out["malformed/invalid_letter"] == 1
    assert out["malformed/no_letter"] == 1 and out["malformed/no_answer"] == 1
    assert out["malformed"] == 4 and out["malformed/no_json"] == 0


def test_missing_rotation_fails_and_duplicates_do_not_change_verdict():
    m = CircularMCQ()
    m.update(["q1"] * 3, list("ABC"), list("ABC"), rotations=[0, 1, 2])  # rotation 3 never asked
    m.update(["q2"] * 5, list("ABCDD"), list("ABCDD"), rotations=[0, 1, 2, 3, 3])  # padded duplicate
    out = _values(m.compute())
    assert out["acc"] == 0.5 and out["incomplete"] == 1  # q1 fails (3 rotations < 4), q2 passes


def test_bad_inputs_raise():
    m = CircularMCQ(subtasks=["IU"])
    with pytest.raises(ValueError, match="unknown subtasks"):
        m.update(["q"], ["A"], ["A"], ["OCR"])
    with pytest.raises(ValueError, match="not a letter"):
        m.update(["q"], ["A"], ["E"], ["IU"])
    with pytest.raises(ValueError, match="differ in length"):
        m.update(["q", "r"], ["A"], ["A"], "IU")


def test_rotate_options_moves_answer_through_every_letter():
    options = ["red", "blue", "green", "black"]
    rotations = rotate_options(options, "C")  # "green" is correct
    assert [r.answer for r in rotations] == ["A", "B", "C", "D"]
    for r in rotations:
        assert r.options["ABCD".index(r.answer)] == "green"
        assert sorted(r.options) == sorted(options)
        k = r.options.index("red")
        assert r.options == options[-k:] + options[:-k] if k else r.options == options  # a cyclic shift
    assert rotate_options(options, 2) == rotations
    with pytest.raises(ValueError):
        rotate_options(options, "E")


def test_forward_returns_batch_value_and_keeps_totals():
    m = CircularMCQ()
    batch = m(["q1"] * 4, list("ABCD"), list("ABCD"), rotations=range(4))
    assert batch["acc"].item() == 1.0
    m(["q2"] * 4, list("ABCC"), list("ABCD"), rotations=range(4))
    assert m.compute()["acc"].item() == 0.5
    assert m.records[0].dtype == torch.int64

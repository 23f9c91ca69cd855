"""Recall@k, and sub-task scores averaged weighted by samples (micro F1 for F1 sub-tasks)."""

import pytest
import torch

from valley3.eval.metrics import RecallAtK, WeightedSubtaskScore, parse_ranking, recall_at_k


def _values(out):
    return {k: v.item() for k, v in out.items()}


def test_parse_ranking_and_recall_at_k():
    assert parse_ranking("1. item_3\n2. item_7").value == ["item_3", "item_7"]
    assert parse_ranking('{"answer": ["a", "b"]}').value == ["a", "b"]
    assert parse_ranking(["a", 7]).value == ["a", "7"]
    assert parse_ranking("<thinking>").reason == "no_answer"
    assert recall_at_k(["a", "b"], "b", 1) == 0 and recall_at_k(["a", "b"], "b", 2) == 1
    assert recall_at_k(["a", "b"], ["a", "c"], 2) == 0.5


def test_recall_at_k_metric():
    m = RecallAtK(ks=(1, 2))
    m.update([["a", "b", "c"], "c, a"], ["b", "c"])
    m.update([["x", "y"], ""], [["x", "z"], "a"])
    out = _values(m.compute())
    # per query (R@1, R@2): (0, 1), (1, 1), (1/2, 1/2), (0, 0) [empty output, malformed]
    assert out["recall@1"] == (0 + 1 + 0.5 + 0) / 4  # = 3/8
    assert out["recall@2"] == (1 + 1 + 0.5 + 0) / 4  # = 5/8
    assert out["count"] == 4 and out["malformed/empty"] == 1


def test_weighted_subtask_score_from_scores():
    m = WeightedSubtaskScore(["x", "y"])
    m.update(torch.tensor([1.0, 0.0, 1.0]), "x")
    m.update([0.0], "y")
    out = _values(m.compute())
    assert out["score"] == 2 / 4 and out["macro"] == (2 / 3 + 0) / 2
    assert out["count"] == 4


def test_weighted_score_weights_subtasks_by_samples_and_f1_subtasks_are_micro():
    m = WeightedSubtaskScore(["AP", "SR", "AVE", "BQA"], f1_subtasks=["AVE"])
    m.update([1.0, 1.0, 0.0], "AP")  # 2/3
    m.update([1.0, 0.0, 1.0, 0.0], ["SR"] * 4)  # 2/4
    # per-sample F1 1.0 and 0.0, but the sub-task is micro: 2 * (1 + 0) / ((1 + 1) + (1 + 3)) = 1/3
    m.update([1.0, 0.0], "AVE", counts=[{"tp": 1, "pred": 1, "ref": 1}, {"tp": 0, "pred": 1, "ref": 3}])
    out = _values(m.compute())
    assert (out["score/AP"], out["score/SR"], out["score/AVE"]) == (pytest.approx(2 / 3), 0.5, pytest.approx(1 / 3))
    # weighted by samples: (3 * 2/3 + 4 * 2/4 + 2 * 1/3) / 9; unweighted over seen sub-tasks
    assert out["score"] == pytest.approx((2 + 2 + 2 / 3) / 9)
    assert out["macro"] == pytest.approx((2 / 3 + 1 / 2 + 1 / 3) / 3)
    assert out["count"] == 9 and out["count/BQA"] == 0 and torch.isnan(m.compute()["score/BQA"])
    with pytest.raises(ValueError, match="f1_subtasks"):
        WeightedSubtaskScore(["x"], f1_subtasks=["XX"])

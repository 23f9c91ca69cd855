"""Recall@k, and the eComMMMU sample-weighted average with Recall@1 for SR and accuracy elsewhere."""

import pytest
import torch

from valley3.eval.metrics import EComMMMUScore, RecallAtK, WeightedSubtaskScore, parse_ranking, recall_at_k


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


def test_ecommmmu_weighted_average_with_recall_at_1_for_sr():
    m = EComMMMUScore()
    m.update(["yes", "No", "yes"], ["yes", "no", "no"], "AP")  # 2/3
    m.update(
        ["item_3, item_1", "item_1\nitem_3", '{"answer": ["item_9", "item_2"]}', "<thinking>item_4?"],
        ["item_3", "item_3", "item_9", "item_4"],
        ["SR"] * 4,
    )  # R@1 per query: 1, 0 (gold at rank 2), 1, 0 (malformed) -> 2/4
    m.update(["(B) Shoes"], ["B"], ["CP"])  # 1/1
    out = _values(m.compute())
    assert (out["score/AP"], out["score/SR"], out["score/CP"]) == (pytest.approx(2 / 3), 0.5, 1.0)
    # weighted by samples: (3 * 2/3 + 4 * 2/4 + 1 * 1) / (3 + 4 + 1) = 5/8; unweighted: (2/3 + 1/2 + 1) / 3 = 13/18
    assert out["score"] == pytest.approx(5 / 8)
    assert out["macro"] == pytest.approx(13 / 18)
    assert out["count"] == 8 and out["count/BQA"] == 0
    assert out["malformed/no_answer"] == 1


def test_weighted_subtask_score_from_scores():
    m = WeightedSubtaskScore(["x", "y"])
    m.update(torch.tensor([1.0, 0.0, 1.0]), "x")
    m.update([0.0], "y")
    out = _values(m.compute())
    assert out["score"] == 2 / 4 and out["macro"] == (2 / 3 + 0) / 2
    with pytest.raises(ValueError, match="recall_subtasks"):
        EComMMMUScore(recall_subtasks=["XX"])

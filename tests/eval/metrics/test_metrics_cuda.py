"""The metrics keep their states on the GPU and compute there (skipped without CUDA)."""

import pytest
import torch

from valley3.eval.metrics import (
    CircularMCQ,
    ClassificationAccuracy,
    JSONAttributeF1,
    StringMatch,
    WeightedSubtaskScore,
)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_metrics_on_cuda():
    mcq = CircularMCQ(subtasks=["IU"]).cuda()
    mcq.update(["q"] * 4, ["A", "B", "C", "E"], list("ABCD"), "IU", rotations=range(4))
    assert mcq.compute()["acc"].item() == 0.0 and mcq.malformed.is_cuda
    match = StringMatch(["x"]).cuda()
    match.update(["red"], ["Red"], "x")
    assert match.compute()["acc/x"].item() == 1.0
    cls = ClassificationAccuracy({"sleeve": ["long", "short"]}).cuda()
    cls.update(["long", "mid"], ["long", "short"], "sleeve")
    assert cls.compute()["acc"].item() == 0.5
    f1 = JSONAttributeF1().cuda()
    f1.update(['{"a": 1}'], [{"a": 1, "b": 2}])
    assert f1.compute()["recall"].item() == 0.5
    score = WeightedSubtaskScore(["SR", "AVE"], f1_subtasks=["AVE"]).cuda()
    score.update([0.0, 1.0], ["SR", "AVE"], counts=[None, {"tp": 1, "pred": 1, "ref": 1}])
    assert score.compute()["score"].item() == 0.5 and score.tp.is_cuda
    bf16 = WeightedSubtaskScore(["x"]).cuda().to(torch.bfloat16)  # what "bf16-true" does to the module
    for _ in range(1000):
        bf16.update([1.0], "x")
    assert bf16.compute()["score"].item() == 1.0 and bf16.score_sum.dtype == torch.float64

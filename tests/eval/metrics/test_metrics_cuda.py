"""The metrics keep their states on the GPU and compute there (skipped without CUDA)."""

import pytest
import torch

from valley3.eval.metrics import CircularMCQ, ClassificationAccuracy, EComMMMUScore, JSONAttributeF1, StringMatch


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
    score = EComMMMUScore().cuda()
    score.update(["x, y", "yes"], ["y", "yes"], ["SR", "AP"])
    assert score.compute()["score"].item() == 0.5

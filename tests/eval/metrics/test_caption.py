"""Caption metrics: the Metric's numbers equal pycocoevalcap's scorers called directly on the same captions."""

import shutil

import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge

from valley3.eval.metrics import CaptionMetrics, simple_tokenize
from valley3.eval.metrics import caption as caption_module

REFS = {
    "p1": ["A red leather shoe with white laces.", "Red shoe, white laces, on a table."],
    "p2": ["A blue cotton T-shirt with a round neck."],
    "p3": ["Black backpack with two zip pockets.", "A black backpack; two zipped pockets."],
}
PREDS = {
    "p1": "<thinking>shoe, red</thinking>A red shoe with white laces.",
    "p2": '{"answer": "A blue T-shirt with a round neck."}',
    "p3": "A black backpack with a zip pocket.",
}
ANSWERS = {  # what the metric should score after stripping thinking and the JSON wrapper
    "p1": "A red shoe with white laces.",
    "p2": "A blue T-shirt with a round neck.",
    "p3": "A black backpack with a zip pocket.",
}
needs_java = pytest.mark.skipif(
    shutil.which("java") is None, reason="pycocoevalcap's PTB tokenizer and METEOR need java"
)


def _feed(metric):
    ids = list(PREDS)
    metric.update(ids[:2], [PREDS[i] for i in ids[:2]], [REFS[i] for i in ids[:2]])
    metric.update(ids[2:] + ["p1"], [PREDS["p3"], "a duplicate is ignored"], [REFS["p3"], REFS["p1"]])
    return {k: v.item() for k, v in metric.compute().items()}


def _direct(gts, res):
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    return {
        "bleu2": bleu[1],
        "cider": Cider().compute_score(gts, res)[0],
        "rouge_l": Rouge().compute_score(gts, res)[0],
    }


@needs_java
def test_ptb_and_meteor_equal_pycocoevalcap():
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    out = _feed(CaptionMetrics())  # bleu2, cider, meteor, rouge_l with the PTB tokenizer
    tok = PTBTokenizer()
    gts = tok.tokenize({k: [{"caption": c} for c in v] for k, v in REFS.items()})
    res = tok.tokenize({k: [{"caption": c}] for k, c in ANSWERS.items()})
    expected = _direct(gts, res) | {"meteor": Meteor().compute_score(gts, res)[0]}
    for name, value in expected.items():
        assert out[name] == pytest.approx(value, abs=1e-9), name
    assert 0 < out["bleu2"] < 1 and 0 < out["meteor"] < 1 and out["count"] == 3


def test_simple_tokenizer_equals_pycocoevalcap_without_java():
    out = _feed(CaptionMetrics(metrics=("bleu2", "cider", "rouge_l"), tokenizer="simple"))
    gts = {k: [simple_tokenize(c) for c in v] for k, v in REFS.items()}
    res = {k: [simple_tokenize(c)] for k, c in ANSWERS.items()}
    for name, value in _direct(gts, res).items():
        assert out[name] == pytest.approx(value, abs=1e-9), name


def test_identical_captions_and_malformed_prediction():
    m = CaptionMetrics(metrics=("bleu2", "rouge_l"), tokenizer="simple")
    m.update(["a", "b"], ["红色 皮鞋", "<thinking>never closed"], [["红色皮鞋"], ["blue shirt"]])
    out = {k: v.item() for k, v in m.compute().items()}
    # "a": identical after CJK splitting ("红 色 皮 鞋"); "b" is scored as an empty caption -> ROUGE-L 0.
    assert out["rouge_l"] == pytest.approx((1.0 + 0.0) / 2)
    assert out["malformed/no_answer"] == 1
    assert simple_tokenize("Red T-shirt, 红色!") == "red t shirt 红 色"


def test_missing_java_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(caption_module.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="Java runtime"):
        CaptionMetrics()
    with pytest.raises(RuntimeError, match="METEOR"):
        CaptionMetrics(metrics=("meteor",), tokenizer="simple")
    CaptionMetrics(metrics=("bleu2", "cider"), tokenizer="simple")  # no java needed

"""JSON attribute P/R/F1 over nested keys and lists, hallucinated-field rate, unparseable predictions."""

import json
from fractions import Fraction

import pytest

from valley3.eval.metrics import JSONAttributeF1, attribute_counts, flatten_json

REFS = [
    {"brand": "Nike", "color": ["Red", "White"], "size": {"waist": 32, "length": "30"}},
    {"pattern": "striped", "sleeve": "long"},
    {"neck": "v-neck"},
    {"color": "blue"},
]
PREDS = [
    (
        '```json\n{"Brand": "nike", "color": ["red", "red"], "size": {"waist": "32", "length": 31},'
        ' "material": "cotton"}\n```'
    ),
    '{"pattern": "Striped", "sle',  # cut by the token limit
    "I cannot tell from the picture.",
    '<thinking>look at the label</thinking>{"color": "Blue", "logo": null, "fit": "slim"}',
]


def test_flatten_nested_keys_and_lists():
    assert sorted(flatten_json(REFS[0])) == [
        ("brand", "nike"),
        ("color", "red"),
        ("color", "white"),
        ("size.length", "30"),
        ("size.waist", "32"),
    ]
    # an object inside a list is one value, whole: its fields never match apart from each other
    assert flatten_json({"Item": [{"Sub_Type": "A", "n": None}], "x": None, "y": ""}) == [("item", '{"sub type": "a"}')]


def test_json_f1_hand_computed():
    m = JSONAttributeF1()
    m.update(PREDS[:2], REFS[:2])
    m.update(PREDS[2:], [json.dumps(r) for r in REFS[2:]])  # references as JSON strings
    out = {k: v.item() for k, v in m.compute().items()}
    # sample 1: distinct pred pairs brand:nike, color:red (said twice, counted once), size.waist:32,
    #   size.length:31, material:cotton = 5; ref pairs = 5; tp = brand + red + waist = 3; keys 5, hallucinated
    #   {material} = 1.  sample 2: truncated JSON -> predicts nothing; ref pairs 2.  sample 3: no JSON; ref 1.
    # sample 4: pred color:blue, fit:slim (null logo dropped) = 2; ref 1; tp 1; keys 2, hallucinated {fit}.
    # tp = 4, pred = 7, ref = 9: P = 4/7, R = 4/9, F1 = 2 tp / (pred + ref) = 8/16; halluc = 2/7.
    assert (out["tp"], out["pred"], out["ref"], out["count"]) == (4, 7, 9, 4)
    assert out["precision"] == pytest.approx(float(Fraction(4, 7)), abs=1e-12)
    assert out["recall"] == pytest.approx(float(Fraction(4, 9)), abs=1e-12)
    assert out["f1"] == pytest.approx(float(Fraction(1, 2)), abs=1e-12)
    assert out["hallucination_rate"] == pytest.approx(float(Fraction(2, 7)), abs=1e-12)
    assert out["malformed/truncated_json"] == 1 and out["malformed/no_json"] == 1 and out["malformed"] == 2


def test_answer_field_and_parsed_predictions():
    m = JSONAttributeF1(field="answer")
    wrapped = '{"thinking process": "red upper", "answer": {"color": "Red", "sole": "rubber"}}'
    m.update([wrapped, {"answer": {"color": "blue"}}, ""], [{"color": "red"}, {"color": "blue"}, {"color": "x"}])
    out = {k: v.item() for k, v in m.compute().items()}
    # tp = 1 + 1 = 2; pred = 2 + 1 = 3; ref = 3 -> P = R = F1 = 2/3; hallucinated {sole} / 3 keys = 1/3.
    assert (out["precision"], out["recall"]) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert out["f1"] == pytest.approx(2 / 3) and out["hallucination_rate"] == pytest.approx(1 / 3)
    assert out["malformed/empty"] == 1


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_attribute_counts_and_empty_metric():
    assert attribute_counts(None, {"a": 1}) == {"tp": 0, "pred": 0, "ref": 1, "pred_keys": 0, "hallucinated_keys": 0}
    out = JSONAttributeF1().compute()
    assert out["f1"].isnan() and out["count"] == 0

"""ECInstruct: instruction + input + options prompts; each task scored by its own per-sample scorer."""

from __future__ import annotations

import pytest
from pycocoevalcap.rouge.rouge import Rouge

from valley3.eval.benchmarks import ECInstruct

from ._util import run, write_jsonl


@pytest.fixture
def eci(tmp_path):
    rows = [
        {"id": "1", "task": "Sentiment_Analysis", "instruction": "Sentiment?", "input": "Great shoes.",
         "options": ["A: positive", "B: negative"], "output": "A"},
        {"id": "2", "task": "Sentiment_Analysis", "instruction": "Sentiment?", "input": "Broke at once.",
         "output": "negative"},
        {"id": "3", "task": "Attribute_Value_Extraction", "instruction": "Attributes as JSON.", "input": "Acme red",
         "output": {"brand": "Acme", "colour": "red"}},
        {"id": "4", "task": "Sequential_Recommendation", "instruction": "Next item?", "input": "", "output": "B07"},
        {"id": "5", "task": "Answer_Generation", "instruction": "Answer.", "input": "Material?",
         "output": "it is made of leather"},
    ]
    return ECInstruct(write_jsonl(tmp_path / "eci.jsonl", rows))


def test_prompt_joins_instruction_input_and_options(eci):
    assert eci.items[0].prompt == "Sentiment?\nGreat shoes.\nA: positive\nB: negative"
    assert eci.items[3].prompt == "Next item?"  # an empty input adds no line
    assert eci.subtasks == ["Sentiment_Analysis", "Attribute_Value_Extraction", "Sequential_Recommendation",
                            "Answer_Generation"]


def test_each_task_uses_its_scorer(eci):
    answers = {
        "1": "(A) positive",  # letter target: the answer's option letter counts -> 1
        "2": "Positive",  # -> 0
        "3": '{"brand": "acme", "colour": "blue"}',  # tp 1, pred 2, ref 2 -> F1 0.5
        "4": "B07, B09",  # first ranked id is the gold one -> 1
        "5": "made of leather",
    }
    rows = run(eci, answers)
    rouge = Rouge().calc_score(["made of leather"], ["it is made of leather"])
    assert rows["Sentiment_Analysis"].score == 0.5 and rows["Sentiment_Analysis"].metric == "acc"
    assert rows["Attribute_Value_Extraction"].score == 0.5 and rows["Attribute_Value_Extraction"].metric == "f1"
    assert rows["Sequential_Recommendation"].score == 1.0 and rows["Sequential_Recommendation"].metric == "recall@1"
    assert rows["Answer_Generation"].score == pytest.approx(rouge) and rows["Answer_Generation"].metric == "rouge_l"
    assert rows["overall"].score == pytest.approx((1 + 0 + 0.5 + 1 + rouge) / 5)


def test_unknown_scorer_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown scorer"):
        ECInstruct(str(tmp_path / "x.jsonl"), scoring={"Sentiment_Analysis": "bleu"})

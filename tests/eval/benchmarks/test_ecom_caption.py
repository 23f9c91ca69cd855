"""Ecom-Caption: the suite's corpus scores are pycocoevalcap's on the extracted captions."""

from __future__ import annotations

import pytest

from valley3.data.schema import SchemaError
from valley3.eval.benchmarks import EcomCaption
from valley3.eval.metrics import score_captions

from ._util import run, write_jsonl

METRICS = ["bleu2", "cider", "rouge_l"]  # java-free; METEOR/PTB wiring is tested with the metric itself


@pytest.fixture
def captions(tmp_path, media):
    rows = [
        {"id": "c1", "images": [media["red"]], "captions": ["a red leather shoe", "red shoe with laces"]},
        {"id": "c2", "images": [media["blue"]], "caption": "a blue cotton shirt", "prompt": "Caption it."},
        {"id": "c3", "images": [media["red"]], "captions": ["black backpack with two pockets"]},
    ]
    return EcomCaption(write_jsonl(tmp_path / "cap.jsonl", rows), metrics=METRICS, tokenizer="simple")


def test_reader_takes_one_or_many_references_and_a_prompt(captions):
    c1, c2, _ = captions.items
    assert c1.prompt == "<image>" + captions.prompt and c1.target == ["a red leather shoe", "red shoe with laces"]
    assert c2.prompt == "<image>Caption it." and c2.target == ["a blue cotton shirt"]


def test_scores_equal_pycocoevalcap_on_the_extracted_captions(captions):
    answers = {"c1": "<thinking>red</thinking>A red shoe with laces.", "c2": '{"answer": "a blue shirt"}', "c3": ""}
    row = run(captions, answers)["overall"]
    expected = score_captions(
        {i.uid: i.target for i in captions.items},
        {"c1": "A red shoe with laces.", "c2": "a blue shirt", "c3": ""},  # a malformed answer is an empty caption
        METRICS,
        tokenizer="simple",
    )
    assert (row.metric, row.count) == ("bleu2", 3)
    assert row.score == pytest.approx(expected["bleu2"])
    assert row.details == pytest.approx({"cider": expected["cider"], "rouge_l": expected["rouge_l"]})
    scored = captions.score(captions.items[2], "")
    assert (scored.score, scored.malformed, scored.extracted) == (None, "empty", "")


def test_a_perfect_caption_set_scores_one(captions):
    row = run(captions, {i.uid: i.target[0] for i in captions.items})["overall"]
    assert row.score == pytest.approx(1.0) and row.details["rouge_l"] == pytest.approx(1.0)


def test_a_record_without_captions_is_an_error(tmp_path):
    with pytest.raises(SchemaError, match="cap.jsonl:1: 'captions'"):
        _ = EcomCaption(write_jsonl(tmp_path / "cap.jsonl", [{"id": "x", "captions": []}]), tokenizer="simple").items

"""MMECInstruct: ECInstruct prompts with product images (and optional captions), scored by ECInstruct's scorers."""

from __future__ import annotations

import pytest

from valley3.data.schema import SchemaError
from valley3.eval.benchmarks import ECInstruct, MMECInstruct

from ._util import run, write_jsonl


@pytest.fixture
def rows(media):
    return [
        {"id": "1", "task": "Product_Substitute_Identification", "instruction": "Substitute? Answer yes or no.",
         "input": "Product 1: <image> red shoe. Product 2: <image> blue shoe.", "images": [media["red"], media["blue"]],
         "caption_info": ["a red shoe", "a blue shoe"], "output": "no"},
        {"id": "2", "task": "Sentiment_Analysis", "instruction": "Sentiment?", "input": "Love it.",
         "images": [media["red"]], "caption_info": ["a red bag"], "options": ["A: positive", "B: negative"],
         "output": "A"},
        {"id": "3", "task": "Sentiment_Analysis", "instruction": "Sentiment?", "input": "Broke at once.",
         "images": [media["blue"]], "caption_info": ["a blue mug"], "options": ["A: positive", "B: negative"],
         "output": "B"},
        {"id": "4", "task": "Sequential_Recommendation", "instruction": "Next item?", "input": "History: p1",
         "images": [media["red"]], "caption_info": ["a red hat"], "output": "p7"},
    ]


@pytest.fixture
def mm(tmp_path, rows):
    return MMECInstruct(write_jsonl(tmp_path / "mm.jsonl", rows))


def test_is_ecinstruct_with_images_in_place(mm, media):
    assert isinstance(mm, ECInstruct) and mm.name == "mmecinstruct" and mm.max_new_tokens == 64
    sub, pos = mm.items[0], mm.items[1]
    assert sub.prompt == "Substitute? Answer yes or no.\nProduct 1: <image> red shoe. Product 2: <image> blue shoe."
    assert [m.path for m in sub.sample.media] == [media["red"], media["blue"]]
    assert pos.prompt == "<image>Sentiment?\nLove it.\nA: positive\nB: negative"  # untagged images go first
    assert mm.subtasks == ["Product_Substitute_Identification", "Sentiment_Analysis", "Sequential_Recommendation"]


def test_captions_join_the_input(tmp_path, rows):
    mm = MMECInstruct(write_jsonl(tmp_path / "mm.jsonl", rows), captions=True)
    assert mm.items[3].prompt == "<image>Next item?\nHistory: p1\nImage 1 caption: a red hat"
    rows[0]["caption_info"] = ["only one"]
    with pytest.raises(SchemaError, match="1 'caption_info' entries for 2 images"):
        _ = MMECInstruct(write_jsonl(tmp_path / "bad.jsonl", rows), captions=True).items


def test_each_task_uses_the_ecinstruct_scorer(mm):
    answers = {
        "1": "No.",  # -> 1
        "2": "(A) positive",  # option letter of a letter target -> 1
        "3": "positive",  # -> 0
        "4": "p3, p7",  # first ranked id is not the gold one -> 0
    }
    rows = run(mm, answers)
    assert rows["Product_Substitute_Identification"].score == 1.0
    assert rows["Sentiment_Analysis"].score == 0.5 and rows["Sentiment_Analysis"].metric == "acc"
    assert rows["Sequential_Recommendation"].score == 0.0 and rows["Sequential_Recommendation"].metric == "recall@1"
    assert rows["overall"].score == pytest.approx(2 / 4)
    assert rows["overall"].details["macro"] == pytest.approx((1 + 0.5 + 0) / 3)


@pytest.mark.parametrize("images", [None, [], [""]])
def test_a_record_without_images_is_rejected(tmp_path, rows, images):
    if images is None:
        del rows[0]["images"]
    else:
        rows[0]["images"] = images
    with pytest.raises(SchemaError, match=r"mm\.jsonl:1: .*'images'"):
        _ = MMECInstruct(write_jsonl(tmp_path / "mm.jsonl", rows)).items

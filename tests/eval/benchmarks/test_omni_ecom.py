"""Valley3 omni e-commerce benchmark: prompts over every modality, letter / short / JSON answers, task accuracy."""

from __future__ import annotations

import pytest

from valley3.eval.benchmarks import OmniEcom
from valley3.eval.benchmarks.omni_ecom import JSON_REQUEST

from ._util import run, write_jsonl


@pytest.fixture
def omni(tmp_path, media):
    rows = [
        {"id": "pu1", "task": "product_understanding", "question": "What is it?", "images": [media["red"]],
         "options": ["shoe", "bag", "mug"], "answer": "bag"},
        {"id": "pu2", "task": "product_understanding", "question": "Colour?", "images": [media["red"]],
         "answer": ["red", "crimson"], "answer_format": "json"},
        {"id": "as1", "task": "after_sales", "question": "Refund or exchange?", "answer": "exchange"},
        {"id": "ls1", "task": "livestream", "question": "<image><audio>Same product?", "images": [media["red"]],
         "audios": [media["tone"]], "answer": "yes"},
        {"id": "sv1", "task": "short_video", "question": "First frames: <image> clip: <video> colour?",
         "images": [media["blue"]], "video_frames": [[media["red"], media["red"], media["blue"]]], "answer": "red"},
    ]
    return OmniEcom(write_jsonl(tmp_path / "omni.jsonl", rows), system_prompt="You are a shop assistant.")


def test_prompts_carry_options_json_request_media_and_frames(omni, media):
    pu1, pu2, as1, ls1, sv1 = omni.items
    assert pu1.prompt.splitlines()[1:] == ["A. shoe", "B. bag", "C. mug", omni.choice_instruction]
    assert pu1.target == "B" and pu1.sample.turns[0].content == "You are a shop assistant."
    assert pu2.prompt.endswith(JSON_REQUEST) and pu2.reference == '{"thinking process": "", "answer": "red"}'
    assert as1.sample.media == []
    assert [m.kind for m in ls1.sample.media] == ["image", "audio"]
    # a video given as frames becomes one <image> per frame, in place, the images kept in tag order
    assert sv1.prompt.startswith("First frames: <image> clip: <image><image><image> colour?")
    assert [m.path for m in sv1.sample.media] == [media["blue"], media["red"], media["red"], media["blue"]]


def test_accuracy_per_task_weighted_overall_and_macro(omni):
    answers = {
        "pu1": "<thinking>it has handles</thinking>B",  # right
        "pu2": '{"thinking process": "looks crimson", "answer": "Crimson."}',  # right (any accepted answer)
        "as1": "A refund.",  # wrong
        "ls1": '{"answer": "yes"',  # truncated JSON: wrong, malformed
        "sv1": "Red",  # right
    }
    rows = run(omni, answers)
    assert rows["product_understanding"].score == 1.0 and rows["product_understanding"].count == 2
    assert rows["after_sales"].score == 0.0 and rows["livestream"].score == 0.0 and rows["short_video"].score == 1.0
    assert set(rows) == {"product_understanding", "after_sales", "livestream", "short_video", "overall"}
    assert rows["overall"].score == pytest.approx(3 / 5)  # sample-weighted
    assert rows["overall"].details["macro"] == pytest.approx((1 + 0 + 0 + 1) / 4)  # mean over tasks with items
    scored = omni.score(omni.items[3], answers["ls1"])
    assert (scored.score, scored.malformed) == (0.0, "truncated_json")

"""Media under the other format's key names are read (singular in messages, LLaMA-Factory's plural in ShareGPT);
an unknown key holding media files is an error naming file:line, never a silent text-only sample."""

from __future__ import annotations

import json

import pytest

from valley3.data.formats import read_samples
from valley3.data.schema import MediaRef, SchemaError


def _messages(question: str) -> list[dict]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": "Red."}]


def _sharegpt(question: str) -> list[dict]:
    return [{"from": "human", "value": question}, {"from": "gpt", "value": "Red."}]


def _read(tmp_path, record):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"id": "x", **record}) + "\n")
    return path, read_samples(path)


@pytest.mark.parametrize("record", [
    {"messages": _messages("<image><audio>Q"), "image": "a.png", "audio": ["b.wav"]},  # singular in messages
    {"conversations": _sharegpt("<image><audio>Q"), "images": ["a.png"], "audios": "b.wav"},  # LLaMA-Factory
    {"conversations": _sharegpt("<image><audio>Q"), "image": "a.png", "audio": "b.wav"},  # LLaVA's own
    {"messages": _messages("<image><audio>Q"), "images": ["a.png"], "audios": ["b.wav"]},  # ms-swift's own
])
def test_both_spellings_are_read_in_both_formats(tmp_path, record):
    _, (sample,) = _read(tmp_path, record)
    assert sample.media == [MediaRef("image", str(tmp_path / "a.png")), MediaRef("audio", str(tmp_path / "b.wav"))]
    assert not {"image", "images", "audio", "audios"} & set(sample.meta)


def test_videos_in_sharegpt_records(tmp_path):
    _, (sample,) = _read(tmp_path, {"conversations": _sharegpt("<video>Q"), "videos": ["c.mp4"]})
    assert sample.media == [MediaRef("video", str(tmp_path / "c.mp4"))]


def test_both_spellings_at_once_is_an_error(tmp_path):
    with pytest.raises(SchemaError, match=r"d\.jsonl:1 \(sample 'x'\): both 'images' and 'image'"):
        _read(tmp_path, {"messages": _messages("<image>Q"), "images": ["a.png"], "image": "b.png"})


@pytest.mark.parametrize("key, value", [("picture", "a.jpg"), ("image_path", ["a.png"]), ("speech", "q.wav"),
                                        ("clip", {"path": "c.mp4"}), ("frames", ["f/0.JPG", "f/1.JPG"])])
def test_an_unknown_key_holding_media_files_is_an_error_naming_the_line(tmp_path, key, value):
    with pytest.raises(SchemaError, match=rf"d\.jsonl:1 \(sample 'x'\): key '{key}' holds media file"):
        _read(tmp_path, {"messages": _messages("Q"), key: value})


def test_other_extra_keys_stay_meta(tmp_path):
    _, (sample,) = _read(tmp_path, {"messages": _messages("Q"), "source": "web", "tags": ["a", "b"], "score": 0.5})
    assert sample.meta == {"source": "web", "tags": ["a", "b"], "score": 0.5}

"""Tests for the data-format readers: messages and LLaVA records into Samples, and their errors."""

from __future__ import annotations

import json

import pytest

from valley3.data.formats import parse_record, read_samples
from valley3.data.schema import MediaRef, SchemaError, Turn


def _jsonl(path, *records):
    """Write records one a line; a string is written verbatim (blank lines, broken JSON)."""
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n")
    return path


def _qa(question="Hi?", answer="Hello."):
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


def test_messages_sample_parses_to_exact_turns_media_and_meta(tmp_path):
    record = {
        "id": "s1",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "<image>What is this?"},
            {"role": "assistant", "content": "A shoe."},
            {"role": "user", "content": "<audio>And <image> this?"},
            {"role": "assistant", "content": "A bell and a hat."},
        ],
        "images": ["a.png", "/abs/b.jpg"],
        "audios": ["sub/c.wav"],
        "label": 3,
    }
    [sample] = read_samples(_jsonl(tmp_path / "data.jsonl", record))
    assert sample.id == "s1"
    assert sample.source == f"{tmp_path / 'data.jsonl'}:1"
    assert sample.turns == [
        Turn("system", "Be brief."),
        Turn("user", "<image>What is this?"),
        Turn("assistant", "A shoe."),
        Turn("user", "<audio>And <image> this?"),
        Turn("assistant", "A bell and a hat."),
    ]
    # media in the order their tags appear, across kinds
    assert sample.media == [
        MediaRef("image", str(tmp_path / "a.png")),
        MediaRef("audio", str(tmp_path / "sub/c.wav")),
        MediaRef("image", "/abs/b.jpg"),
    ]
    assert sample.meta == {"label": 3}


def test_list_content_becomes_tags_with_media_in_order(tmp_path):
    record = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image", "image": "x.png"},
                    {"type": "text", "text": "Compare with "},
                    {"type": "image", "image": "y.png"},
                    {"type": "audio", "audio": "z.wav"},
                ],
            },
            {"role": "assistant", "content": [{"type": "text", "text": "Same."}]},
        ]
    }
    [sample] = read_samples(_jsonl(tmp_path / "data.jsonl", record))
    assert sample.turns == [Turn("user", "<image>Compare with <image><audio>"), Turn("assistant", "Same.")]
    assert [(m.kind, m.path) for m in sample.media] == [
        ("image", str(tmp_path / "x.png")),
        ("image", str(tmp_path / "y.png")),
        ("audio", str(tmp_path / "z.wav")),
    ]
    assert sample.id == "data:1"


def test_list_content_placeholder_takes_paths_from_top_level_list(tmp_path):
    content = [{"type": "image"}, {"type": "text", "text": "What?"}]
    record = {"messages": [{"role": "user", "content": content}, {"role": "assistant", "content": "A."}],
              "images": ["p.png"]}
    [sample] = read_samples(_jsonl(tmp_path / "data.jsonl", record))
    assert sample.turns[0] == Turn("user", "<image>What?")
    assert sample.media == [MediaRef("image", str(tmp_path / "p.png"))]


def test_llava_json_list_maps_speakers_and_prepends_missing_tag(tmp_path):
    records = [
        {"id": "l0", "image": "img/0.jpg", "conversations": [
            {"from": "human", "value": "<image>\nDescribe."}, {"from": "gpt", "value": "Red."}]},
        {"id": 7, "image": ["1.jpg", "2.jpg"], "data_source": "web", "conversations": [
            {"from": "system", "value": "S."}, {"from": "human", "value": "Same?"}, {"from": "gpt", "value": "No."}]},
    ]
    path = tmp_path / "data.json"
    path.write_text(json.dumps(records, indent=2))
    first, second = read_samples(path)
    assert first.turns == [Turn("user", "<image>\nDescribe."), Turn("assistant", "Red.")]
    assert first.media == [MediaRef("image", str(tmp_path / "img/0.jpg"))]
    assert first.source == f"{path}: entry 0"
    assert second.id == "7"
    assert second.turns == [Turn("system", "S."), Turn("user", "<image>\n<image>\nSame?"), Turn("assistant", "No.")]
    assert [m.path for m in second.media] == [str(tmp_path / "1.jpg"), str(tmp_path / "2.jpg")]
    assert second.meta == {"data_source": "web"}


def test_llava_jsonl_and_messages_mix_under_auto(tmp_path):
    llava = {"id": "v", "video": "clip.mp4", "conversations": [
        {"from": "human", "value": "<image>\nWhat happens?"}, {"from": "gpt", "value": "Rain."}]}
    path = _jsonl(tmp_path / "data.jsonl", llava, "", {"messages": _qa()})
    video, text = read_samples(path)
    # LLaVA-Video marks the video with <image>; it becomes a <video> tag
    assert video.turns[0] == Turn("user", "<video>\nWhat happens?")
    assert video.media == [MediaRef("video", str(tmp_path / "clip.mp4"))]
    assert text.source.endswith("data.jsonl:3") and text.id == "data:3"  # the blank line still counts
    assert text.media == []


def test_messages_without_tags_get_them_prepended_ms_swift_style(tmp_path):
    record = {"messages": [{"role": "system", "content": "S."}, *_qa("Which colour?")], "images": ["a.png"],
              "audios": ["b.wav"]}
    [sample] = read_samples(_jsonl(tmp_path / "data.jsonl", record))
    assert sample.turns[1] == Turn("user", "<image><audio>Which colour?")


@pytest.mark.parametrize("media_root", [None, "media"])
def test_relative_paths_resolve_against_media_root_or_data_folder(tmp_path, monkeypatch, media_root):
    (tmp_path / "sub").mkdir()
    record = {"messages": _qa("<image><image>Q"), "images": ["r.png", "/x/a.png"]}
    _jsonl(tmp_path / "sub" / "data.jsonl", record)
    monkeypatch.chdir(tmp_path)  # relative data file and media_root still give absolute media paths
    [sample] = read_samples("sub/data.jsonl", media_root=media_root)
    root = tmp_path / (media_root or "sub")
    assert [m.path for m in sample.media] == [str(root / "r.png"), "/x/a.png"]


def test_parse_record_directly(tmp_path):
    sample = parse_record({"messages": _qa("<image>Q"), "images": ["a.png"]}, "mem:1", tmp_path, "messages")
    assert sample.id == "mem:1" and sample.media == [MediaRef("image", str(tmp_path / "a.png"))]


_GOOD = {"id": "ok", "messages": _qa()}


@pytest.mark.parametrize(
    "bad, fragment",
    [
        ('{"messages": [', "invalid JSON"),
        ('["not", "an object"]', "expected a JSON object"),
        ({"id": "b", "prompt": "hi"}, "(sample 'b'): no 'messages' or 'conversations' key"),
        ({"id": "b", "messages": "hi"}, "(sample 'b'): 'messages' must be a list"),
        ({"id": "b", "messages": [{"role": "user", "content": 5}]}, "message 0 'content' must be a string"),
        ({"id": "b", "messages": _qa(), "images": 5}, "'images' must be a path or a list of paths"),
        ({"id": "b", "messages": [{"role": "bot", "content": "x"}, _qa()[1]]}, "turn 0 has role 'bot'"),
        ({"id": "b", "conversations": [{"from": "robot", "value": "x"}]}, "turn 0 is from 'robot'"),
        ({"id": "b", "messages": _qa("<image><image>Q"), "images": ["a.png"]}, "2 <image> tag(s) in the text but 1"),
        ({"id": "b", "messages": _qa("<image>Q"), "images": ["a.png", "b.png"]}, "1 <image> tag(s) in the text but 2"),
        ({"id": "b", "messages": [{"role": "user", "content": [{"type": "pdf"}]}]}, "part 0: type 'pdf'"),
        ({"id": ["b"], "messages": _qa()}, "'id' must be a string"),
    ],
)
def test_errors_name_file_line_and_sample(tmp_path, bad, fragment):
    path = _jsonl(tmp_path / "data.jsonl", _GOOD, "", bad)
    with pytest.raises(SchemaError) as info:
        read_samples(path)
    message = str(info.value)
    assert message.startswith(f"{path}:3"), message
    assert fragment in message


def test_explicit_format_requires_its_key(tmp_path):
    path = _jsonl(tmp_path / "data.jsonl", {"id": "m", "messages": _qa()})
    with pytest.raises(SchemaError, match=r"data\.jsonl:1 \(sample 'm'\): missing 'conversations' key"):
        read_samples(path, format="llava")


def test_json_list_errors_name_the_entry(tmp_path):
    path = tmp_path / "data.json"
    path.write_text(json.dumps([{"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]},
                                {"id": "x", "conversations": [{"from": "gpt", "value": 3}]}]))
    with pytest.raises(SchemaError, match=r"data\.json: entry 1 \(sample 'x'\): turn 0 'value' must be a string"):
        read_samples(path)


def test_invalid_utf8_names_its_line(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_bytes(json.dumps(_GOOD).encode() + b"\n" + b'{"id": "\xff"}\n')
    with pytest.raises(SchemaError, match=r"data\.jsonl:2: not UTF-8"):
        read_samples(path)

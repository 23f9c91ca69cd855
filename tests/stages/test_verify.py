"""`valley3 data verify`: captions -> supported aspects -> instruction samples, a report with reasons, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from tests.conftest import tiny_omni
from valley3.policy import Policy, build_processor
from valley3.rewards import JudgeBackend, PolicyJudge
from valley3.stages.verify import parse_supported, verify


class Scripted(JudgeBackend):
    """A stand-in model that answers from the request text (captions from the image file name, verdicts by
    looking for each aspect value in the caption) and can crash after some batches, like a killed run."""

    def __init__(self, crash_after: int | None = None):
        self.calls, self.crash_after = 0, crash_after

    def complete(self, requests, max_tokens, temperature):
        self.calls += 1
        if self.crash_after is not None and self.calls > self.crash_after:
            raise RuntimeError("killed")
        out = []
        for messages in requests:
            content = messages[-1]["content"]
            if isinstance(content, list):  # a caption request: the photo's name says what it shows
                stem = Path(content[0]["image_url"]["url"]).stem
                out.append(None if stem == "broken" else f"A {stem.replace('_', ' ')} product photo.")
            elif "Description: A garbled" in content:
                out.append("I think so")  # no JSON list: unreadable
            else:
                caption = content.split("Description: ")[1].split("\n")[0].lower()
                names = [line[2:].split(": ") for line in content.splitlines() if line.startswith("- ")]
                out.append(json.dumps([n for n, v in names if v.lower() in caption]))
        return out


@pytest.fixture
def listings(tmp_path) -> Path:
    rows = [("red_nike_shoe", {"Color": "Red", "Brand": "Nike", "Size": "42"}),
            ("blue_mug", {"Color": "Blue", "Material": "Steel"}),
            ("garbled", {"Color": "Green"}),
            ("broken", {"Brand": "Acme"}),
            ("black_bag", {"Color": "Black"})]
    lines = []
    for i, (name, aspects) in enumerate(rows):
        Image.new("RGB", (32, 32), (i * 40, 10, 10)).save(tmp_path / f"{name}.png")
        lines.append(json.dumps({"id": name, "image": f"{name}.png", "aspects": aspects}))
    (tmp_path / "listings.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path / "listings.jsonl"


def test_supported_aspects_become_samples_and_the_rest_are_dropped_with_a_reason(listings, tmp_path):
    summary = verify(str(listings), str(tmp_path / "out"), Scripted(), Scripted(), batch_size=2)
    report = {r["id"]: r for r in map(json.loads, (tmp_path / "out/report.jsonl").read_text().splitlines())}
    assert report["red_nike_shoe"]["kept"] == {"Color": "Red", "Brand": "Nike"}
    assert report["red_nike_shoe"]["dropped"] == {"Size": "not_supported"}
    assert report["garbled"]["dropped"] == {"Color": "verifier_unreadable"}
    assert report["broken"]["dropped"] == {"Brand": "captioner_failed"}
    samples = [json.loads(line) for line in (tmp_path / "out/verified.jsonl").read_text().splitlines()]
    assert [s["id"] for s in samples] == ["red_nike_shoe", "blue_mug", "black_bag"]
    assert json.loads(samples[1]["messages"][1]["content"]) == {"Color": "Blue"}
    assert summary["aspects_kept"] == 4 and summary["samples"] == 3
    assert summary["aspects_dropped"] == {"not_supported": 2, "verifier_unreadable": 1, "captioner_failed": 1}


def test_a_rerun_after_a_crash_processes_only_the_rest(listings, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="killed"):
        verify(str(listings), str(out), Scripted(crash_after=2), Scripted(), batch_size=2)  # 2 batches = 4 done
    with open(out / "report.jsonl", "a") as f:
        f.write('{"id": "torn')  # a kill in the middle of a write
    again = verify(str(listings), str(out), Scripted(), Scripted(), batch_size=2)
    assert (again["resumed_from"], again["processed_now"], again["listings"]) == (4, 1, 5)
    whole = verify(str(listings), str(tmp_path / "whole"), Scripted(), Scripted(), batch_size=2)
    for name in ("report.jsonl", "verified.jsonl"):
        assert (out / name).read_text() == (tmp_path / "whole" / name).read_text()
    assert again["aspects_kept"] == whole["aspects_kept"]


def test_parse_supported_matches_names_case_insensitively_and_ignores_unknown_ones():
    assert parse_supported('Supported: ["color", "BRAND", "Weight"]', ["Color", "Brand"]) == ["Color", "Brand"]
    assert parse_supported("none of them", ["Color"]) is None and parse_supported(None, ["Color"]) is None
    assert parse_supported("[]", ["Color"]) == []


def test_a_valley3_checkpoint_captions_the_image_end_to_end(listings, tmp_path, monkeypatch):
    model = tiny_omni(seed=1).eval()
    policy = Policy(model, build_processor(model))
    calls = []
    original = model.vision.forward
    monkeypatch.setattr(model.vision, "forward", lambda *a, **k: calls.append(1) or original(*a, **k))
    judge = PolicyJudge("unused.ckpt")
    judge._policy = policy  # the loaded checkpoint (from_checkpoint is tested in tests/policy)
    with torch.no_grad():
        summary = verify(str(listings), str(tmp_path / "out"), judge, judge, batch_size=5, max_tokens=6)
    assert calls  # the captioner saw the photos
    assert summary["listings"] == 5 and summary["processed_now"] == 5
    rows = [json.loads(line) for line in (tmp_path / "out/report.jsonl").read_text().splitlines()]
    assert all(isinstance(r["caption"], str) for r in rows)

"""`valley3 data verify`: captions -> supported aspects -> instruction samples, a report with reasons, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from PIL import Image

from tests.conftest import tiny_omni, tool_summary
from tests.policy.test_checkpoint import _model_config
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
    assert tool_summary(tmp_path / "out", "verify") == summary
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


def test_a_rerun_after_a_crash_and_a_torn_report_line_processes_only_the_rest(listings, tmp_path):
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


class LineSeparatorCaptions(Scripted):
    """Captions holding U+2028, which JSON keeps raw (verify writes ensure_ascii=False) and str.splitlines cuts at."""

    def complete(self, requests, max_tokens, temperature):
        return [c if c is None else c + "\u2028Side view." for c in super().complete(requests, max_tokens, temperature)]


def test_a_caption_with_a_unicode_line_separator_survives_the_summary_and_a_resume(listings, tmp_path):
    first = verify(str(listings), str(tmp_path / "out"), LineSeparatorCaptions(), Scripted(), batch_size=2)
    again = verify(str(listings), str(tmp_path / "out"), LineSeparatorCaptions(), Scripted(), batch_size=2)
    assert first["listings"] == again["listings"] == again["resumed_from"] == 5 and again["processed_now"] == 0
    assert "\u2028" in (tmp_path / "out" / "report.jsonl").read_text(encoding="utf-8")


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


ROOT = Path(__file__).resolve().parents[2]


class GatedVerifier(ThreadingHTTPServer):
    """An OpenAI-compatible verifier on 127.0.0.1 that counts its requests and, while `hold_after` is set, keeps
    every request after that many waiting (the killed run is stopped there, with earlier batches written).

    Its verdicts: "Color" is always supported, another aspect when its value is in the caption; a listing whose
    aspects hold "Green" gets a reply with no JSON list (unreadable)."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _VerifierHandler)
        self.requests, self.hold_after, self.release, self.lock = 0, None, threading.Event(), threading.Lock()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def verdict(self, content: str) -> str:
        with self.lock:
            self.requests += 1
            number = self.requests
        if self.hold_after is not None and number > self.hold_after:
            self.release.wait(120)
        caption = content.split("Description: ")[1].split("\n\nThe seller listed")[0].lower()
        names = [line[2:].split(": ", 1) for line in content.splitlines() if line.startswith("- ")]
        if any(value == "Green" for _, value in names):
            return "Some of them, I think."
        return json.dumps([n for n, v in names if n == "Color" or v.lower() in caption])


class _VerifierHandler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (the http.server name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        verdict = self.server.verdict(body["messages"][-1]["content"])
        reply = json.dumps({"choices": [{"message": {"role": "assistant", "content": verdict}}]})
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(reply.encode())
        except OSError:
            pass  # the client was killed while this request waited

    def log_message(self, *args):
        pass


def _lines(path: Path) -> int:
    # complete lines only: a line still being written is not a listing reported yet
    return path.read_text().count("\n") if path.is_file() else 0


def test_a_run_killed_with_sigkill_resumes_with_only_the_rest_and_ends_as_an_unbroken_run(tmp_path):
    """`valley3 data verify` in its own process, a tiny valley3 checkpoint captioning the photos: SIGKILL once two
    batches are reported, run it again, and compare with an uninterrupted run of the same models."""
    names = ["red_shoe", "blue_mug", "green_box", "black_bag", "white_cup", "grey_hat", "pink_sock"]
    lines = []
    for i, name in enumerate(names):
        Image.new("RGB", (32, 32), (i * 30, 200 - i * 20, 10)).save(tmp_path / f"{name}.png")
        color, kind = name.split("_")
        lines.append(json.dumps({"id": name, "image": f"{name}.png",
                                 "aspects": {"Color": color.title(), "Type": kind, "Size": str(40 + i)}}))
    data = tmp_path / "listings.jsonl"
    data.write_text("\n".join(lines) + "\n")
    model = tiny_omni(seed=1)
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    hparams = {"_class_path": "valley3.stages.OmniStage", "model": _model_config(), "max_len": 512}
    torch.save({"hyper_parameters": hparams, "state_dict": state}, tmp_path / "captioner.ckpt")

    server, batch, out = GatedVerifier(), 2, tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
    command = [sys.executable, "-m", "valley3.cli", "data", "verify", "--data", str(data), "--out", str(out),
               "--captioner", str(tmp_path / "captioner.ckpt"), "--verifier", server.url, "--device", "cpu",
               "--batch-size", str(batch), "--max-tokens", "6"]
    try:
        server.hold_after = 2 * batch  # the third batch's verdicts never come: the run is killed waiting for them
        run = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 600
        # two batches reported, and the third captioned and waiting for its verdicts
        while (_lines(out / "report.jsonl") < 2 * batch or server.requests <= 2 * batch) and run.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        assert run.poll() is None, run.communicate()[0][-3000:]
        os.kill(run.pid, signal.SIGKILL)
        assert run.wait(timeout=60) == -signal.SIGKILL
        assert _lines(out / "report.jsonl") == 2 * batch and not (out / "summary.json").exists()
        server.hold_after, server.requests = None, 0
        server.release.set()

        again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stderr[-3000:]
        summary = tool_summary(out, "verify")
        rest = len(names) - 2 * batch
        assert (summary["resumed_from"], summary["processed_now"], summary["listings"]) == (2 * batch, rest, len(names))
        assert server.requests == rest  # the verifier saw only the listings the killed run had not reported

        from valley3.rewards import HTTPJudge, PolicyJudge
        from valley3.stages.verify import verify

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as the command runs (OMP_NUM_THREADS=1): the same greedy captions
        try:
            whole = verify(str(data), str(tmp_path / "whole"), PolicyJudge(str(tmp_path / "captioner.ckpt"), "cpu"),
                           HTTPJudge(server.url), batch_size=batch, max_tokens=6)
        finally:
            torch.set_num_threads(threads)
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
    for name in ("report.jsonl", "verified.jsonl"):
        assert (out / name).read_text() == (tmp_path / "whole" / name).read_text(), name
    assert {k: summary[k] for k in ("aspects_kept", "aspects_dropped", "samples")} == \
        {k: whole[k] for k in ("aspects_kept", "aspects_dropped", "samples")}
    assert set(summary["aspects_dropped"]) >= {"not_supported", "verifier_unreadable"} and summary["samples"] == 6

"""`valley3 serve` as a real server on 127.0.0.1: OpenAI chat completions with media parts, and a judge through it."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest

from tests.judge_server import free_port, judge_checkpoint, start_server, stop
from valley3.rewards import HTTPJudge, JudgeReward, RewardContext


@pytest.fixture(scope="module")
def judge_ckpt(tmp_path_factory) -> Path:
    return judge_checkpoint(tmp_path_factory.mktemp("judge_run"))


@pytest.fixture(scope="module")
def server(judge_ckpt):
    port = free_port()
    process = start_server(judge_ckpt, port)
    yield f"http://127.0.0.1:{port}/v1", process
    stop(process)


def _chat(url: str, content, **kwargs) -> httpx.Response:
    body = {"model": "valley3", "messages": [{"role": "user", "content": content}], **kwargs}
    return httpx.post(f"{url}/chat/completions", json=body, timeout=120)


def _record(question: str) -> dict:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": "Red."}]}


def test_chat_completions_with_text_and_image_parts(server, media):
    url, _ = server
    assert httpx.get(f"{url}/models").json()["data"][0]["id"] == "valley3"
    red = base64.b64encode(Path(media["red"]).read_bytes()).decode()
    for image in (f"data:image/png;base64,{red}", media["red"], f"file://{media['blue']}"):
        parts = [{"type": "image_url", "image_url": {"url": image}}, {"type": "text", "text": "What colour?"}]
        reply = _chat(url, parts, max_tokens=5, temperature=0)
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["object"] == "chat.completion" and body["usage"]["prompt_tokens"] > 20
        assert body["choices"][0]["finish_reason"] in ("stop", "length")
    tone = base64.b64encode(Path(media["tone"]).read_bytes()).decode()
    audio = [{"type": "input_audio", "input_audio": {"data": tone, "format": "wav"}}, {"type": "text", "text": "Hear?"}]
    assert _chat(url, audio, max_tokens=3).status_code == 200


def test_n_samples_seed_and_stop(server):
    url, _ = server
    a = _chat(url, "Say anything.", n=3, seed=5, max_tokens=8, temperature=1.0).json()["choices"]
    b = _chat(url, "Say anything.", n=3, seed=5, max_tokens=8, temperature=1.0).json()["choices"]
    assert len(a) == 3 and [c["message"] for c in a] == [c["message"] for c in b]
    greedy = _chat(url, "Grade it.", max_tokens=8, temperature=0, stop=":").json()["choices"][0]
    assert greedy["message"]["content"] == "Score:" and greedy["finish_reason"] == "stop"


def test_bad_requests_get_400_naming_the_part(server, media):
    url, _ = server
    remote = [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]
    assert "no network" in _chat(url, remote).json()["detail"]
    missing = [{"type": "image_url", "image_url": {"url": "/no/such/file.png"}}]
    reply = _chat(url, missing)
    assert reply.status_code == 400 and "message 0 part 0" in reply.json()["detail"]
    corrupt = [{"type": "image_url", "image_url": {"url": media["corrupt"]}}, {"type": "text", "text": "?"}]
    assert _chat(url, corrupt).status_code == 400
    assert _chat(url, "hi", stream=True).status_code == 400


def test_judge_reward_scores_a_batch_through_the_server_and_counts_an_outage(judge_ckpt):
    port = free_port()
    process = start_server(judge_ckpt, port)
    reward = JudgeReward(HTTPJudge(f"http://127.0.0.1:{port}/v1", timeout=60, retries=1, backoff=0.1))
    prompts = [_record(f"What colour is item {i}?") for i in range(4)]
    try:
        got = reward.batch(prompts, ["red", "blue", "<thinking>hm</thinking> red", "green"], [RewardContext()] * 4)
        assert got == [pytest.approx(0.7)] * 4  # the judge replies "Score: 7" on a 0-10 scale
        assert reward.stats() == {"calls": 4}
    finally:
        stop(process)
    got = reward.batch(prompts, ["red"] * 4, [RewardContext()] * 4)
    assert got == [0.0] * 4
    assert reward.stats() == {"calls": 8, "failures": 4, "failures/unreachable": 4}

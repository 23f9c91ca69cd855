"""`valley3 serve` as a real server on 127.0.0.1: OpenAI chat completions with media parts, and a judge through it."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import lightning as L
import pytest
import torch

from tests.judge_server import free_port, judge_checkpoint, start_server, stop
from valley3.data.batch import PromptBatch
from valley3.models import OmniModel
from valley3.models.decoders import HFDecoder
from valley3.rewards import HTTPJudge, JudgeReward, PolicyJudge, RewardContext, TokenShareReward
from valley3.stages.grpo import GRPOStage


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


def test_a_valley3_checkpoint_judges_locally_through_the_policy(judge_ckpt):
    judge = JudgeReward(PolicyJudge(str(judge_ckpt), device="cpu", batch_size=2))
    got = judge.batch([_record("What colour is item 1?")] * 3, ["red", "blue", "x"], [RewardContext()] * 3)
    assert got == [pytest.approx(0.7)] * 3 and judge.stats() == {"calls": 3, "failures": 0}


class _KillServerAfter(L.Callback):
    """Kills the judge server after the given training step, as a crash or a lost node would."""

    def __init__(self, server, step: int):
        self.server, self.step = server, step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if outputs["step"] + 1 == self.step:
            stop(self.server)


@pytest.mark.slow
def test_judge_through_the_server_then_an_outage_mid_training(judge_ckpt):
    """The judge reward scores a batch through `valley3 serve`; killed mid-run, its rewards become counted 0s and
    GRPO trains on."""
    port = free_port()
    process = start_server(judge_ckpt, port)
    judge = JudgeReward(HTTPJudge(f"http://127.0.0.1:{port}/v1", timeout=60, retries=1, backoff=0.1))
    prompts = [_record(f"What colour is item {i}?") for i in range(4)]
    try:
        got = judge.batch(prompts, ["red", "blue", "<thinking>hm</thinking> red", "green"], [RewardContext()] * 4)
        assert got == [pytest.approx(0.7)] * 4  # the judge replies "Score: 7" on a 0-10 scale
        assert judge.stats() == {"calls": 4, "failures": 0}
        judge.reset_stats()
        torch.manual_seed(0)
        stage = GRPOStage(OmniModel(HFDecoder("tiny-qwen3")), rewards=[judge, TokenShareReward("red")],
                          sampling={"group_size": 2, "max_new_tokens": 4})
        log = _StepLog()
        loader = torch.utils.data.DataLoader(prompts[:2] * 3, batch_size=2, collate_fn=lambda items: PromptBatch(
            items, torch.tensor(0)))
        trainer = L.Trainer(accelerator="cpu", max_steps=3, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False,
                            callbacks=[_KillServerAfter(process, 1), log])
        trainer.fit(stage, loader)
    finally:
        stop(process)
    assert trainer.global_step == 3  # trained on through the outage
    assert [row["judge"] for row in log.rows] == [[0.7] * 4, [0.0] * 4, [0.0] * 4]
    assert [row["failures"] for row in log.rows] == [0, 4, 4]


class _StepLog(L.Callback):
    """The judge's rewards and its failures logged at each step."""

    def __init__(self):
        self.rows: list[dict] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        judge = [round(v, 6) for v in outputs["per_reward"]["judge"]]
        failures = trainer.callback_metrics.get("train/reward/judge/failures", torch.tensor(0.0))
        self.rows.append({"judge": judge, "failures": int(failures)})

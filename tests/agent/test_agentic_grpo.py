"""Agentic GRPO: tool tokens carry no policy loss and no gradient; rewards read trajectories; the stage trains and logs."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import lightning as L
import torch

from valley3.agent.rollout import AgentRollout
from valley3.agent.trajectory import trajectory_batch
from valley3.data.datamodules import PromptDataModule
from valley3.data.processor import IGNORE_INDEX
from valley3.rewards import AgentAnswerReward, AgentFormatReward, RewardContext
from valley3.rewards.agentic import agentic_reward
from valley3.stages.agentic_grpo import AgenticGRPOStage
from valley3.stages.grpo_loss import policy_loss

from .conftest import prompt_of
from .test_rollout import observation_lengths


def test_tool_tokens_carry_no_policy_loss_and_no_gradient(trained, trajectories, registry):
    policy, _ = trained
    [[t]] = AgentRollout(registry, max_new_tokens=96, temperature=0)(policy, [prompt_of(trajectories["three_turns"])])
    batch = trajectory_batch(policy, [t, t], [t.loss_mask, [1] * len(t.token_ids)])
    start = len(t.prompt_ids)
    labels = batch.labels[0, start:start + len(t.token_ids)].tolist()
    assert sum(x == IGNORE_INDEX for x in labels) == sum(observation_lengths(policy, t)) == t.loss_mask.count(0)
    assert len(batch.media.pixel_values) == 2 * 3  # each row: the user's photo and both tool photos
    captured = {}
    head = policy.model.decoder.model.get_output_embeddings()
    hook = head.register_forward_hook(lambda m, i, out: captured.setdefault("logits", out).retain_grad())
    try:
        lp = policy.logprobs(batch)
    finally:
        hook.remove()
    assert lp.mask[0].sum() == sum(t.loss_mask) and lp.mask[1].sum() == len(t.token_ids)
    loss = policy_loss(lp.logprobs[:1], lp.logprobs[:1].detach(), torch.tensor([1.5]), lp.mask[:1].float()).loss
    loss.backward()
    grad = captured["logits"].grad[0].abs().sum(-1)
    tool = [start + i for i, m in enumerate(t.loss_mask) if m == 0]
    assert grad[[p - 1 for p in tool]].eq(0).all()  # the logits that would predict tool tokens get no gradient
    assert grad[[start + i - 1 for i, m in enumerate(t.loss_mask) if m]].gt(0).all()
    policy.model.zero_grad()


def test_agentic_rewards(trained, trajectories, registry):
    policy, _ = trained
    record = trajectories["two_turns"]
    [[t]] = AgentRollout(registry, max_new_tokens=96, temperature=0)(policy, [prompt_of(record)])
    context = RewardContext(len(t.token_ids), t.finish_reason, completion=t)
    assert AgentAnswerReward()(record, t.text, context) == 1.0 and AgentFormatReward()(record, t.text, context) == 1.0
    assert AgentAnswerReward(search_penalty=0.25)(record, t.text, context) == 0.75  # one search
    parts = agentic_reward(t, record.turns[-1].content.split("</thinking>")[-1], search_penalty=0.25)
    assert parts["total"] == 0.75 + 0.5 and parts["tool_calls"] == 1


def test_the_stage_trains_on_trajectories_and_logs_tool_use(trained, trajectories, engine, tmp_path):
    policy, _ = trained
    data = tmp_path / "prompts.jsonl"
    with open(data, "w") as f:  # whole recorded trajectories: the stage keeps their prompt turns
        for name in ("two_turns", "three_turns"):
            s = trajectories[name]
            f.write(json.dumps({"id": s.id, "messages": [{"role": x.role, "content": x.content} for x in s.turns],
                                "images": [m.path for m in s.media]}) + "\n")
    index = Path(engine.encoder.path).parent
    stage = AgenticGRPOStage(copy.deepcopy(policy.model), rewards=[AgentAnswerReward(), AgentFormatReward()],
                             search={"index": str(index)}, tools={"k": 1, "fields": ["price"], "images": 1},
                             rollout={"max_turns": 4}, sampling={"group_size": 2, "max_new_tokens": 64},
                             reward_weights=[1.0, 0.5], default_lr=1e-3, warmup_steps=0, max_len=None)
    before = [p.detach().clone() for p in stage.model.parameters()]
    scored, batch_logps = [], stage._batch_logps

    def recording(policy, chunk, temperature):  # the real method; the test keeps what it scored
        lp = batch_logps(policy, chunk, temperature)
        scored.append((chunk, lp.mask.detach().clone()))
        return lp

    stage._batch_logps = recording
    module = PromptDataModule(train=str(data), batch_size=2)
    trainer = L.Trainer(accelerator="cpu", max_steps=2, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1)
    trainer.fit(stage, module)
    logged = trainer.logged_metrics
    for key in ("tool_calls_per_sample", "turns_mean", "failed_call_share", "finish/answer", "reward/answer",
                "reward/format", "reward_mean"):
        assert f"train/{key}" in logged, key
    assert 0 < logged["train/tool_calls_per_sample"] and logged["train/turns_mean"] >= 1
    # What the stage's policy loss covers: each trajectory's model tokens, never its tool responses.
    tool_tokens = 0
    for chunk, mask in scored:
        for row, (t, _, loss_mask, _) in enumerate(chunk):
            assert all(m <= k for m, k in zip(loss_mask, t.loss_mask)) and mask[row].sum() == sum(loss_mask)
            tool_tokens += t.loss_mask.count(0) * any(loss_mask)
    assert scored and tool_tokens > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, stage.model.parameters()))

"""GRPOStage: a step's logged metrics (TensorBoard), the reference model only with beta > 0, dynamic sampling,
rollout-batch log-probs, and the toy task it must learn."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from tests.conftest import tiny_omni
from valley3.data.batch import PromptBatch
from valley3.data.schema import Sample, Turn
from valley3.models import OmniModel
from valley3.models.decoders import HFDecoder
from valley3.policy import Policy, build_processor
from valley3.rewards import FormatReward, Reward, RewardContext, TokenShareReward, WeightedRewards
from valley3.stages.grpo import GRPOStage
from valley3.stages.grpo_rollout import Sampling, collect

SAMPLING = {"group_size": 4, "max_new_tokens": 6}
# Letters and digits: ~6% of a random model's tokens, so its groups' rewards spread and steps change the weights.
LETTERS = " ".join("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


def _prompts(n: int, prefix: str = "p") -> list[Sample]:
    return [Sample(f"{prefix}{i}", [Turn("user", f"Describe item {i}."), Turn("assistant", "red")]) for i in range(n)]


def _loader(samples: list[Sample], batch_size: int):
    return torch.utils.data.DataLoader(samples, batch_size=batch_size,
                                       collate_fn=lambda items: PromptBatch(items, torch.tensor(0)))


def _text_model() -> OmniModel:
    torch.manual_seed(0)
    return OmniModel(HFDecoder("tiny-qwen3"))


def _fit(stage, samples, tmp_path, steps=2, batch_size=2, **trainer):
    kwargs = dict(accelerator="cpu", max_steps=steps, enable_checkpointing=False, enable_progress_bar=False,
                  enable_model_summary=False, log_every_n_steps=1, logger=False)
    trainer = L.Trainer(**(kwargs | trainer))
    trainer.fit(stage, _loader(samples, batch_size))
    return trainer


def test_a_step_logs_every_metric_to_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    stage = GRPOStage(_text_model(), rewards=[TokenShareReward("red"), FormatReward()], reward_weights=[1.0, 0.5],
                      sampling=SAMPLING, clip_high=0.28)
    assert stage.ref_model is None  # beta 0: no reference model
    logger = TensorBoardLogger(tmp_path, name="grpo")
    _fit(stage, _prompts(4), tmp_path, logger=logger)
    tags = set(EventAccumulator(logger.log_dir).Reload().Tags()["scalars"])
    want = {"reward_mean", "reward_std", "reward/token_share", "reward/format", "zero_spread_share", "clip_ratio_low",
            "clip_ratio_high", "entropy", "completion_len_mean", "completion_len_max", "truncated_share", "tokens",
            "step_time_s", "loss", "groups_kept", "groups_dropped", "skipped", "sampled_reward_mean"}
    assert {f"train/{t}" for t in want} <= tags, sorted(tags)
    assert "train/kl" not in tags
    assert stage.rollout_step == 2


def test_beta_builds_a_frozen_reference_and_kl_starts_at_exactly_zero(tmp_path):
    stage = GRPOStage(_text_model(), rewards=[TokenShareReward(LETTERS)], sampling=SAMPLING, beta=0.04, default_lr=1e-2)
    assert stage.ref_model is not None and not any(p.requires_grad for p in stage.ref_model.parameters())
    trainer = _fit(stage, _prompts(2), tmp_path, steps=1)
    assert trainer.logged_metrics["train/kl"] == 0.0  # the first update starts from the reference weights
    before = {k: v.clone() for k, v in stage.ref_model.state_dict().items()}
    _fit(stage, _prompts(2), tmp_path, steps=3)
    assert all(torch.equal(before[k], v) for k, v in stage.ref_model.state_dict().items())  # never trained
    assert trainer.logged_metrics["train/kl"] >= 0.0
    assert any(not torch.equal(a, b) for a, b in zip(stage.model.parameters(), stage.ref_model.parameters()))


class _Flat(Reward):
    """1.0 for every completion of a prompt whose id starts with "flat" (zero spread), else its ids' sum mod 7."""

    name = "flat"

    def score(self, prompt, completion: str, context: RewardContext) -> float:
        return 1.0 if prompt.id.startswith("flat") else float(sum(context.token_ids) % 7)


def test_dynamic_sampling_drops_zero_spread_groups_and_refills_up_to_the_cap():
    model = _text_model().eval()
    policy = Policy(model, build_processor(model))
    prompts = _prompts(3, "flat") + _prompts(5, "p")
    rewards = WeightedRewards([_Flat()])
    sampling = Sampling(group_size=4, max_new_tokens=6)
    rollout = collect(policy, rewards, prompts, step=0, seed=0, sampling=sampling, prompts_per_step=3,
                      dynamic_sampling=True, max_rounds=4)
    # Round 1 samples flat0-2 and drops them all; round 2 refills with p0-p2, whose rewards spread.
    assert [g.prompt.id for g in rollout.groups] == ["p0", "p1", "p2"]
    stats = dict(rollout.stats)
    sampled = stats.pop("sampled_reward_mean")  # the dropped flat groups (1.0 each) count too
    assert sampled == pytest.approx((3 * 4 * 1.0 + sum(r for g in rollout.groups for r in g.rewards)) / 24)
    assert stats == {"groups_sampled": 6, "zero_spread_share": 0.5, "groups_kept": 3, "groups_dropped": 3,
                     "rounds": 2, "short_of_target": 0}
    capped = collect(policy, rewards, prompts, step=0, seed=0, sampling=sampling, prompts_per_step=3,
                     dynamic_sampling=True, max_rounds=1)
    assert capped.groups == [] and capped.stats["short_of_target"] == 3 and capped.stats["groups_dropped"] == 3
    plain = collect(policy, rewards, prompts, step=0, seed=0, sampling=sampling, prompts_per_step=3)
    assert [g.prompt.id for g in plain.groups] == ["flat0", "flat1", "flat2"]
    assert plain.stats["zero_spread_share"] == 1.0
    again = collect(policy, rewards, prompts, step=0, seed=0, sampling=sampling, prompts_per_step=3)
    assert [[c.token_ids for c in g.completions] for g in again.groups] == \
        [[c.token_ids for c in g.completions] for g in plain.groups]  # (seed, step, index) fix the samples


def test_rollouts_that_keep_no_group_stop_the_run_after_max_idle_rollouts(tmp_path):
    # Every group's rewards are equal, so dynamic sampling keeps none and no optimiser step is ever taken:
    # without the cap max_steps is never reached and the fit samples forever.
    stage = GRPOStage(_text_model(), rewards=[_Flat()], sampling=SAMPLING, dynamic_sampling=True, max_rounds=1,
                      max_idle_rollouts=3)
    with pytest.raises(RuntimeError, match="3 rollouts in a row kept no group"):
        _fit(stage, _prompts(8, "flat"), tmp_path, steps=2)
    assert stage.rollout_step == 3 and stage.global_step == 0
    # A step that keeps a group resets the count: 2 flat batches, 1 that spreads, 2 flat, ... never reaches 3.
    mixed = _prompts(4, "flat") + _prompts(2, "p") + _prompts(4, "flat") + _prompts(2, "q")
    stage = GRPOStage(_text_model(), rewards=[_Flat()], sampling=SAMPLING, dynamic_sampling=True, max_rounds=1,
                      max_idle_rollouts=3)
    _fit(stage, mixed, tmp_path, steps=2)
    assert stage.rollout_step == 6 and stage.global_step == 2
    with pytest.raises(ValueError, match="max_idle_rollouts"):
        GRPOStage(_text_model(), rewards=[_Flat()], max_idle_rollouts=-1)


def _alone(policy, prompt, ids) -> torch.Tensor:
    batch = policy.completion_batch([prompt], [ids])
    with torch.no_grad():
        out = policy.logprobs(batch)
    return out.per_sample(batch)[0]


@pytest.mark.parametrize("layout", ["left", "packed"])
def test_rollout_batch_logprobs_equal_each_completion_alone(media, layout):
    """G sampled completions sharing one image prompt, plus a text prompt's: the rollout batch's log-probs
    (left-padded, or packed) equal each completion scored alone and unpadded, within 1e-5."""
    model = tiny_omni().eval()
    policy = Policy(model, build_processor(model))
    image = {"messages": [{"role": "user", "content": "<image>What colour is it?"},
                          {"role": "assistant", "content": "Red"}], "images": [media["red"]]}
    text = {"messages": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue"}]}
    groups = policy.generate([image, text], n=4, max_new_tokens=8, seed=3)
    placeholders = set(policy.processor.token_ids.values())
    pairs = [(p, c.token_ids) for p, g in zip([image, text], groups) for c in g
             if c.token_ids and not placeholders & set(c.token_ids)]
    assert sum(p is image for p, _ in pairs) >= 2  # several completions share the image
    prompts, ids = [p for p, _ in pairs], [i for _, i in pairs]
    batch = (policy.completion_batch(prompts, ids, packed=True) if layout == "packed"
             else policy.completion_batch(prompts, ids, padding_side="left"))
    with torch.no_grad():
        got = policy.logprobs(batch).per_sample(batch)
    for g, (p, i) in zip(got, pairs):
        assert (g - _alone(policy, p, i)).abs().max() <= 1e-5
    sampled = [c.logprobs for g in groups for c in g if c.token_ids and not placeholders & set(c.token_ids)]
    for g, s in zip(got, sampled):  # the sampler's own log-probs agree with the training forward too
        assert torch.allclose(g, torch.tensor(s), atol=1e-4)


@pytest.mark.slow
def test_toy_task_learns_the_target_token_within_50_steps():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from grpo_toy import run

    rows = run(steps=50, stop_at=0.9)
    assert rows[0]["reward"] <= 0.1
    assert rows[-1]["reward"] >= 0.9 and len(rows) <= 50

"""Exact GRPO resume: a run killed with SIGKILL at step k and resumed from `last` samples the same prompts and
completions, and gets the same rewards and losses (<= 1e-6), as a run never stopped."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import yaml

from tests.stages.test_grpo import LETTERS
from tests.stages.test_resume import _fit, _wait

ROOT = Path(__file__).resolve().parents[2]
# Two optimiser steps per rollout (mini_batches 2): 8 rollouts, checkpoints every 2, the kill after the 5th (index 4),
# so the resumed run replays rollout 4 from the checkpoint after rollout 3, then goes on.
MAX_STEPS, EVERY, KILL_AT, PER_ROLLOUT = 16, 4, 10, 2


def _config(run: Path, prompts: Path) -> Path:
    model = {"class_path": "valley3.models.OmniModel",
             "init_args": {"decoder": {"class_path": "valley3.models.decoders.HFDecoder",
                                       "init_args": {"preset": "tiny-qwen3"}}}}
    config = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu", "devices": 1, "precision": "32-true", "max_steps": MAX_STEPS, "logger": False,
            "num_sanity_val_steps": 0, "enable_progress_bar": False, "enable_model_summary": False,
            "default_root_dir": str(run),
            "callbacks": [
                {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                 "init_args": {"dirpath": str(run / "ckpt"), "every_n_train_steps": EVERY, "save_last": True,
                               "save_top_k": 0}},
                {"class_path": "tests.stages._grpo_callbacks.RolloutLog",
                 "init_args": {"path": str(run / "log.jsonl")}},
                {"class_path": "tests.stages._resume_callbacks.KillAt"},
            ],
        },
        "model": {"class_path": "valley3.stages.GRPOStage",
                  "init_args": {"model": model, "default_lr": 1e-2, "warmup_steps": 2, "max_len": 128,
                                "rewards": [{"class_path": "valley3.rewards.TokenShareReward",
                                             "init_args": {"text": LETTERS}}],
                                "sampling": {"group_size": 4, "max_new_tokens": 6}, "mini_batches": PER_ROLLOUT,
                                "seed": 3}},
        "data": {"class_path": "valley3.data.datamodules.PromptDataModule",
                 "init_args": {"train": str(prompts), "batch_size": 3}},
    }
    path = run / "fit.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _log(run: Path) -> dict[int, dict]:
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return {r["step"]: r for r in rows}  # a replayed step keeps its resumed value


@pytest.mark.slow
def test_grpo_killed_at_step_k_resumes_with_the_same_prompts_rewards_and_losses(tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"q{i}", "messages": [
        {"role": "user", "content": f"Describe item {i}."}, {"role": "assistant", "content": "red"}]}) + "\n"
        for i in range(18)))  # 6 batches an epoch: the kill lands mid-epoch, the last steps in the next epoch
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    for run in (whole, broken):
        run.mkdir()
    reference = _fit(_config(whole, prompts))
    killed = _fit(_config(broken, prompts), kill_at=KILL_AT)
    (code, err), (killed_code, killed_err) = _wait(reference), _wait(killed)
    assert code == 0, err
    assert killed_code == -signal.SIGKILL, killed_err
    assert max(_log(broken)) == KILL_AT // PER_ROLLOUT - 1
    code, err = _wait(_fit(broken / "fit.yaml", "--ckpt_path", "last"))
    assert code == 0, err
    expected, got = _log(whole), _log(broken)
    rollouts = MAX_STEPS // PER_ROLLOUT
    assert sorted(expected) == list(range(rollouts)) == sorted(got)
    resumed = range((KILL_AT // EVERY) * EVERY // PER_ROLLOUT, rollouts)  # from the rollout after the checkpoint
    assert list(resumed) == [4, 5, 6, 7]
    assert any(sum(expected[s]["rewards"]) > 0 for s in resumed)  # something to compare: rewards are not all 0
    for step in resumed:
        assert got[step]["ids"] == expected[step]["ids"], step
        assert got[step]["rewards"] == pytest.approx(expected[step]["rewards"], abs=1e-6), step
        assert got[step]["losses"] == pytest.approx(expected[step]["losses"], abs=1e-6), step

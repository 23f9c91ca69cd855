"""Exact resume: a fit killed with SIGKILL mid-epoch and resumed from `last` logs the losses an unbroken run logs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from valley3.data.demo import make_demo

ROOT = Path(__file__).resolve().parents[2]
MAX_STEPS, EVERY, KILL_AT = 30, 5, 13  # last checkpoint at step 10: the resumed run replays 11-13, then goes on
# Plain files go through the same MixtureSampler as a mixture (one source); the mixture case adds weights, a
# strategy, a replay share and offline packing of each epoch's draws in the sampler's order.
DATA = {
    "plain": {"train": "{d}/omni_train.jsonl"},
    "mixture_packed": {
        "sources": [{"path": "{d}/omni_train.jsonl", "weight": 3}, {"path": "{d}/text_train.jsonl", "strategy": "first:50%"},
                    {"path": "{d}/audio_train.jsonl", "replay": 0.2}],
        "mixture": {"num_samples": 200},
        "packing": {"max_tokens": 192, "window": 16, "cache_dir": "{d}/packs"},
    },
    # litdata shards of the same file, read by StreamingDataModule through the same sampler
    "shards": {"class_path": "valley3.data.datamodules.StreamingDataModule", "train": "{d}/shards"},
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    make_demo(out, n_products=24, speech="synthetic")
    return out


def _config(run: Path, demo: Path, data: dict) -> Path:
    data = json.loads(json.dumps(data).replace("{d}", str(demo)))
    data_class = data.pop("class_path", "valley3.data.datamodules.OmniDataModule")
    config = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu", "devices": 1, "precision": "32-true", "max_steps": MAX_STEPS, "logger": False,
            "log_every_n_steps": 1, "num_sanity_val_steps": 0, "enable_progress_bar": False,
            "enable_model_summary": False, "default_root_dir": str(run),
            "callbacks": [
                {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                 "init_args": {"dirpath": str(run / "ckpt"), "every_n_train_steps": EVERY, "save_last": True,
                               "save_top_k": 0}},
                {"class_path": "tests.stages._resume_callbacks.LossLog", "init_args": {"path": str(run / "loss.jsonl")}},
                {"class_path": "tests.stages._resume_callbacks.KillAt"},
            ],
        },
        "model": {"class_path": "valley3.stages.OmniStage",
                  "init_args": {"model": str(ROOT / "configs/model/tiny_omni.yaml"), "default_lr": 3e-3,
                                "warmup_steps": 3, "max_len": 256}},
        "data": {"class_path": data_class, "init_args": {"batch_size": 2, **data}},
    }
    path = run / "fit.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _fit(config: Path, *args: str, kill_at: int | None = None) -> subprocess.Popen:
    # This checkout's sources first, so a run tests them and not another installed copy of valley3.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
    env.pop("VALLEY3_KILL_AT", None)
    if kill_at is not None:
        env["VALLEY3_KILL_AT"] = str(kill_at)
    return subprocess.Popen([sys.executable, "-m", "valley3.cli", "fit", "--config", str(config), *args], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait(run: subprocess.Popen) -> tuple[int, str]:
    _, err = run.communicate(timeout=300)
    return run.returncode, err[-3000:]


def _losses(run: Path) -> dict[int, tuple[float, list]]:
    rows = [json.loads(line) for line in (run / "loss.jsonl").read_text().splitlines()]
    assert all(r["epoch_batches"] >= 40 for r in rows)  # every step in one epoch: the kill lands mid-epoch
    return {r["step"]: (r["loss"], r["ids"]) for r in rows}  # a replayed step keeps its resumed value


@pytest.mark.parametrize("case", list(DATA))
def test_killed_mid_epoch_resumes_with_the_same_next_20_losses(case, demo, tmp_path):
    if case == "shards" and not (demo / "shards").is_dir():
        cmd = [sys.executable, "-m", "valley3.cli", "data", "shard", "--data", str(demo / "omni_train.jsonl"),
               "--out", str(demo / "shards")]
        env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}  # this checkout's `valley3 data shard`
        subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True, env=env)
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    for run in (whole, broken):
        run.mkdir()
    reference = _fit(_config(whole, demo, DATA[case]))  # the two first runs share the cores: less wall time
    killed = _fit(_config(broken, demo, DATA[case]), kill_at=KILL_AT)
    (code, err), (killed_code, killed_err) = _wait(reference), _wait(killed)
    assert code == 0, err
    assert killed_code == -signal.SIGKILL, killed_err
    assert max(_losses(broken)) == KILL_AT
    code, err = _wait(_fit(broken / "fit.yaml", "--ckpt_path", "last"))
    assert code == 0, err
    expected, got = _losses(whole), _losses(broken)
    assert sorted(expected) == list(range(1, MAX_STEPS + 1)) == sorted(got)
    steps = range(EVERY * (KILL_AT // EVERY) + 1, MAX_STEPS + 1)
    assert len(steps) == 20
    for step in steps:
        assert got[step][1] == expected[step][1], step  # the same samples, in the same order
        assert got[step][0] == pytest.approx(expected[step][0], abs=1e-6), step
    assert "not resumable" not in err  # Lightning takes the loader as resumable: no warning

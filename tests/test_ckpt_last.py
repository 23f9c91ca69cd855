"""`--ckpt_path last` resumes the newest run of a config with auto-numbered run folders, and says so when none is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from valley3.callbacks import LossSummary
from valley3.cli import main

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "experiments/demo/quickstart.yaml")
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.limit_val_batches=0"]


def _losses(cli) -> LossSummary:
    return next(cb for cb in cli.trainer.callbacks if isinstance(cb, LossSummary))


def test_quickstart_resumes_from_last_in_its_own_run_folder(tmp_path, monkeypatch):
    main(["data", "demo", "--out", str(tmp_path / "demo_data"), "--n-products", "6", "--speech", "synthetic"])
    monkeypatch.chdir(tmp_path)  # the experiment's data paths and run folder are relative to the working dir
    main(["fit", "--config", QUICKSTART, "--trainer.max_steps=4", *QUIET])
    last = tmp_path / "runs/quickstart/version_0/checkpoints/last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 4
    cli = main(["fit", "--config", QUICKSTART, "--trainer.max_steps=6", "--ckpt_path", "last", *QUIET])
    assert cli.trainer.global_step == 6 and len(_losses(cli).losses) == 2  # steps 5 and 6 only: it went on
    # The resumed run logs and checkpoints in the folder it resumed, not a new version_1.
    assert sorted(p.name for p in (tmp_path / "runs/quickstart").iterdir()) == ["version_0"]
    assert torch.load(last, weights_only=True)["global_step"] == 6


def test_last_with_nothing_to_resume_says_so(tmp_path, monkeypatch):
    main(["data", "demo", "--out", str(tmp_path / "demo_data"), "--n-products", "6", "--speech", "synthetic"])
    monkeypatch.chdir(tmp_path)
    with pytest.warns(UserWarning, match=r"--ckpt_path last: no last checkpoint under .*runs/quickstart/version_\*"):
        cli = main(["fit", "--config", QUICKSTART, "--trainer.max_steps=2", "--ckpt_path", "last", *QUIET])
    assert cli.trainer.global_step == 2 and len(_losses(cli).losses) == 2


def test_pipeline_steps_take_last_too(tmp_path, monkeypatch):
    """A pipeline step saves into a fixed `<out>/<step>/checkpoints/`: `last` finds nothing on the first run (and
    says so) and the step's own last.ckpt on a re-run after an interruption."""
    main(["data", "demo", "--out", str(tmp_path / "demo_data"), "--n-products", "6", "--speech", "synthetic"])
    monkeypatch.chdir(tmp_path)
    demo = ROOT / "experiments/demo/pipeline"
    (tmp_path / "p.yaml").write_text(f"steps:\n  - {{name: base_vl, fit: [{demo}/common.yaml, {demo}/base_vl.yaml]}}\n")
    args = ["--", "--trainer.logger=false", "--trainer.enable_progress_bar=false", "--ckpt_path", "last"]
    with pytest.warns(UserWarning, match=r"no last checkpoint under .*runs/base_vl/checkpoints/"):
        main(["pipeline", "p.yaml", "--out", "runs", *args, "--trainer.max_steps=2"])
    (tmp_path / "runs/base_vl/summary.json").unlink()  # as if killed after its last checkpoint
    main(["pipeline", "p.yaml", "--out", "runs", *args, "--trainer.max_steps=4"])
    summary = json.loads((tmp_path / "runs/base_vl/summary.json").read_text())
    assert summary["status"] == "resumed" and summary["steps"] == 4

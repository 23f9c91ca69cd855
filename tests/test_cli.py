"""The `valley3` command: help lists the swappable components; the demo quickstart trains and its loss falls."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from valley3.callbacks import LossSummary
from valley3.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("args", [["--help"], ["fit", "--help"]])
def test_help_lists_swappable_components_with_docstrings(args):
    # The module, not the console script: a venv that is not activated has no `valley3` on PATH.
    out = subprocess.run([sys.executable, "-m", "valley3.cli", *args], capture_output=True, text=True, check=True).stdout
    for line in (
        "valley3.models.vision.SigLIPEncoder  SigLIP vision tower",
        "valley3.models.audio.WhisperEncoder  Whisper's encoder",
        "valley3.models.decoders.HFDecoder  A causal LM",
        "valley3.models.connectors.AudioMLPConnector  The Valley3 audio connector",
        "valley3.data.datamodules.AudioDataModule  Audio-text conversations",
    ):
        assert " ".join(line.split()) in " ".join(out.split()), line


def test_data_demo_command_writes_the_dataset(tmp_path, capsys):
    main(["data", "demo", "--out", str(tmp_path), "--n-products", "6", "--speech", "synthetic"])
    assert "omni_train" in capsys.readouterr().out
    assert (tmp_path / "omni_train.jsonl").read_text().count("\n") > 6


def test_quickstart_trains_writes_logs_and_a_checkpoint_and_the_loss_falls(tmp_path, monkeypatch):
    main(["data", "demo", "--out", str(tmp_path / "demo_data")])
    monkeypatch.chdir(tmp_path)  # the experiment's data paths and run folder are relative to the working dir
    cli = main([
        "fit", "--config", str(ROOT / "experiments/demo/quickstart.yaml"),
        "--trainer.max_steps=150", "--trainer.enable_progress_bar=false",
    ])
    summary = next(cb for cb in cli.trainer.callbacks if isinstance(cb, LossSummary))
    first, last = summary.first_last()
    assert len(summary.losses) == 150
    assert last < 0.6 * first, (first, last)
    run = tmp_path / "runs/quickstart/version_0"
    assert (run / "checkpoints/last.ckpt").is_file()
    assert list(run.glob("events.out.tfevents.*"))


def test_inspect_command_prints_parameter_and_token_tables(capsys):
    main(["inspect", "--config", str(ROOT / "configs/model/tiny_omni.yaml")])
    out = capsys.readouterr().out
    assert "| vision | SigLIPEncoder | 23,840 |" in out
    assert "| tile 32x32 | 1 | 16 |" in out

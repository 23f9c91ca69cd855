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


def test_no_arguments_prints_usage_with_every_command(capsys):
    from lightning.pytorch.cli import LightningCLI

    from valley3.cli import COMMANDS

    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    err = capsys.readouterr().err
    listed = [line.split()[0] for line in err.split("commands:")[1].strip().splitlines()]
    assert listed == list(COMMANDS)
    # Every LightningCLI subcommand and every command main() dispatches itself.
    assert set(LightningCLI.subcommands()) | {"data", "pipeline", "inspect"} <= set(listed)


_HEAVY = ("torch", "transformers", "lightning", "lightning.pytorch", "jsonargparse", "timm", "torchaudio")


def test_top_level_help_imports_no_heavy_module():
    """`valley3 --help` answers at once: it reads the component list from the sources instead of importing them."""
    code = ("import runpy, sys\nsys.argv = ['valley3', '--help']\n"
            "runpy.run_module('valley3.cli', run_name='__main__')\n"
            f"print('HEAVY', sorted(m for m in {_HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out
    assert "valley3.models.vision.SigLIPEncoder SigLIP vision tower" in " ".join(out.split())


def test_the_component_list_read_from_sources_equals_the_imported_classes():
    import importlib
    import inspect

    from valley3._components import FAMILIES, family

    def imported(base):
        found = [base] if not inspect.isabstract(base) else []
        for sub in base.__subclasses__():
            found += imported(sub)
        return found

    for package, base_name in FAMILIES.values():
        classes = imported(getattr(importlib.import_module(package), base_name))
        # valley3's own classes: subclasses that tests define (imported earlier in the session) are not components
        expected = {(f"{c.__module__}.{c.__name__}", (c.__doc__ and inspect.getdoc(c) or "").split("\n")[0])
                    for c in classes if c.__module__.startswith("valley3.")}
        got = set()
        for path, doc in family(package, base_name):
            module, _, name = path.rpartition(".")
            cls = getattr(importlib.import_module(module), name)  # the printed path really exports it
            got.add((f"{cls.__module__}.{cls.__name__}", doc))
        assert got == expected, package

"""Every YAML under configs/ and experiments/ parses and instantiates (real shapes on the meta device)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from torch import nn

from valley3.data.datamodules import BaseDataModule
from valley3.models import OmniModel
from valley3.models.audio import AudioEncoder
from valley3.models.decoders import Decoder
from valley3.models.vision import VisionEncoder
from valley3.pipeline import Pipeline
from valley3.stages import OmniStage

ROOT = Path(__file__).resolve().parents[1]
COMPONENT_TYPES = {
    "vision": VisionEncoder,
    "audio": AudioEncoder,
    "decoder": Decoder,
    "model": OmniModel,
}


def _yamls(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.yaml"))


def _instantiate(path: Path, base: type):
    parser = LightningArgumentParser()
    parser.add_subclass_arguments(base, "obj")
    return parser.instantiate_classes(parser.parse_args([f"--obj={path}"])).obj


@pytest.mark.parametrize("path", _yamls("configs/model"), ids=lambda p: str(p.relative_to(ROOT)))
def test_component_config_instantiates(path):
    kind = path.parent.name
    with torch.device("meta"):  # real shapes (e.g. SigLIP-so400m) cost nothing on the meta device
        if kind == "connector":  # a connector config is a factory OmniModel calls with (in, out) widths
            spec = yaml.safe_load(path.read_text())
            module_name, _, cls_name = spec["class_path"].rpartition(".")
            cls = getattr(importlib.import_module(module_name), cls_name)
            obj = cls(8, 16, **spec.get("init_args", {}))
            grid = (5, 4)  # odd on purpose: merging connectors must handle it
            assert obj(torch.zeros(2, 20, 8), grid).shape == (2, obj.num_tokens(grid), 16)
        else:
            obj = _instantiate(path, COMPONENT_TYPES[kind])
    assert isinstance(obj, COMPONENT_TYPES.get(kind, nn.Module))


@pytest.mark.parametrize("path", _yamls("configs/trainer"), ids=lambda p: p.name)
def test_trainer_config_builds_a_trainer(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli = LightningCLI(OmniStage, BaseDataModule, subclass_mode_model=True, subclass_mode_data=True, run=False,
                       args=_experiment_args(trainer=path))
    assert cli.trainer.max_steps == 300  # the experiment's value survives composing the trainer file


def _experiment_args(trainer: Path | None = None, experiment: Path | None = None) -> list[str]:
    experiment = experiment or ROOT / "experiments/demo/quickstart.yaml"
    args = ["--config", str(experiment)]
    if trainer is not None:
        args += ["--trainer", str(trainer)]
    return args


def _pipelines() -> list[Path]:
    return sorted(ROOT.glob("experiments/*/pipeline.yaml"))


def _pipeline_parts() -> set[Path]:
    """Every YAML a pipeline names: its own file, its steps' partial configs and the shared stage configs."""
    parts = set()
    for path in _pipelines():
        parts.add(path)
        parts |= {(path.parent / c).resolve() for step in Pipeline.from_yaml(path).steps for c in step.fit}
    return parts


def _fit_configs() -> list[Path]:
    return [p for p in _yamls("experiments") if p.resolve() not in _pipeline_parts() and p.parent.name != "pipeline"]


def test_the_pipeline_eval_override_scores_the_pipeline_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = _experiment_args(experiment=ROOT / "experiments/demo/eval.yaml")
    args += ["--config", str(ROOT / "experiments/demo/pipeline/eval_model.yaml")]
    cli = LightningCLI(OmniStage, BaseDataModule, subclass_mode_model=True, subclass_mode_data=True, run=False,
                       args=args)
    assert cli.model.model.vision is None and type(cli.model.model.decoder).__name__ == "Qwen3VLDecoder"


class _ParseOnly(LightningCLI):
    """Parses and type-checks a config (class paths, argument names and types) without building anything."""

    def instantiate_classes(self) -> None:
        pass


@pytest.mark.parametrize("path", _pipelines(), ids=lambda p: str(p.relative_to(ROOT)))
def test_pipeline_steps_compose_into_valid_configs(path, tmp_path, monkeypatch):
    """Each fit step's config files compose into one valid config; tiny (CPU) recipes also build."""
    monkeypatch.chdir(tmp_path)
    pipeline = Pipeline.from_yaml(path)
    fits = [step for step in pipeline.steps if step.fit]
    assert fits and all(step.init_from == "previous" for step in fits[1:])
    for step in fits:
        args = [a for c in step.fit for a in ("--config", str(path.parent / c))] + step.args
        cli_class = LightningCLI if "demo" in path.parts else _ParseOnly  # real shapes need real weights
        cli = cli_class(OmniStage, BaseDataModule, subclass_mode_model=True, subclass_mode_data=True, run=False,
                        args=args)
        if cli_class is LightningCLI:
            assert isinstance(cli.model, OmniStage) and isinstance(cli.datamodule, BaseDataModule)
        stage = cli.config["model"]["class_path"]
        assert stage.startswith("valley3.stages."), (step.name, stage)


@pytest.mark.parametrize("path", _fit_configs(), ids=lambda p: str(p.relative_to(ROOT)))
def test_experiment_config_instantiates(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli = LightningCLI(OmniStage, BaseDataModule, subclass_mode_model=True, subclass_mode_data=True, run=False,
                       args=_experiment_args(experiment=path))
    assert isinstance(cli.model, OmniStage) and isinstance(cli.datamodule, BaseDataModule)
    assert cli.model.processor.token_ids["image"] == cli.model.model.token_ids["image"]


def _stage_configs() -> list[Path]:
    """Stage configs no pipeline uses yet (e.g. post-training stages): composed with the quickstart instead."""
    return [p for p in _yamls("configs/stage") if p.resolve() not in _pipeline_parts()]


@pytest.mark.parametrize("path", _stage_configs(), ids=lambda p: str(p.relative_to(ROOT)))
def test_stage_config_composes_with_the_quickstart(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = _experiment_args() + ["--config", str(path)]
    cli = LightningCLI(OmniStage, BaseDataModule, subclass_mode_model=True, subclass_mode_data=True, run=False,
                       args=args)
    assert cli.config["model"]["class_path"] == yaml.safe_load(path.read_text())["model"]["class_path"]
    assert isinstance(cli.model, OmniStage)


def test_every_yaml_is_covered():
    covered = set(_yamls("configs/model", "configs/trainer")) | set(_fit_configs()) | _pipeline_parts()
    covered |= set(_stage_configs())
    covered.add(ROOT / "experiments/demo/pipeline/eval_model.yaml")
    every = set(_yamls("configs", "experiments"))
    assert every == covered, f"add a test for {sorted(str(p) for p in every - covered)}"
    for path in every:
        assert yaml.safe_load(path.read_text()) is not None, path

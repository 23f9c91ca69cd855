"""Every ablation sweep parses, and each of its points composes into a fit config and a test config that build."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from lightning.pytorch.cli import LightningCLI

from valley3.data.datamodules import BaseDataModule
from valley3.pipeline import Pipeline
from valley3.stages import EvalStage, OmniStage
from valley3.sweep import Sweep

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = sorted((ROOT / "ablations").glob("*/sweep.yaml"))
QUESTIONS = {"projector", "eagle", "tiling", "audio_encoder", "staged", "packing", "data_mix"}


def _build(args: list[str]) -> LightningCLI:
    return LightningCLI(OmniStage, BaseDataModule, subclass_mode_model=True, subclass_mode_data=True, run=False,
                        args=args)


def _fit_args(sweep: Sweep, point: dict) -> list[list[str]]:
    """The argument lists of the point's fits: one, or one per fit step of its pipeline."""
    common = [*point["fit"], *sweep.args.get("fit", [])]
    if not point["pipeline"]:
        return [[*sweep.configs(sweep.base), *common]]
    pipeline = Pipeline.from_yaml(point["pipeline"])
    return [[a for c in s.fit for a in ("--config", str(pipeline.root / c))] + s.args + common
            for s in pipeline.steps if s.fit]


def test_every_question_has_a_sweep_and_a_readme():
    assert {p.parent.name for p in SWEEPS} == QUESTIONS
    for path in SWEEPS:
        readme = (path.parent / "README.md").read_text()
        assert f"valley3 sweep ablations/{path.parent.name}/sweep.yaml" in readme


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.parent.name)
def test_sweep_points_compose(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sweep = Sweep.from_yaml(path)
    points = sweep.points()
    assert len(points) >= 2
    models, tiles = [], []
    for point in points:
        for args in _fit_args(sweep, point):
            cli = _build(args)
            assert isinstance(cli.model, OmniStage) and isinstance(cli.datamodule, BaseDataModule)
        models.append(cli.model)
        tiles.append(cli.config["model"]["init_args"]["max_tiles"])
        test = _build([*sweep.configs(sweep.eval), *point["test"], *sweep.args.get("test", [])])
        assert isinstance(test.model, EvalStage)
        # the tested model is the trained one: same parameter names and shapes
        shapes = lambda m: {k: tuple(v.shape) for k, v in m.model.state_dict().items()}  # noqa: E731
        assert shapes(test.model) == shapes(cli.model), point["name"]
    if path.parent.name in ("projector", "eagle", "audio_encoder"):  # the axis really changes the network
        assert len({sum(p.numel() for p in m.parameters()) for m in models}) == len(models)
    if path.parent.name == "tiling":
        assert tiles == [1, 4, 9]


def test_every_ablation_yaml_is_used():
    used = {ROOT / "ablations/eval.yaml"} | set(SWEEPS)
    for path in SWEEPS:
        for point in Sweep.from_yaml(path).points():
            if point["pipeline"]:
                pipeline = Pipeline.from_yaml(point["pipeline"])
                used |= {Path(point["pipeline"])} | {(pipeline.root / c).resolve() for s in pipeline.steps for c in s.fit}
    every = set((ROOT / "ablations").rglob("*.yaml"))
    assert every <= {p.resolve() for p in used}, sorted(map(str, every - used))
    for path in every:
        assert yaml.safe_load(path.read_text()) is not None, path

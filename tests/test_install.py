"""The installed set is the pinned one: the torch family loads together and every dependency is locked."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _pins() -> dict[str, str]:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    pairs = (line.split("==") for line in lines if line and not line.startswith("#"))
    return {_norm(name): pinned for name, pinned in pairs}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_torch_family_is_the_pinned_one_and_loads_together():
    import torchaudio
    import torchvision

    pins = _pins()
    for name in ("torch", "torchvision", "torchaudio"):
        assert version(name).split("+")[0] == pins[name], name
    # torchaudio's compiled ops are what fails beside a mismatched torch (undefined symbol at load).
    wave = torch.sin(torch.arange(1600.0))
    assert torchaudio.functional.resample(wave, 16000, 8000).shape == (800,)
    assert torchvision.ops.nms(torch.tensor([[0.0, 0, 1, 1]]), torch.tensor([1.0]), 0.5).tolist() == [0]


def test_every_dependency_is_locked_in_constraints():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"]) + list(project["optional-dependencies"]["dev"])
    names = {_norm(re.split(r"[\s<>=!;\[~]", req, maxsplit=1)[0]) for req in wanted}
    assert names - set(_pins()) == set()


def test_pyproject_pins_the_torch_family_exactly():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = _pins()
    for name in ("torch", "torchvision", "torchaudio"):
        assert f"{name}=={pins[name]}" in deps, name

"""Shared fixtures: tiny models built from configs and tiny media made on the spot (nothing downloaded)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Data loads in the test process (num_workers: auto resolves to 0): warnings stay catchable, no forks per loader.
os.environ.setdefault("VALLEY3_CPUS", "1")


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> dict[str, str]:
    """A few small media files: two images, two clips, and broken files of each kind."""
    root = tmp_path_factory.mktemp("media")
    Image.new("RGB", (48, 40), (200, 30, 30)).save(root / "red.png")
    Image.new("RGB", (20, 70), (30, 30, 200)).save(root / "blue.png")
    t = np.arange(int(16000 * 1.3)) / 16000
    sf.write(root / "tone.wav", 0.3 * np.sin(2 * np.pi * 440 * t), 16000)
    sf.write(root / "long.wav", 0.3 * np.sin(2 * np.pi * 220 * np.arange(int(8000 * 4.7)) / 8000), 8000)
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64))
    (root / "empty.wav").write_bytes(b"")
    return {p.stem: str(p) for p in root.iterdir()}


def tiny_omni(decoder: str = "tiny-qwen3", seed: int = 0, **kwargs):
    from valley3.models import OmniModel
    from valley3.models.audio import WhisperEncoder
    from valley3.models.decoders import HFDecoder
    from valley3.models.vision import SigLIPEncoder

    torch.manual_seed(seed)
    return OmniModel(HFDecoder(decoder), vision=SigLIPEncoder("tiny-siglip"), audio=WhisperEncoder("tiny-whisper"),
                     **kwargs)


def forward(model, batch):
    """The model's logits over every model input a `Batch` carries (as a stage's step runs it)."""
    return model(**batch.model_inputs())


@pytest.fixture
def stage():
    from valley3.stages import OmniStage

    return OmniStage(tiny_omni())


def tool_summary(out, tool: str) -> dict:
    """The `summary.json` a `valley3 data` tool writes into `out`: its name, the run's seconds and its throughput."""
    import json
    from pathlib import Path

    summary = json.loads((Path(out) / "summary.json").read_text())
    assert summary["tool"] == tool
    assert summary["seconds"] >= 0 and summary["items_per_s"] > 0
    return summary

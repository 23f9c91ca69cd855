"""Stage defaults live in the stage classes only: the configs/stage YAMLs choose a class and set nothing."""

from pathlib import Path

import pytest
import yaml

from tests.conftest import tiny_omni
from valley3.models.audio import WhisperEncoder
from valley3.models.decoders import HFDecoder
from valley3.models.omni import OmniModel
from valley3.stages import AudioInstructStage, DomainCPTStage, RejectionFTStage

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", sorted((ROOT / "configs" / "stage").glob("*.yaml")), ids=lambda p: p.name)
def test_stage_yaml_repeats_no_class_default(path):
    model = yaml.safe_load(path.read_text())["model"]
    assert set(model) == {"class_path"}, f"{path.name} sets {model.get('init_args')}: defaults belong in the class"


def test_default_vision_rate_applies_only_to_a_model_with_vision():
    with_vision = tiny_omni()
    assert DomainCPTStage(with_vision).lrs["vision"] == 2e-6
    assert RejectionFTStage(with_vision).lrs["vision"] == 1e-6
    assert DomainCPTStage(with_vision, lr={}).lrs["vision"] == 1e-5
    audio_only = OmniModel(HFDecoder("tiny-qwen3"), audio=WhisperEncoder("tiny-whisper"))
    assert "vision" not in AudioInstructStage(audio_only).lrs

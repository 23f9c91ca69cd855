"""Policies over both architectures: composed encoders (tiny_omni) and Qwen3-VL with its own vision (tiny_valley3)."""

from __future__ import annotations

import pytest
import torch

from ..conftest import tiny_omni


def tiny_valley3():
    from valley3.models import OmniModel
    from valley3.models.audio import AuTEncoder
    from valley3.models.decoders import Qwen3VLDecoder

    torch.manual_seed(0)
    return OmniModel(Qwen3VLDecoder("tiny-qwen3-vl", min_pixels=32 * 32 * 4), audio=AuTEncoder("tiny-aut"))


@pytest.fixture(scope="module", params=["tiny_omni", "tiny_valley3"])
def policy(request):
    from valley3.policy import Policy, build_processor

    model = (tiny_omni if request.param == "tiny_omni" else tiny_valley3)().eval()
    return Policy(model, build_processor(model))


@pytest.fixture(scope="module")
def omni_policy():
    from valley3.policy import Policy, build_processor

    model = tiny_omni().eval()
    return Policy(model, build_processor(model))


def vision_tower(policy) -> torch.nn.Module:
    """The module that encodes pictures: SigLIP beside the decoder, or Qwen3-VL's ViT inside it."""
    return policy.model.vision if policy.model.vision is not None else policy.model.components()["vision"]


def prompts(media) -> list[dict]:
    """An image prompt, a longer text prompt and an audio prompt (messages records)."""
    return [
        {"messages": [{"role": "user", "content": "<image>What colour is it?"}], "images": [media["red"]]},
        {"messages": [{"role": "user", "content": "Name three things that are blue, and say why each one is."}]},
        {"messages": [{"role": "user", "content": "<audio>What do you hear?"}], "audios": [media["tone"]]},
    ]

"""SigLIP / SigLIP2 (fixed resolution) vision encoder from transformers."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import SiglipVisionConfig, SiglipVisionModel

from valley3.models.presets import VISION, resolve
from valley3.models.vision.base import VisionEncoder
from valley3.models.init_args import records_init_args
from valley3.models.weights import load_pretrained


@records_init_args
class SigLIPEncoder(VisionEncoder):
    """SigLIP vision tower; images are resized (no crop) to `image_size` and cut into patches.

    Args:
        preset: a named shape from `valley3.models.presets.VISION` (e.g. "tiny-siglip").
        config: SiglipVisionConfig keywords, applied on top of the preset.
        path: a local checkpoint folder (a SigLIP vision or full SigLIP model); wins over preset/config.
        select_layer: which hidden state to return; -1 is the last, -2 the penultimate (LLaVA's choice).
    """

    image_mean = (0.5, 0.5, 0.5)
    image_std = (0.5, 0.5, 0.5)

    def __init__(
        self,
        preset: str | None = None,
        config: dict[str, Any] | None = None,
        path: str | None = None,
        select_layer: int = -1,
    ):
        super().__init__()
        if path is not None:
            self.model = load_pretrained(SiglipVisionModel, path)
        else:
            kwargs = resolve(VISION, preset, config)
            kwargs.setdefault("vision_use_head", False)  # the pooled head is unused by a VLM
            self.model = SiglipVisionModel(SiglipVisionConfig(**kwargs))
        cfg = self.model.config
        self.embed_dim = cfg.hidden_size
        self.image_size = cfg.image_size
        self.patch_size = cfg.patch_size
        self.select_layer = select_layer

    def grid(self, height: int, width: int) -> tuple[int, int]:
        if (height, width) != (self.image_size, self.image_size):
            raise ValueError(f"SigLIP takes {self.image_size}x{self.image_size} inputs, got {height}x{width}")
        side = self.image_size // self.patch_size
        return side, side

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if self.select_layer == -1:
            return self.model(pixel_values=pixel_values).last_hidden_state
        out = self.model(pixel_values=pixel_values, output_hidden_states=True)
        return out.hidden_states[self.select_layer]

    @property
    def block_classes(self) -> set[type[nn.Module]]:
        return {type(layer) for layer in self.model.encoder.layers}

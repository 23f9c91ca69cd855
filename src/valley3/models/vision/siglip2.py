"""SigLIP2 NaFlex vision tower (transformers' Siglip2VisionModel) used at a fixed square resolution."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import Siglip2VisionConfig, Siglip2VisionModel

from valley3.models.presets import VISION, resolve
from valley3.models.vision.base import VisionEncoder
from valley3.models.init_args import records_init_args
from valley3.models.weights import load_pretrained


@records_init_args
class SigLIP2Encoder(VisionEncoder):
    """SigLIP2's NaFlex tower on `image_size` x `image_size` inputs: its position table is resized to the grid.

    transformers ships SigLIP2 in two forms. The fixed-resolution checkpoints (e.g.
    google/siglip2-so400m-patch14-384) keep SigLIP's architecture and load with `SigLIPEncoder` (preset
    "siglip2-so400m-384"). The NaFlex checkpoints (e.g. google/siglip2-so400m-patch16-naflex) need
    `Siglip2VisionModel`, which takes flattened patches, a patch mask and the grid shape; this class feeds it
    one full grid per image, so batches stay [B, 3, H, W].

    Args:
        preset: a named shape from `valley3.models.presets.VISION` (e.g. "tiny-siglip2").
        config: Siglip2VisionConfig keywords, applied on top of the preset.
        path: a local checkpoint folder (a SigLIP2 vision or full SigLIP2 model); wins over preset/config.
        image_size: the square input side; a multiple of the patch size.
        select_layer: which hidden state to return; -1 is the last (after the final LayerNorm).
    """

    image_mean = (0.5, 0.5, 0.5)
    image_std = (0.5, 0.5, 0.5)

    def __init__(
        self,
        preset: str | None = None,
        config: dict[str, Any] | None = None,
        path: str | None = None,
        image_size: int = 384,
        select_layer: int = -1,
    ):
        super().__init__()
        if path is not None:
            self.model = load_pretrained(Siglip2VisionModel, path)
        else:
            kwargs = resolve(VISION, preset, config)
            kwargs.setdefault("vision_use_head", False)  # the pooled head is unused by a VLM
            self.model = Siglip2VisionModel(Siglip2VisionConfig(**kwargs))
        cfg = self.model.config
        if image_size % cfg.patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of the patch size {cfg.patch_size}")
        self.embed_dim = cfg.hidden_size
        self.image_size = image_size
        self.patch_size = cfg.patch_size
        self.select_layer = select_layer

    def grid(self, height: int, width: int) -> tuple[int, int]:
        if (height, width) != (self.image_size, self.image_size):
            raise ValueError(f"SigLIP2Encoder takes {self.image_size}x{self.image_size} inputs, got {height}x{width}")
        side = self.image_size // self.patch_size
        return side, side

    def _patchify(self, pixel_values: torch.Tensor) -> torch.Tensor:
        # Siglip2ImageProcessor's layout: patches row-major, each flattened as (row, col, channel).
        b, c, h, w = pixel_values.shape
        p = self.patch_size
        x = pixel_values.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
        return x.reshape(b, (h // p) * (w // p), p * p * c)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        rows, cols = self.grid(*pixel_values.shape[-2:])
        b = pixel_values.shape[0]
        patches = self._patchify(pixel_values)
        mask = torch.ones(b, rows * cols, dtype=torch.long, device=pixel_values.device)
        shapes = torch.tensor([[rows, cols]] * b, dtype=torch.long, device=pixel_values.device)
        out = self.model(
            pixel_values=patches, pixel_attention_mask=mask, spatial_shapes=shapes,
            output_hidden_states=self.select_layer != -1,
        )
        return out.last_hidden_state if self.select_layer == -1 else out.hidden_states[self.select_layer]

    @property
    def block_classes(self) -> set[type[nn.Module]]:
        return {type(layer) for layer in self.model.encoder.layers}

"""Any timm Vision Transformer as a vision encoder: patch features without the class/register tokens."""

from __future__ import annotations

from typing import Any

import timm
import torch
from safetensors.torch import load_file
from torch import nn

from valley3.models.vision.base import VisionEncoder
from valley3.models.init_args import records_init_args


@records_init_args
class TimmViTEncoder(VisionEncoder):
    """A timm ViT built by name (never downloaded); weights come from a local safetensors file.

    The classifier head and pooling are removed (`num_classes=0, global_pool=""`), so every parameter left
    feeds the patch features; prefix tokens (class, registers) are dropped from the output.

    Args:
        model_name: a timm architecture, e.g. "vit_base_patch16_384" or "vit_so400m_patch14_siglip_384".
        config: keyword overrides for `timm.create_model` (img_size, patch_size, embed_dim, depth, ...).
        checkpoint: a local .safetensors state dict of that architecture (head weights are ignored).
    """

    def __init__(self, model_name: str = "vit_base_patch16_384", config: dict[str, Any] | None = None,
                 checkpoint: str | None = None):
        super().__init__()
        kwargs = {"num_classes": 0, "global_pool": "", **(config or {})}
        self.model = timm.create_model(model_name, pretrained=False, **kwargs)
        if checkpoint is not None:
            self._load(checkpoint)
        embed = self.model.patch_embed
        self.embed_dim = self.model.embed_dim
        self.image_size = embed.img_size[0]
        if embed.img_size[0] != embed.img_size[1]:
            raise ValueError(f"{model_name}: only square inputs are supported, got img_size {embed.img_size}")
        cfg = self.model.pretrained_cfg
        self.image_mean = tuple(cfg.get("mean", (0.5, 0.5, 0.5)))
        self.image_std = tuple(cfg.get("std", (0.5, 0.5, 0.5)))

    def _load(self, checkpoint: str) -> None:
        own = self.model.state_dict()
        state = {k: v for k, v in load_file(checkpoint).items() if k in own}  # drops head / pooling weights
        missing = sorted(set(own) - set(state))
        if missing:
            raise KeyError(f"{checkpoint} lacks {len(missing)} weight(s) of the model, e.g. {missing[:3]}")
        self.model.load_state_dict(state)

    def grid(self, height: int, width: int) -> tuple[int, int]:
        if (height, width) != (self.image_size, self.image_size):
            raise ValueError(f"TimmViTEncoder takes {self.image_size}x{self.image_size} inputs, got {height}x{width}")
        rows, cols = self.model.patch_embed.grid_size
        return rows, cols

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        features = self.model.forward_features(pixel_values.to(self.model.patch_embed.proj.weight.dtype))
        return features[:, self.model.num_prefix_tokens :]

    @property
    def block_classes(self) -> set[type[nn.Module]]:
        return {type(block) for block in self.model.blocks}

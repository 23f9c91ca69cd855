"""The contract every vision encoder meets: pixels in, one feature row per patch out."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn


class VisionEncoder(nn.Module, ABC):
    """Maps preprocessed images [B, 3, H, W] to patch features [B, N, D].

    Subclasses set `embed_dim`, `image_size` (the square side the processor resizes to), and the
    normalisation `image_mean` / `image_std` their checkpoint was trained with.
    """

    embed_dim: int
    image_size: int
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]

    @abstractmethod
    def grid(self, height: int, width: int) -> tuple[int, int]:
        """Patch grid (rows, cols) the encoder produces for an input of this size."""

    def num_tokens(self, height: int, width: int) -> int:
        rows, cols = self.grid(height, width)
        return rows * cols

    @abstractmethod
    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] -> [B, rows * cols, embed_dim], row-major over the grid."""

    @property
    @abstractmethod
    def block_classes(self) -> set[type[nn.Module]]:
        """Module classes FSDP wraps one by one (the transformer blocks)."""

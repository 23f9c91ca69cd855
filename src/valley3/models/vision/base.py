"""The contract every vision encoder meets: pixels in, one feature row per patch out."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn


# A grid is (rows, cols), or a tuple of such pairs for an encoder whose output is several grids one after
# another along the sequence (Eagle). `grid_parts` reads both.
Grid = tuple


def grid_parts(grid: Grid) -> list[tuple[int, int]]:
    """The (rows, cols) pairs of a grid, in sequence order: one for most encoders, one per tower for Eagle."""
    if len(grid) == 2 and all(isinstance(side, int) for side in grid):
        return [(grid[0], grid[1])]
    return [part for sub in grid for part in grid_parts(sub)]


class VisionEncoder(nn.Module, ABC):
    """Maps preprocessed images [B, 3, H, W] to patch features [B, N, D].

    Subclasses set `embed_dim`, `image_size` (the square side the processor resizes to), and the
    normalisation `image_mean` / `image_std` their checkpoint was trained with. A native-resolution
    encoder overrides `input_size` so an image keeps its aspect ratio.
    """

    embed_dim: int
    image_size: int
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) an image of this size is resized to before encoding; a pure function of the shape.

        Fixed-resolution encoders take the square `image_size`; native-resolution ones round to their grid.
        """
        return self.image_size, self.image_size

    @abstractmethod
    def grid(self, height: int, width: int) -> Grid:
        """Feature grid (rows, cols) the encoder produces for an input of this size (one `input_size` gave)."""

    def num_tokens(self, height: int, width: int) -> int:
        return sum(rows * cols for rows, cols in grid_parts(self.grid(height, width)))

    @abstractmethod
    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] -> [B, rows * cols, embed_dim], row-major over the grid."""

    @property
    @abstractmethod
    def block_classes(self) -> set[type[nn.Module]]:
        """Module classes FSDP wraps one by one (the transformer blocks)."""

"""The connector contract: encoder features laid out on a grid in, decoder-width tokens out, and how many."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

from valley3.models.vision.base import Grid, grid_parts


class Connector(nn.Module, ABC):
    """Maps encoder features [B, N, D_in] to decoder embeddings [B, num_tokens(grid), D_out].

    OmniModel builds a connector with (encoder width, decoder width) and calls it with the grid the encoder
    reported (`vision.grid(h, w)`), so a connector that merges neighbours knows the layout. A grid may hold
    several parts (Eagle's two towers); each part is mapped on its own and the results follow each other.

    Subclasses set `spatial` and implement `_project` (and `part_tokens` when they change the count).
    Token-wise connectors (`spatial = False`) also take a plain length (audio) or no grid at all.
    """

    spatial: bool = True

    def part_tokens(self, rows: int, cols: int) -> int:
        """Tokens out for one grid part of rows x cols features."""
        return rows * cols

    def num_tokens(self, grid: Grid | int) -> int:
        """Tokens out for an encoder output laid out on `grid` (or of this length, for token-wise connectors)."""
        if isinstance(grid, int):
            if self.spatial:
                raise ValueError(f"{type(self).__name__} merges neighbouring features and needs a (rows, cols) grid")
            return grid
        return sum(self.part_tokens(rows, cols) for rows, cols in grid_parts(grid))

    @abstractmethod
    def _project(self, features: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
        """[B, rows * cols, D_in] -> [B, part_tokens(rows, cols), D_out] (token-wise: any [..., D_in])."""

    def forward(self, features: torch.Tensor, grid: Grid | None = None) -> torch.Tensor:
        if not self.spatial:
            return self._project(features, 0, 0)
        if grid is None or isinstance(grid, int):
            raise ValueError(f"{type(self).__name__} merges neighbouring features and needs the encoder's grid")
        parts = grid_parts(grid)
        sizes = [rows * cols for rows, cols in parts]
        if sum(sizes) != features.shape[1]:
            raise ValueError(f"grid {grid} holds {sum(sizes)} features, the encoder gave {features.shape[1]}")
        chunks = features.split(sizes, dim=1)
        return torch.cat([self._project(x, rows, cols) for x, (rows, cols) in zip(chunks, parts)], dim=1)

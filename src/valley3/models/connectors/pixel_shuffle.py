"""PixelShuffle + MLP (InternVL / Valley2's mlp_pixel_shuffle): each 2x2 block of features becomes one token."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from valley3.models.connectors.base import Connector
from valley3.models.connectors.mlp import mlp
from valley3.models.init_args import records_init_args


@records_init_args
class PixelShuffleConnector(Connector):
    """Space-to-depth by `factor`, then an MLP: a rows x cols grid gives ceil(rows/f) x ceil(cols/f) tokens.

    A grid whose sides are not multiples of the factor (27x27 for SigLIP-384) is padded with zero features
    on the bottom and right, so no feature is dropped.

    Args:
        in_dim: encoder feature width (filled in by OmniModel).
        out_dim: decoder hidden width (filled in by OmniModel).
        factor: merge factor per side (2 keeps a quarter of the tokens).
        hidden_dim: inner width of the MLP; defaults to `out_dim`.
        depth: linear layers in the MLP.
    """

    def __init__(self, in_dim: int, out_dim: int, factor: int = 2, hidden_dim: int | None = None, depth: int = 2):
        super().__init__()
        if factor < 1 or depth < 1:
            raise ValueError(f"factor and depth must be >= 1, got factor={factor}, depth={depth}")
        self.factor = factor
        wide = in_dim * factor * factor
        self.net = mlp([wide] + [hidden_dim or out_dim] * (depth - 1) + [out_dim])

    def part_tokens(self, rows: int, cols: int) -> int:
        return math.ceil(rows / self.factor) * math.ceil(cols / self.factor)

    def _project(self, features: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
        b, _, d = features.shape
        f = self.factor
        x = F.pad(features.view(b, rows, cols, d), (0, 0, 0, -cols % f, 0, -rows % f))
        r, c = x.shape[1] // f, x.shape[2] // f
        # [B, r, f, c, f, D] -> [B, r, c, f, f, D]: the f x f block's features side by side, row-major.
        x = x.view(b, r, f, c, f, d).permute(0, 1, 3, 2, 4, 5).reshape(b, r * c, f * f * d)
        return self.net(x)

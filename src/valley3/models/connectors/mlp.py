"""MLP connector (LLaVA's mlp2x_gelu by default): one projected token per encoder feature."""

from __future__ import annotations

import torch
from torch import nn

from valley3.models.connectors.base import Connector
from valley3.models.init_args import records_init_args


def mlp(dims: list[int], final_norm: bool = False) -> nn.Sequential:
    """Linear layers through `dims` with GELU between them, optionally closed by a LayerNorm."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims, dims[1:])):
        if i:
            layers.append(nn.GELU())
        layers.append(nn.Linear(a, b))
    if final_norm:
        layers.append(nn.LayerNorm(dims[-1]))
    return nn.Sequential(*layers)


@records_init_args
class MLPConnector(Connector):
    """Linear layers with GELU between them, optionally closed by a LayerNorm.

    Args:
        in_dim: encoder feature width (filled in by OmniModel).
        out_dim: decoder hidden width (filled in by OmniModel).
        hidden_dim: width of the inner layers; defaults to `out_dim`.
        depth: number of linear layers (2 is LLaVA-1.5's projector).
        final_norm: close with a LayerNorm over `out_dim`.
    """

    spatial = False

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int | None = None, depth: int = 2, final_norm: bool = False):
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        hidden_dim = hidden_dim or out_dim
        self.net = mlp([in_dim] + [hidden_dim] * (depth - 1) + [out_dim], final_norm)

    def _project(self, features: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
        return self.net(features)

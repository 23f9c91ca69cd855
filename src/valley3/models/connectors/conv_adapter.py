"""Valley2's ConvAdapter: an MLP per feature, then a strided 3x3 conv (SigLIP-384's 27x27 -> 14x14 = 196)."""

from __future__ import annotations

import torch
from torch import nn

from valley3.models.connectors.base import Connector
from valley3.models.connectors.mlp import mlp
from valley3.models.init_args import records_init_args


def conv_out(size: int, conv: nn.Conv2d, dim: int) -> int:
    """Output length along `dim` (0 rows, 1 cols) of `conv` for an input of `size` (PyTorch's formula)."""
    k, s, p, d = conv.kernel_size[dim], conv.stride[dim], conv.padding[dim], conv.dilation[dim]
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


@records_init_args
class ConvAdapter(Connector):
    """Linear -> GELU -> Linear to the decoder width, then a kernel-3 conv of stride 2 over the feature grid.

    Args:
        in_dim: encoder feature width (filled in by OmniModel).
        out_dim: decoder hidden width (filled in by OmniModel).
        hidden_dim: inner width of the MLP (Valley2's `mlp_hidden_dim`); defaults to `out_dim`.
        stride: spatial downsampling of the conv (2 keeps about a quarter of the tokens).
        kernel_size: conv kernel side (odd; padded to keep the grid centred).
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int | None = None, stride: int = 2, kernel_size: int = 3):
        super().__init__()
        self.mlp = mlp([in_dim, hidden_dim or out_dim, out_dim])
        self.conv = nn.Conv2d(out_dim, out_dim, kernel_size, stride=stride, padding=kernel_size // 2)

    def part_tokens(self, rows: int, cols: int) -> int:
        return conv_out(rows, self.conv, 0) * conv_out(cols, self.conv, 1)

    def _project(self, features: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
        x = self.mlp(features)
        b, _, d = x.shape
        x = self.conv(x.transpose(1, 2).reshape(b, d, rows, cols))
        return x.flatten(2).transpose(1, 2)

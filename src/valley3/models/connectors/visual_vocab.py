"""Visual vocabulary connector (Ovis; Valley-Eagle's ovis_conv_adapter): softmax over a learned embedding table."""

from __future__ import annotations

import torch
from torch import nn

from valley3.models.connectors.base import Connector
from valley3.models.connectors.conv_adapter import conv_out
from valley3.models.init_args import records_init_args


@records_init_args
class VisualVocabConnector(Connector):
    """Optional strided conv, logits over `vocab_size` visual words, softmax, and the table's weighted mean.

    Each output token is a probability-weighted mix of learned visual embeddings, the structural analogue
    of a text token's embedding lookup. With `stride` 2 (Valley-Eagle's default) a 3x3 conv halves each side
    of the grid first; with stride 1 there is no conv and every feature gives one token (Ovis).

    Args:
        in_dim: encoder feature width (filled in by OmniModel).
        out_dim: decoder hidden width (filled in by OmniModel).
        vocab_size: visual words in the table (Valley-Eagle: 32000).
        stride: conv downsampling before the vocabulary; 1 skips the conv.
    """

    def __init__(self, in_dim: int, out_dim: int, vocab_size: int = 32000, stride: int = 2):
        super().__init__()
        self.conv = nn.Conv2d(in_dim, in_dim, 3, stride=stride, padding=1) if stride > 1 else None
        self.logits = nn.Sequential(nn.Linear(in_dim, vocab_size, bias=False), nn.LayerNorm(vocab_size))
        self.table = nn.Embedding(vocab_size, out_dim)

    def part_tokens(self, rows: int, cols: int) -> int:
        if self.conv is None:
            return rows * cols
        return conv_out(rows, self.conv, 0) * conv_out(cols, self.conv, 1)

    def _project(self, features: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
        if self.conv is not None:
            b, _, d = features.shape
            features = self.conv(features.transpose(1, 2).reshape(b, d, rows, cols)).flatten(2).transpose(1, 2)
        probs = self.logits(features).softmax(dim=-1)
        return probs @ self.table.weight.to(probs.dtype)

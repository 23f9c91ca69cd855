"""Valley3's audio connector: a 3-layer MLP with GELU between layers and a final LayerNorm."""

from __future__ import annotations

from valley3.models.connectors.mlp import MLPConnector
from valley3.models.init_args import records_init_args


@records_init_args
class AudioMLPConnector(MLPConnector):
    """The Valley3 audio connector (for AuT: 2048 -> 8192 -> 8192 -> decoder width, then LayerNorm).

    Args:
        in_dim: audio encoder width (filled in by OmniModel).
        out_dim: decoder hidden width (filled in by OmniModel).
        hidden_dim: inner width; defaults to 4 x `in_dim` as in the release (2048 -> 8192).
        depth: number of linear layers.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int | None = None, depth: int = 3):
        super().__init__(in_dim, out_dim, hidden_dim=hidden_dim or 4 * in_dim, depth=depth, final_norm=True)

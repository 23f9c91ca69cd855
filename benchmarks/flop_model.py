"""A FLOP model of packed vs padded decoder steps: linear layers per token plus attention's quadratic term."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from valley3.models.presets import DECODERS


@dataclass(frozen=True)
class Shape:
    """A decoder's dimensions, as its preset gives them (a VL preset's text tower)."""

    name: str
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int

    @classmethod
    def of(cls, preset: str) -> Shape:
        config = DECODERS[preset]
        text = config.get("text_config", config)
        hidden, heads = text["hidden_size"], text["num_attention_heads"]
        return cls(preset, hidden, text["intermediate_size"], text["num_hidden_layers"], heads,
                   text["num_key_value_heads"], text.get("head_dim", hidden // heads), text["vocab_size"])

    def linear(self) -> float:
        """Forward FLOPs per token of the matrix multiplies: q, k, v, o, the gated MLP and the LM head."""
        attention = self.hidden * self.head_dim * (2 * self.heads + 2 * self.kv_heads)
        mlp = 3 * self.hidden * self.intermediate
        return 2.0 * (self.layers * (attention + mlp) + self.hidden * self.vocab)

    def attention(self, n: int) -> float:
        """Forward FLOPs of causal attention over one sequence of `n` tokens (QK^T and AV, half the square)."""
        return 2.0 * self.layers * self.heads * self.head_dim * n * n


def row_flops(shape: Shape, lengths: list[int], width: int, packed: bool) -> float:
    """One row `width` tokens wide. Packed: samples attend within themselves and the padding joins the last one
    (as PackingCollator's cu_seqlens). Padded: one sample per row, attention over the whole padded row."""
    if packed:
        spans = list(lengths[:-1]) + [lengths[-1] + width - sum(lengths)]
        return shape.linear() * width + sum(shape.attention(n) for n in spans)
    return shape.linear() * width + shape.attention(width)


def layout_flops(shape: Shape, steps: list[list[int]], packed: bool, pack_width: int) -> float:
    """FLOPs of every step of a layout: packs padded to `pack_width`, padded batches to their longest sample."""
    total = 0.0
    for lengths in steps:
        if packed:
            total += row_flops(shape, lengths, pack_width, True)
        else:
            total += sum(row_flops(shape, [n], max(lengths), False) for n in lengths)
    return total


def speedups(shape: Shape, layouts: dict[str, list[list[int]]], pack_width: int) -> dict[str, float]:
    """Each layout's predicted speed (real tokens per FLOP) relative to "padded"."""
    tokens = {k: sum(map(sum, v)) for k, v in layouts.items()}
    rate = {k: tokens[k] / layout_flops(shape, v, k == "packed", pack_width) for k, v in layouts.items()}
    return {k: r / rate["padded"] for k, r in rate.items()}


def long_tailed(n: int, rng: np.random.Generator, median: float = 570, p99: float = 4462, cap: int = 8192) -> list[int]:
    """Lognormal lengths with the given median and 99th percentile (z = 2.326), capped at one pack."""
    sigma = np.log(p99 / median) / 2.326
    return np.clip(rng.lognormal(np.log(median), sigma, n), 16, cap).astype(int).tolist()

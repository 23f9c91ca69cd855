"""Named model shapes: tiny ones for CPU tests and the demo, real ones for cluster runs.

Each preset is the keyword set of a transformers config; components take `preset=` and merge
`config=` overrides on top, so a YAML names a shape in one line and changes one field in another.
"""

from __future__ import annotations

import copy
from typing import Any

_TINY_DECODER = dict(
    vocab_size=1024,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=4096,
    tie_word_embeddings=True,
)

DECODERS: dict[str, dict[str, Any]] = {
    "tiny-qwen3": dict(model_type="qwen3", head_dim=16, **_TINY_DECODER),
    "tiny-qwen2": dict(model_type="qwen2", **_TINY_DECODER),
    "tiny-llama": dict(model_type="llama", **_TINY_DECODER),
}

VISION: dict[str, dict[str, Any]] = {
    # 32x32 input, 8x8 patches -> 16 tokens per image.
    "tiny-siglip": dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8
    ),
    # google/siglip-so400m-patch14-384: 27x27 = 729 patches per image.
    "siglip-so400m-384": dict(
        hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16, image_size=384,
        patch_size=14,
    ),
}

AUDIO: dict[str, dict[str, Any]] = {
    # A 2 s window (200 mel frames) -> 100 encoder frames -> 50 tokens after pooling: 25 tokens/s.
    "tiny-whisper": dict(
        num_mel_bins=80, d_model=32, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64,
        max_source_positions=100,
    ),
    # openai/whisper-large-v3 encoder: 30 s windows, 128 mel bins.
    "whisper-large-v3": dict(
        num_mel_bins=128, d_model=1280, encoder_layers=32, encoder_attention_heads=20, encoder_ffn_dim=5120,
        max_source_positions=1500, decoder_layers=32, decoder_attention_heads=20, decoder_ffn_dim=5120,
        vocab_size=51866,
    ),
}


def resolve(table: dict[str, dict[str, Any]], preset: str | None, overrides: dict[str, Any] | None) -> dict[str, Any]:
    """The preset's keywords with `overrides` on top; a clear error for an unknown name."""
    if preset is not None and preset not in table:
        raise KeyError(f"unknown preset {preset!r}; known: {sorted(table)}")
    merged = copy.deepcopy(table[preset]) if preset else {}
    merged.update(overrides or {})
    return merged

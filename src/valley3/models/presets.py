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
    # Gemma3's text tower: sliding-window and global layers (one of each here); head_dim is set, not derived.
    "tiny-gemma3": dict(
        model_type="gemma3_text", head_dim=16, query_pre_attn_scalar=16, sliding_window=16,
        layer_types=["sliding_attention", "full_attention"], **_TINY_DECODER,
    ),
    # Qwen3-VL (Qwen3VLConfig: text + vision sub-configs): the Valley3 backbone, 2 text layers, a 2-block ViT with
    # 16 px patches merged 2x2 and DeepStack from block 0; vocab covers the tiny tokenizer (grown on bind).
    "tiny-qwen3-vl": dict(
        model_type="qwen3_vl",
        text_config=dict(
            vocab_size=1024, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=16, max_position_embeddings=4096,
            rope_parameters=dict(rope_type="default", rope_theta=5e6, mrope_section=[4, 2, 2], mrope_interleaved=True),
        ),
        vision_config=dict(
            depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64, patch_size=16,
            spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=64, deepstack_visual_indexes=[0],
        ),
        tie_word_embeddings=True,
    ),
    # Qwen/Qwen2.5-7B(-Instruct).
    "qwen2.5-7b": dict(
        model_type="qwen2", vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
        num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=32768, rope_theta=1e6,
        rms_norm_eps=1e-6, tie_word_embeddings=False,
    ),
    # Qwen/Qwen3-8B.
    "qwen3-8b": dict(
        model_type="qwen3", vocab_size=151936, hidden_size=4096, intermediate_size=12288, num_hidden_layers=36,
        num_attention_heads=32, num_key_value_heads=8, head_dim=128, max_position_embeddings=40960, rope_theta=1e6,
        rms_norm_eps=1e-6, tie_word_embeddings=False,
    ),
    # meta-llama/Llama-3.1-8B(-Instruct), with its llama3 RoPE scaling to 128k.
    "llama-3.1-8b": dict(
        model_type="llama", vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=131072, rms_norm_eps=1e-5,
        rope_theta=500000.0, tie_word_embeddings=False,
        rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                          original_max_position_embeddings=8192),
    ),
    # google/gemma-3-4b-it text tower (sliding window 1024, global layers use linear RoPE scaling x8).
    "gemma-3-4b": dict(
        model_type="gemma3_text", vocab_size=262208, hidden_size=2560, intermediate_size=10240, num_hidden_layers=34,
        num_attention_heads=8, num_key_value_heads=4, head_dim=256, query_pre_attn_scalar=256, sliding_window=1024,
        max_position_embeddings=131072, rms_norm_eps=1e-6, tie_word_embeddings=True,
        rope_parameters={
            "full_attention": dict(rope_type="linear", factor=8.0, rope_theta=1e6),
            "sliding_attention": dict(rope_type="default", rope_theta=10000.0),
        },
    ),
    # Qwen/Qwen3-VL-8B-Instruct (Qwen3VLConfig, the Valley3 backbone): a Qwen3-8B-shaped text tower with interleaved
    # mRoPE, and a SigLIP2-so400m-shaped ViT (16 px patches, 2x2 merge, DeepStack taps at blocks 8/16/24).
    "qwen3-vl-8b": dict(
        model_type="qwen3_vl", image_token_id=151655, video_token_id=151656, vision_start_token_id=151652,
        vision_end_token_id=151653, tie_word_embeddings=False,
        text_config=dict(
            vocab_size=151936, hidden_size=4096, intermediate_size=12288, num_hidden_layers=36,
            num_attention_heads=32, num_key_value_heads=8, head_dim=128, max_position_embeddings=262144,
            rms_norm_eps=1e-6, tie_word_embeddings=False,
            rope_parameters=dict(rope_type="default", rope_theta=5e6, mrope_section=[24, 20, 20], mrope_interleaved=True),
        ),
        vision_config=dict(
            depth=27, hidden_size=1152, intermediate_size=4304, num_heads=16, out_hidden_size=4096, patch_size=16,
            spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=2304,
            deepstack_visual_indexes=[8, 16, 24], hidden_act="gelu_pytorch_tanh",
        ),
    ),
}

_SO400M = dict(
    hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16, image_size=384,
    patch_size=14,
)

VISION: dict[str, dict[str, Any]] = {
    # 32x32 input, 8x8 patches -> 16 tokens per image.
    "tiny-siglip": dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8
    ),
    # google/siglip-so400m-patch14-384: 27x27 = 729 patches per image.
    "siglip-so400m-384": _SO400M,
    # google/siglip-base-patch16-384: 24x24 = 576 patches per image.
    "siglip-384": dict(
        hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, image_size=384,
        patch_size=16,
    ),
    # google/siglip2-so400m-patch14-384: SigLIP2's fixed-resolution checkpoints keep SigLIP's architecture
    # (model_type "siglip"), so SigLIPEncoder loads them; only the weights differ.
    "siglip2-so400m-384": _SO400M,
    # SigLIP2 NaFlex tower (Siglip2VisionModel): a 4x4 position table resized to the patch grid.
    "tiny-siglip2": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, patch_size=8,
                         num_patches=16),
    # google/siglip2-so400m-patch16-naflex: a 16x16 position table; 384x384 input -> 24x24 = 576 patches.
    "siglip2-so400m-naflex": dict(
        hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16, patch_size=16,
        num_patches=256,
    ),
    # Qwen2.5-VL's ViT (Qwen2_5_VLVisionConfig): 4x4-pixel patches, 2x2 merge, windows of 2x2 merged tokens.
    "tiny-qwen2.5-vit": dict(
        depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32, patch_size=4,
        spatial_merge_size=2, temporal_patch_size=2, window_size=16, fullatt_block_indexes=[1],
    ),
    # Qwen/Qwen2.5-VL-7B-Instruct vision tower: 14 px patches merged 2x2 (28 px per token) into 3584 wide.
    "qwen2.5-vit": dict(
        depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584, patch_size=14,
        spatial_merge_size=2, temporal_patch_size=2, window_size=112, fullatt_block_indexes=[7, 15, 23, 31],
        hidden_act="silu", tokens_per_second=2,
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
    # Qwen3-Omni AuT (Qwen3OmniMoeAudioEncoderConfig): 1 s chunks (n_window=50 -> 100 mel frames) through three
    # stride-2 convs; n_window must stay 50, which transformers' own length formula assumes.
    "tiny-aut": dict(
        num_mel_bins=80, d_model=32, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64, output_dim=32,
        downsample_hidden_size=8, n_window=50, n_window_infer=200, max_source_positions=100,
    ),
    # Qwen/Qwen3-Omni-30B-A3B audio encoder (the one Valley3 uses): 128 mel bins, output 2048 wide.
    "aut": dict(
        num_mel_bins=128, d_model=1280, encoder_layers=32, encoder_attention_heads=20, encoder_ffn_dim=5120,
        output_dim=2048, downsample_hidden_size=480, n_window=50, n_window_infer=800, conv_chunksize=500,
        max_source_positions=1500,
    ),
}


def resolve(table: dict[str, dict[str, Any]], preset: str | None, overrides: dict[str, Any] | None) -> dict[str, Any]:
    """The preset's keywords with `overrides` on top; a clear error for an unknown name."""
    if preset is not None and preset not in table:
        raise KeyError(f"unknown preset {preset!r}; known: {sorted(table)}")
    merged = copy.deepcopy(table[preset]) if preset else {}
    merged.update(overrides or {})
    return merged

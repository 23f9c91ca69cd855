"""The Valley3 release's `valley_omni` layout: tensor names, config.json and preprocessor config of a Qwen3-VL + AuT model.

The release (`ValleyOmniForConditionalGeneration`) keeps Qwen3-VL's names (`model.visual`, `model.language_model`,
`lm_head`) and adds `model.audio_encoder.encoder` (Qwen3-Omni's audio encoder) and `model.audio_connector`
(`proj_in`, `proj_mid`, `proj_out`, `ln`). The Qwen3-VL part of an export therefore loads into transformers'
`Qwen3VLForConditionalGeneration` as is.
"""

from __future__ import annotations

import json
from typing import Any

from torch import nn

QWEN_BRACKETS = {  # the Qwen tokens around a media run; their ids go into config.json
    "vision_start": "<|vision_start|>",
    "vision_end": "<|vision_end|>",
    "audio_start": "<|audio_start|>",
    "audio_end": "<|audio_end|>",
}
# The release's processor reads these tokenizer attributes (ValleyOmniProcessor.__init__): name -> our kind.
TOKEN_ATTRIBUTES = {
    "image_token": "image", "video_token": "video", "audio_token": "audio", "vision_bos_token": "vision_start",
    "vision_eos_token": "vision_end", "audio_bos_token": "audio_start", "audio_eos_token": "audio_end",
}
# The release's ids (ValleyOmniConfig defaults, "A3B" = Qwen3-Omni-30B-A3B's tokenizer): Qwen3-VL's vision tokens,
# then Qwen3-Omni's audio tokens after Qwen3-VL's 151669 (four TTS tokens sit between audio_end and audio).
RELEASE_IDS = {"vision_start": 151652, "vision_end": 151653, "image": 151655, "video": 151656,
               "audio_start": 151669, "audio_end": 151670, "audio": 151675}
# valley3 prefix -> release prefix; the audio connector's Sequential slots are the release's named layers.
_PREFIXES = (
    ("decoder.model.", ""),
    ("audio.model.", "model.audio_encoder.encoder."),
    ("audio_connector.net.0.", "model.audio_connector.proj_in."),
    ("audio_connector.net.2.", "model.audio_connector.proj_mid."),
    ("audio_connector.net.4.", "model.audio_connector.proj_out."),
    ("audio_connector.net.5.", "model.audio_connector.ln."),
)
# Qwen3-VL's own image processor bounds (pixels per image).
_IMAGE_SIZE = {"shortest_edge": 65536, "longest_edge": 16777216}


def applies(model: nn.Module) -> bool:
    """True for a Qwen3-VL decoder (vision inside it) + AuT + Valley3's 3-layer audio connector."""
    from transformers import Qwen3VLForConditionalGeneration

    from valley3.models.audio.aut import AuTEncoder
    from valley3.models.connectors.audio_mlp import AudioMLPConnector

    return (
        isinstance(getattr(model.decoder, "model", None), Qwen3VLForConditionalGeneration)
        and getattr(model, "vision", None) is None
        and isinstance(getattr(model, "audio", None), AuTEncoder)
        and isinstance(getattr(model, "audio_connector", None), AudioMLPConnector)
    )


def to_release(name: str) -> str:
    """The release's name for a valley3 state-dict key."""
    for ours, theirs in _PREFIXES:
        if name.startswith(ours):
            return theirs + name[len(ours) :]
    raise KeyError(f"{name}: no place for this tensor in the valley_omni layout")


def from_release(name: str) -> str:
    """The valley3 state-dict key for a release name (the inverse of `to_release`)."""
    for ours, theirs in sorted(_PREFIXES, key=lambda p: -len(p[1])):  # the empty prefix last
        if name.startswith(theirs):
            return ours + name[len(theirs) :]
    raise KeyError(name)


def config(model: nn.Module, token_ids: dict[str, int]) -> dict[str, Any]:
    """config.json of the release's `ValleyOmniConfig`: Qwen3-VL's sub-configs, the audio fields, our token ids."""
    hf = model.decoder.model
    layers = [m for m in model.audio_connector.net if isinstance(m, nn.Linear)]
    if len(layers) != 3:
        raise ValueError(f"the valley_omni layout has a 3-layer audio connector; this one has {len(layers)}")
    text = hf.config.text_config.to_dict()
    text["vocab_size"] = hf.get_input_embeddings().num_embeddings  # grown by the tokenizer's added tokens
    # Written untied, every weight under its own name: the release declares `_tied_weights_keys` as a list, which
    # transformers 5 cannot tie (post_init fails on `.keys()`), so a tied export would not load.
    text["tie_word_embeddings"] = False
    rope = dict(text.get("rope_parameters") or {})
    audio = model.audio.model.config.to_dict()
    for key in ("transformers_version", "architectures", "dtype", "_name_or_path"):
        audio.pop(key, None)
    dtype = next(model.parameters()).dtype
    return {
        "architectures": ["ValleyOmniForConditionalGeneration"],
        "model_type": "valley_omni",
        "text_config": text,
        "vision_config": hf.config.vision_config.to_dict(),
        "audio_encoder_type": "qwen3_omni_moe",
        "audio_config": audio,
        "sample_rate": model.audio.sampling_rate,
        "feature_dim": model.audio.n_mels,
        "connector_hidden_size": layers[0].out_features,
        "apply_audio_downsample": False,
        "tm_rope_sections": list(rope.get("mrope_section") or [24, 20, 20]),
        "position_id_per_seconds": ids_per_second(model),
        "rope_parameters": rope,
        "audio_token_id": token_ids["audio"],
        "audio_start_token_id": token_ids["audio_start"],
        "audio_end_token_id": token_ids["audio_end"],
        "image_token_id": token_ids["image"],
        "video_token_id": token_ids["video"],
        "vision_start_token_id": token_ids["vision_start"],
        "vision_end_token_id": token_ids["vision_end"],
        "tie_word_embeddings": False,
        "dtype": str(dtype).removeprefix("torch."),
    }


def ids_per_second(model: nn.Module) -> int:
    """TM-RoPE's `position_id_per_seconds` as the release types it (int)."""
    value = getattr(model.decoder, "position_id_per_seconds", 25)
    if float(value) != int(value):
        raise ValueError(f"position_id_per_seconds={value}: the release's config takes an int")
    return int(value)


def check_release_ids(ids: dict[str, int]) -> None:
    """A tokenizer built from Qwen3-VL's (its vision ids in place) must put the audio tokens where the release does,
    or a valley3 export and a release checkpoint or tokenizer would silently disagree on what an id means."""
    vision = ("vision_start", "vision_end", "image", "video")
    if any(ids[k] != RELEASE_IDS[k] for k in vision):
        return  # another vocabulary (e.g. the tiny test tokenizer): config.json names its ids
    wrong = {k: ids[k] for k in ("audio_start", "audio_end", "audio") if ids[k] != RELEASE_IDS[k]}
    if wrong:
        want = {k: RELEASE_IDS[k] for k in wrong}
        raise ValueError(
            f"this tokenizer is Qwen3-VL's but puts {wrong}; the Valley3 release uses {want} (Qwen3-Omni's layout, "
            "with <tts_pad>, <tts_text_bos>, <tts_text_eod>, <tts_text_bos_single> between <|audio_end|> and "
            "<|audio_pad|>). Build the tokenizer with valley3's processor from Qwen3-VL's own files, which adds the "
            "audio tokens in that layout, and train on it")


def tokenizer_kwargs(model: nn.Module, fps: float | None, audio_in_video: bool) -> dict[str, Any]:
    """What the exported tokenizer_config.json carries for the release's processor: named tokens and call defaults."""
    return {**token_attributes(model), **processor_defaults(model, fps, audio_in_video)}


def token_attributes(model: nn.Module) -> dict[str, str]:
    """The named special tokens the release's processor reads from the tokenizer."""
    tokens = {**model.media_tokens, **QWEN_BRACKETS}
    return {name: tokens[kind] for name, kind in TOKEN_ATTRIBUTES.items()}


def processor_defaults(model: nn.Module, fps: float | None, audio_in_video: bool) -> dict[str, Any]:
    """The release processor's call defaults, kept in tokenizer_config.json (where its `_merge_kwargs` reads them).

    Without them the release interleaves audio in video at Qwen3-Omni's 13 ids/s (its model places them at 25),
    assumes 1 frame per second, and resizes videos to Qwen3-Omni's bounds instead of the model's.
    """
    decoder = model.decoder
    defaults = {"position_id_per_seconds": ids_per_second(model), "use_audio_in_video": audio_in_video,
                "size": {"shortest_edge": decoder.min_pixels, "longest_edge": decoder.max_pixels}}
    return defaults if fps is None else {**defaults, "fps": fps}


def video_preprocessor_config(model: nn.Module) -> dict[str, Any]:
    """Qwen3-VL's video processor with the model's patching; frames come already sampled (as valley3 samples them)."""
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    vision, decoder = model.decoder.model.config.vision_config, model.decoder
    video = Qwen3VLVideoProcessor(
        patch_size=vision.patch_size, merge_size=vision.spatial_merge_size,
        temporal_patch_size=vision.temporal_patch_size, image_mean=[0.5] * 3, image_std=[0.5] * 3, do_sample_frames=False,
        size={"shortest_edge": decoder.min_pixels, "longest_edge": decoder.max_pixels},
    )
    return {**video.to_dict(), "processor_class": "ValleyOmniProcessor"}


def preprocessor_config(model: nn.Module) -> dict[str, Any]:
    """What the release's processor reads: Qwen3-VL's image processor and a Whisper log-mel feature extractor,
    in one file as Qwen's omni processors keep them."""
    from transformers import WhisperFeatureExtractor
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor

    vision = model.decoder.model.config.vision_config
    image = Qwen2VLImageProcessor(
        patch_size=vision.patch_size, merge_size=vision.spatial_merge_size,
        temporal_patch_size=vision.temporal_patch_size, image_mean=[0.5] * 3, image_std=[0.5] * 3,
        size={"shortest_edge": getattr(model.decoder, "min_pixels", _IMAGE_SIZE["shortest_edge"]),
              "longest_edge": getattr(model.decoder, "max_pixels", _IMAGE_SIZE["longest_edge"])},
    )
    audio = model.audio
    mel = WhisperFeatureExtractor(
        feature_size=audio.n_mels, sampling_rate=audio.sampling_rate, hop_length=audio.hop_length, n_fft=audio.n_fft
    )
    merged = {**json.loads(image.to_json_string()), **mel.to_dict()}
    merged.pop("processor_class", None)
    return {**merged, "processor_class": "ValleyOmniProcessor"}

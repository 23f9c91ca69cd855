"""The typed batch the collators build: tokens, the media their placeholders stand for, and what is not a model input.

Lightning moves it to the device as it is (`move_data_to_device` walks dataclasses, lists and tensors and leaves
strings alone), so a stage reads `batch.input_ids` and `batch.media` on the device with no key lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

Pictures = torch.Tensor | list[torch.Tensor]  # [N, 3, H, W], or N pictures [3, H, W] of different sizes


@dataclass
class Media:
    """A batch's media grouped by modality, in sample order; each `*_owner` holds the index of each item's sample
    (a row of a padded batch, a sample of `sample_ids` in a packed one).

    Images: `pixel_values` (a tiled image gives one item per tile). Videos: every video's frames one after another
    in `video_pixels`, `video_frames` [V] frames per video, `video_timestamps` (sum frames) seconds. Audio:
    `audio_features` [A, mels, longest] zero-padded, `audio_lengths` [A] frames.

    The frame times are Python floats, not a tensor: a precision plugin (`bf16-true`) or FSDP's input casting
    turns every floating-point tensor of a batch into bf16, whose 8-bit mantissa moves a frame at 10.04 s to 10.0 s
    and shifts its TM-RoPE time id.
    """

    pixel_values: Pictures | None = None
    image_owner: torch.Tensor | None = None
    video_pixels: Pictures | None = None
    video_frames: torch.Tensor | None = None
    video_timestamps: tuple[float, ...] | None = None
    video_owner: torch.Tensor | None = None
    audio_features: torch.Tensor | None = None
    audio_lengths: torch.Tensor | None = None
    audio_owner: torch.Tensor | None = None

    @property
    def has_images(self) -> bool:
        return self.pixel_values is not None and len(self.pixel_values) > 0

    @property
    def has_videos(self) -> bool:
        return self.video_pixels is not None and len(self.video_pixels) > 0

    @property
    def has_audio(self) -> bool:
        return self.audio_features is not None and len(self.audio_features) > 0


@dataclass
class Batch:
    """Padded or packed samples. `input_ids` is None when every sample was skipped (`skipped` counts them).

    Model inputs: `input_ids`, `attention_mask`, `position_ids` [B, L] (or [C, B, L] for multi-axis RoPE),
    `cu_seqlens` (packed batches: sample boundaries over the flattened rows), `media`, and `sample_ids`, which
    error messages name. `labels` are the training targets. `references` (held-out answers) and `prompts` (the last
    user turn) come with generation batches; the model never sees them.
    """

    skipped: torch.Tensor
    input_ids: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    attention_mask: torch.Tensor | None = None
    position_ids: torch.Tensor | None = None
    cu_seqlens: torch.Tensor | None = None
    sample_ids: list[str] = field(default_factory=list)
    media: Media = field(default_factory=Media)
    references: list[str | None] | None = None
    prompts: list[str | None] | None = None

    @property
    def empty(self) -> bool:
        """Every sample was skipped: nothing to run."""
        return self.input_ids is None

    def model_inputs(self) -> dict[str, Any]:
        """The model inputs as `OmniModel.forward`'s keywords: `model(**batch.model_inputs())`."""
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask, "position_ids": self.position_ids,
                "cu_seqlens": self.cu_seqlens, "media": self.media, "sample_ids": self.sample_ids}


@dataclass
class EvalBatch(Batch):
    """A benchmark's generation batch: `Batch` plus its tags. `eval_index`: the item of each row; `eval_real`: False
    for the padding copies that even out the ranks' shards; `eval_skipped`: (item, reason) of unusable items."""

    benchmark: str = ""
    eval_index: list[int] = field(default_factory=list)
    eval_real: list[bool] = field(default_factory=list)
    eval_skipped: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class PromptBatch:
    """Prompt records for RL (the policy processes them when it generates) and how many were skipped."""

    prompts: list[Any]
    skipped: torch.Tensor

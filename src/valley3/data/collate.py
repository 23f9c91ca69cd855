"""PadCollator: examples -> one padded batch; media grouped by modality in sample order."""

from __future__ import annotations

from typing import Any

import torch

from valley3.data.processor import IGNORE_INDEX, Example


def stack_or_list(pictures: list[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
    """[N, 3, H, W] when every picture has one size (fixed-resolution encoders), else the list of [3, H, W]
    (native resolution), which OmniModel encodes in groups of equal size."""
    if len({tuple(p.shape) for p in pictures}) == 1:
        return torch.stack(pictures)
    return pictures


def group_media(examples: list[Example]) -> dict[str, Any]:
    """Every example's media by modality, in sample order; `*_owner` is the index in `examples` of each item's owner.

    Images: `pixel_values` (see `stack_or_list`; each tile is one item) and `image_owner` [I]. Videos: their
    frames one after another in `video_pixels` (as `pixel_values`), `video_frames` [V] frames per video,
    `video_owner` [V] and `video_timestamps` [sum frames] seconds. Audio: `audio_features` [A, mels, longest]
    zero-padded, `audio_lengths` [A] and `audio_owner` [A].
    """
    batch: dict[str, Any] = {}
    images = [(row, px) for row, ex in enumerate(examples) for px in ex.pixel_values]
    if images:
        batch["pixel_values"] = stack_or_list([px for _, px in images])
        batch["image_owner"] = torch.tensor([row for row, _ in images], dtype=torch.long)
    videos = [(row, v, t) for row, ex in enumerate(examples) for v, t in zip(ex.video_pixels, ex.video_timestamps)]
    if videos:
        batch["video_pixels"] = stack_or_list([frame for _, v, _ in videos for frame in v])
        batch["video_frames"] = torch.tensor([v.shape[0] for _, v, _ in videos], dtype=torch.long)
        batch["video_owner"] = torch.tensor([row for row, _, _ in videos], dtype=torch.long)
        batch["video_timestamps"] = torch.cat([t for _, _, t in videos])
    audios = [(row, mel) for row, ex in enumerate(examples) for mel in ex.audio_features]
    if audios:
        lengths = [mel.shape[-1] for _, mel in audios]
        features = torch.zeros(len(audios), audios[0][1].shape[0], max(lengths))
        for i, (_, mel) in enumerate(audios):
            features[i, :, : mel.shape[-1]] = mel
        batch["audio_features"] = features
        batch["audio_lengths"] = torch.tensor(lengths, dtype=torch.long)
        batch["audio_owner"] = torch.tensor([row for row, _ in audios], dtype=torch.long)
    return batch


class PadCollator:
    """Pads a list of examples to the longest; `None` entries (skipped samples) are dropped and counted.

    Args:
        pad_id: the tokenizer's pad token id.
        padding_side: "right" for training, "left" for batched generation.
    """

    def __init__(self, pad_id: int, padding_side: str = "right"):
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        self.pad_id = pad_id
        self.padding_side = padding_side

    def __call__(self, items: list[Example | None]) -> dict[str, Any]:
        examples = [ex for ex in items if ex is not None]
        batch: dict[str, Any] = {"skipped": torch.tensor(len(items) - len(examples))}
        if not examples:
            return batch
        width = max(len(ex) for ex in examples)
        shape = (len(examples), width)
        input_ids = torch.full(shape, self.pad_id, dtype=torch.long)
        labels = torch.full(shape, IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros(shape, dtype=torch.long)
        position_ids = torch.zeros(shape, dtype=torch.long)
        for row, ex in enumerate(examples):
            n = len(ex)
            span = slice(0, n) if self.padding_side == "right" else slice(width - n, width)
            input_ids[row, span] = ex.input_ids
            labels[row, span] = ex.labels
            attention_mask[row, span] = 1
            position_ids[row, span] = torch.arange(n)
        batch.update(
            input_ids=input_ids,
            labels=labels,
            attention_mask=attention_mask,
            position_ids=position_ids,
            sample_ids=[ex.sample_id for ex in examples],
            **group_media(examples),
        )
        if any(ex.reference is not None for ex in examples):
            batch["references"] = [ex.reference for ex in examples]
        if any(ex.prompt is not None for ex in examples):
            batch["prompts"] = [ex.prompt for ex in examples]
        return batch

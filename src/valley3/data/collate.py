"""PadCollator: examples -> one padded `Batch`; media grouped by modality in sample order."""

from __future__ import annotations

import torch

from valley3.data.batch import Batch, Media
from valley3.data.processor import IGNORE_INDEX, Example


def stack_or_list(pictures: list[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
    """[N, 3, H, W] when every picture has one size (fixed-resolution encoders), else the list of [3, H, W]
    (native resolution), which OmniModel encodes in groups of equal size."""
    if len({tuple(p.shape) for p in pictures}) == 1:
        return torch.stack(pictures)
    return pictures


def group_media(examples: list[Example]) -> Media:
    """Every example's media by modality, in sample order; each `*_owner` is the index in `examples` of each item's
    owner. Pictures are stacked when they share a size (see `stack_or_list`)."""
    media = Media()
    images = [(row, px) for row, ex in enumerate(examples) for px in ex.pixel_values]
    if images:
        media.pixel_values = stack_or_list([px for _, px in images])
        media.image_owner = torch.tensor([row for row, _ in images], dtype=torch.long)
    videos = [(row, v, t) for row, ex in enumerate(examples) for v, t in zip(ex.video_pixels, ex.video_timestamps)]
    if videos:
        media.video_pixels = stack_or_list([frame for _, v, _ in videos for frame in v])
        media.video_frames = torch.tensor([v.shape[0] for _, v, _ in videos], dtype=torch.long)
        media.video_owner = torch.tensor([row for row, _, _ in videos], dtype=torch.long)
        media.video_timestamps = tuple(float(x) for _, _, t in videos for x in t)  # floats: see Media
    audios = [(row, mel) for row, ex in enumerate(examples) for mel in ex.audio_features]
    if audios:
        lengths = [mel.shape[-1] for _, mel in audios]
        features = torch.zeros(len(audios), audios[0][1].shape[0], max(lengths))
        for i, (_, mel) in enumerate(audios):
            features[i, :, : mel.shape[-1]] = mel
        media.audio_features = features
        media.audio_lengths = torch.tensor(lengths, dtype=torch.long)
        media.audio_owner = torch.tensor([row for row, _ in audios], dtype=torch.long)
    return media


def generation_fields(examples: list[Example]) -> dict[str, list[str | None] | None]:
    """The held-out `references` and the `prompts` of generation examples; None where no example has one."""
    references, prompts = [ex.reference for ex in examples], [ex.prompt for ex in examples]
    return {"references": references if any(r is not None for r in references) else None,
            "prompts": prompts if any(p is not None for p in prompts) else None}


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

    def __call__(self, items: list[Example | None]) -> Batch:
        examples = [ex for ex in items if ex is not None]
        skipped = torch.tensor(len(items) - len(examples))
        if not examples:
            return Batch(skipped)
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
        return Batch(
            skipped,
            input_ids=input_ids,
            labels=labels,
            attention_mask=attention_mask,
            position_ids=position_ids,
            sample_ids=[ex.sample_id for ex in examples],
            media=group_media(examples),
            **generation_fields(examples),
        )

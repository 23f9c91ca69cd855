"""OmniProcessor: a Sample -> token ids, labels and media tensors, with one placeholder per feature."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from valley3.data.media import MediaError
from valley3.data.media.audio import load_audio, log_mel
from valley3.data.media.image import load_image, to_pixels
from valley3.data.schema import MEDIA_KINDS, Sample
from valley3.data.templates import ChatTemplate, SpecialTokens

IGNORE_INDEX = -100
_TAG = re.compile("|".join(f"(<{kind}>)" for kind in MEDIA_KINDS))


class SampleError(ValueError):
    """A sample that cannot become an example (too long, reserved tokens, a modality the model lacks)."""


@dataclass(frozen=True)
class ImageSpec:
    """How the model wants images: the processor resizes to `size` and asks `num_tokens(h, w)`."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    num_tokens: Callable[[int, int], int]


@dataclass(frozen=True)
class AudioSpec:
    """How the model wants audio: log-mel settings and `num_tokens(frames)`."""

    sampling_rate: int
    n_mels: int
    n_fft: int
    hop_length: int
    num_tokens: Callable[[int], int]


@dataclass
class Example:
    input_ids: torch.Tensor  # [L] long
    labels: torch.Tensor  # [L] long, IGNORE_INDEX where not trained
    sample_id: str
    source: str
    pixel_values: list[torch.Tensor] = field(default_factory=list)  # each [3, H, W]
    audio_features: list[torch.Tensor] = field(default_factory=list)  # each [n_mels, frames]
    reference: str | None = None  # the held-out answer when built for generation

    def __len__(self) -> int:
        return self.input_ids.numel()


def ensure_special_tokens(tokenizer, tokens: SpecialTokens) -> None:
    """Add the template's special tokens a (real) tokenizer lacks; each must encode to one id."""
    missing = [t for t in tokens.all() if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_special_tokens({"extra_special_tokens": missing}, replace_extra_special_tokens=False)


class OmniProcessor:
    """Renders a Sample with the chat template and expands each media tag to its placeholder run.

    Args:
        tokenizer: a transformers tokenizer; missing template tokens are added to it.
        template: the chat template (ChatML by default).
        image: image settings of the model, or None if it has no vision.
        audio: audio settings of the model, or None if it has no audio.
        max_len: examples longer than this are truncated (when no media is cut) or rejected.
    """

    def __init__(
        self,
        tokenizer,
        template: ChatTemplate | None = None,
        image: ImageSpec | None = None,
        audio: AudioSpec | None = None,
        max_len: int | None = None,
    ):
        self.tokenizer = tokenizer
        self.template = template or ChatTemplate()
        self.image = image
        self.audio = audio
        self.max_len = max_len
        tokens = self.template.tokens
        ensure_special_tokens(tokenizer, tokens)
        self.token_ids = {kind: tokenizer.convert_tokens_to_ids(tokens.placeholder(kind)) for kind in MEDIA_KINDS}
        self.pad_id = tokenizer.convert_tokens_to_ids(tokens.pad)
        self.eos_id = tokenizer.convert_tokens_to_ids(tokens.im_end)
        self._reserved = [tokens.placeholder(k) for k in MEDIA_KINDS]

    def __call__(self, sample: Sample, generation: bool = False) -> Example:
        turns, reference = sample.turns, None
        if generation and turns[-1].role == "assistant":
            turns, reference = turns[:-1], turns[-1].content
        for turn in turns:
            for token in self._reserved:
                if token in turn.content:
                    raise SampleError(f"{sample.source} (sample {sample.id!r}): text contains reserved token {token}")
        media = {kind: iter(sample.media_of(kind)) for kind in MEDIA_KINDS}
        ids: list[int] = []
        labels: list[int] = []
        example = Example(torch.empty(0), torch.empty(0), sample.id, sample.source, reference=reference)
        for segment in self.template.segments(turns, add_generation_prompt=generation):
            for piece in _TAG.split(segment.text):
                if not piece:
                    continue
                if piece.startswith("<") and piece[1:-1] in MEDIA_KINDS:
                    run = self._media_run(piece[1:-1], next(media[piece[1:-1]]).path, example, sample)
                    ids += run
                    labels += [IGNORE_INDEX] * len(run)
                else:
                    piece_ids = self.tokenizer(piece, add_special_tokens=False)["input_ids"]
                    ids += piece_ids
                    labels += piece_ids if segment.trained else [IGNORE_INDEX] * len(piece_ids)
        ids, labels = self._fit(ids, labels, sample)
        example.input_ids = torch.tensor(ids, dtype=torch.long)
        example.labels = torch.tensor(labels, dtype=torch.long)
        return example

    def _media_run(self, kind: str, path: str, example: Example, sample: Sample) -> list[int]:
        """Load one media item onto `example` and return its bracketed placeholder ids."""
        if kind == "image" and self.image is not None:
            pixels = to_pixels(load_image(path), self.image.size, self.image.mean, self.image.std)
            example.pixel_values.append(pixels)
            n = self.image.num_tokens(*pixels.shape[-2:])
        elif kind == "audio" and self.audio is not None:
            spec = self.audio
            wave = load_audio(path, spec.sampling_rate)
            try:
                mel = log_mel(wave, spec.sampling_rate, spec.n_mels, spec.n_fft, spec.hop_length)
            except ValueError as err:  # a clip shorter than one STFT window
                raise MediaError(path, str(err)) from err
            example.audio_features.append(mel)
            n = spec.num_tokens(mel.shape[-1])
        else:
            raise SampleError(f"{sample.source} (sample {sample.id!r}): has {kind} input but the model takes no {kind}")
        start, end = self.template.tokens.brackets(kind)
        tok = self.tokenizer.convert_tokens_to_ids
        return [tok(start)] + [self.token_ids[kind]] * n + [tok(end)]

    def _fit(self, ids: list[int], labels: list[int], sample: Sample) -> tuple[list[int], list[int]]:
        if self.max_len is None or len(ids) <= self.max_len:
            return ids, labels
        placeholders = set(self.token_ids.values())
        if any(t in placeholders for t in ids[self.max_len :]):
            raise SampleError(
                f"{sample.source} (sample {sample.id!r}): {len(ids)} tokens exceed max_len={self.max_len} "
                "and truncation would cut a media item"
            )
        return ids[: self.max_len], labels[: self.max_len]

    def decode(self, ids: torch.Tensor | list[int]) -> str:
        """Text of generated ids, up to the end-of-turn token."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        if self.eos_id in ids:
            ids = ids[: ids.index(self.eos_id)]
        return self.tokenizer.decode([i for i in ids if i != self.pad_id], skip_special_tokens=False)

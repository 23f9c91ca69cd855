"""OmniProcessor: a Sample -> token ids, labels and media tensors, with one placeholder per feature."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

from valley3.data.media import MediaError
from valley3.data.media.image import should_tile
from valley3.data.media_costs import MediaProbe
from valley3.data.media_runs import AudioSpec, ImageSpec, MediaDecoder, VideoSpec
from valley3.data.schema import MEDIA_KINDS, Sample
from valley3.data.templates import ChatTemplate, SpecialTokens

IGNORE_INDEX = -100
_TAG = re.compile("|".join(f"(<{kind}>)" for kind in MEDIA_KINDS))


def _is_tag(piece: str) -> bool:
    return piece.startswith("<") and piece[1:-1] in MEDIA_KINDS


class SampleError(ValueError):
    """A sample that cannot become an example (too long, reserved tokens, a modality the model lacks)."""


@dataclass
class Example:
    input_ids: torch.Tensor  # [L] long
    labels: torch.Tensor  # [L] long, IGNORE_INDEX where not trained
    sample_id: str
    source: str
    pixel_values: list[torch.Tensor] = field(default_factory=list)  # each [3, H, W]; a tiled image adds each tile
    audio_features: list[torch.Tensor] = field(default_factory=list)  # each [n_mels, frames], in placeholder order
    video_pixels: list[torch.Tensor] = field(default_factory=list)  # each [T, 3, H, W]
    video_timestamps: list[torch.Tensor] = field(default_factory=list)  # each [T] seconds, kept for TM-RoPE
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
        video: how videos are sampled (default `VideoSpec()`); their frames use `image`'s settings.
    """

    def __init__(
        self,
        tokenizer,
        template: ChatTemplate | None = None,
        image: ImageSpec | None = None,
        audio: AudioSpec | None = None,
        max_len: int | None = None,
        video: VideoSpec | None = None,
    ):
        self.tokenizer = tokenizer
        self.template = template or ChatTemplate()
        self.image = image
        self.audio = audio
        self.max_len = max_len
        self.video = video or VideoSpec()
        if self.video.audio and audio is None:
            raise ValueError("VideoSpec(audio=True) needs a model with an audio encoder")
        self.video_audio = audio is not None and self.video.audio is not False
        tokens = self.template.tokens
        ensure_special_tokens(tokenizer, tokens)
        self.token_ids = {kind: tokenizer.convert_tokens_to_ids(tokens.placeholder(kind)) for kind in MEDIA_KINDS}
        self.pad_id = tokenizer.convert_tokens_to_ids(tokens.pad)
        self.eos_id = tokenizer.convert_tokens_to_ids(tokens.im_end)
        self._reserved = [tokens.placeholder(k) for k in MEDIA_KINDS]

    def __call__(self, sample: Sample, generation: bool = False) -> Example:
        return self._render(sample, generation, MediaDecoder())

    def measure(self, sample: Sample) -> tuple[Example, int]:
        """The training example `self(sample)` gives, its media as meta tensors of the same shapes read from
        headers and container metadata, and how many media items still had to be decoded (no metadata told).

        Costs (tokens, media counts) equal the decoded example's; a file corrupt past its header passes here.
        """
        probe = MediaProbe()
        return self._render(sample, False, probe), probe.decoded

    def _render(self, sample: Sample, generation: bool, media_loader) -> Example:
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
        pieces = [(piece, segment.trained) for segment in self.template.segments(turns, add_generation_prompt=generation)
                  for piece in _TAG.split(segment.text) if piece]
        texts = [piece for piece, _ in pieces if not _is_tag(piece)]
        # One call for the sample's text: the tokenizer's per-call overhead outweighs short pieces' encoding.
        encoded = iter(self.tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else [])
        for piece, trained in pieces:
            if _is_tag(piece):
                run = self._media_run(piece[1:-1], next(media[piece[1:-1]]).path, example, sample, media_loader)
                ids += run
                labels += [IGNORE_INDEX] * len(run)
            else:
                piece_ids = next(encoded)
                ids += piece_ids
                labels += piece_ids if trained else [IGNORE_INDEX] * len(piece_ids)
        ids, labels = self._fit(ids, labels, sample, generation)
        example.input_ids = torch.tensor(ids, dtype=torch.long)
        example.labels = torch.tensor(labels, dtype=torch.long)
        return example

    def _media_run(self, kind: str, path: str, example: Example, sample: Sample, loader) -> list[int]:
        """Load one media item onto `example` and return its bracketed placeholder ids."""
        if kind == "image" and self.image is not None:
            # Valley2's policy: only a sample's single image is tiled; its tiles share one placeholder run.
            pixels = loader.image(self.image, path, tile=should_tile(len(sample.media_of("image"))))
            example.pixel_values += pixels
            return self._run("image", sum(self.image.num_tokens(*px.shape[-2:]) for px in pixels))
        if kind == "audio" and self.audio is not None:
            return self._audio_run(loader.audio(self.audio, path), path, example)
        if kind == "video" and self.image is not None:
            frames, times = loader.video(self.image, self.video, path)
            grids = -(-frames.shape[0] // self.image.temporal_patch)  # a last odd frame is paired with itself
            run = self._run("video", grids * self.image.num_tokens(*frames.shape[-2:]))
            mel = loader.video_audio(self.audio, path) if self.video_audio else None
            example.video_pixels.append(frames)
            example.video_timestamps.append(times)
            return run if mel is None else run + self._audio_run(mel, path, example)
        raise SampleError(f"{sample.source} (sample {sample.id!r}): has {kind} input but the model takes no {kind}")

    def _audio_run(self, mel: torch.Tensor, path: str, example: Example) -> list[int]:
        n = self.audio.num_tokens(mel.shape[-1])
        if n == 0:  # an empty run would drop the clip without a trace
            raise MediaError(path, f"{mel.shape[-1]} mel frames are too short to give one audio token")
        example.audio_features.append(mel)
        return self._run("audio", n)

    def _run(self, kind: str, n: int) -> list[int]:
        start, end = self.template.tokens.brackets(kind)
        tok = self.tokenizer.convert_tokens_to_ids
        return [tok(start)] + [self.token_ids[kind]] * n + [tok(end)]

    def _fit(
        self, ids: list[int], labels: list[int], sample: Sample, generation: bool = False
    ) -> tuple[list[int], list[int]]:
        """Truncate an over-long training example; reject it when that would cut media, leave nothing
        to learn, or (for generation) cut the prompt's end."""
        if self.max_len is None or len(ids) <= self.max_len:
            return ids, labels
        where = f"{sample.source} (sample {sample.id!r}): {len(ids)} tokens exceed max_len={self.max_len}"
        if generation:
            raise SampleError(f"{where}; a prompt is never truncated")
        placeholders = set(self.token_ids.values())
        if any(t in placeholders for t in ids[self.max_len :]):
            raise SampleError(f"{where} and truncation would cut a media item")
        if all(label == IGNORE_INDEX for label in labels[: self.max_len]):
            raise SampleError(f"{where} and truncation would leave no supervised token")
        return ids[: self.max_len], labels[: self.max_len]

    def decode(self, ids: torch.Tensor | list[int]) -> str:
        """Text of generated ids, up to the end-of-turn token."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        if self.eos_id in ids:
            ids = ids[: ids.index(self.eos_id)]
        return self.tokenizer.decode([i for i in ids if i != self.pad_id], skip_special_tokens=False)

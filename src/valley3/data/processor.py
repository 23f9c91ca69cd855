"""OmniProcessor: a Sample -> token ids, labels and media tensors, with one placeholder per feature."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

from valley3.data.media import MediaError
from valley3.data.media.image import should_tile
from valley3.data.media_costs import MediaProbe
from valley3.data.media_runs import AudioSpec, ImageSpec, MediaDecoder, VideoSpec, interleave_audio
from valley3.data.schema import MEDIA_KINDS, Sample, Turn
from valley3.data.templates import ChatTemplate, Segment, SpecialTokens

IGNORE_INDEX = -100
CONTROL_TOKENS = ("reject", "escape")  # what happens to a tokenizer's special tokens found in data text
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
    prompt: str | None = None  # the last user turn's text when built for generation (media tags kept)

    def __len__(self) -> int:
        return self.input_ids.numel()


# Qwen3-Omni's tokens between <|audio_end|> and <|audio_pad|>: on Qwen3-VL's tokenizer (151669 tokens) they put the
# audio tokens at Qwen3-Omni's and the Valley3 release's ids, 151669 / 151670 / 151675.
OMNI_TTS_TOKENS = ("<tts_pad>", "<tts_text_bos>", "<tts_text_eod>", "<tts_text_bos_single>")


def ensure_special_tokens(tokenizer, tokens: SpecialTokens) -> None:
    """Add the template's special tokens a (real) tokenizer lacks; each must encode to one id.

    A tokenizer with no audio tokens at all gets them in Qwen3-Omni's layout (audio start, end, its four TTS tokens,
    the audio placeholder), so a Qwen3-VL tokenizer ends up with the Valley3 release's audio ids."""
    vocab = tokenizer.get_vocab()
    audio = [tokens.audio_start, tokens.audio_end, tokens.audio]
    if not any(t in vocab for t in audio):
        tts = [t for t in OMNI_TTS_TOKENS if t not in vocab]
        _add(tokenizer, [tokens.audio_start, tokens.audio_end, *tts, tokens.audio])
    vocab = tokenizer.get_vocab()  # once: a 150k-token vocabulary takes a second to list
    _add(tokenizer, [t for t in tokens.all() if t not in vocab])


def _add(tokenizer, new: list[str]) -> None:
    if new:  # in order: ids are given in list order
        tokenizer.add_special_tokens({"extra_special_tokens": new}, replace_extra_special_tokens=False)


class OmniProcessor:
    """Renders a Sample with the chat template and expands each media tag to its placeholder run.

    Args:
        tokenizer: a transformers tokenizer; missing template tokens are added to it.
        template: the chat template (ChatML by default).
        image: image settings of the model, or None if it has no vision.
        audio: audio settings of the model, or None if it has no audio.
        max_len: examples longer than this are truncated (when no media is cut) or rejected.
        video: how videos are sampled (default `VideoSpec()`); their frames use `image`'s settings.
        control_tokens: data text holding a special token of the tokenizer (`<|im_end|>`, `<|endoftext|>`, a media
            placeholder, ...; not the `<thinking>`/`<tool_call>` markup data carries): "reject" the sample (a
            counted skip in training) or "escape" it, i.e. tokenize the string as ordinary text, never the special id.
    """

    def __init__(
        self,
        tokenizer,
        template: ChatTemplate | None = None,
        image: ImageSpec | None = None,
        audio: AudioSpec | None = None,
        max_len: int | None = None,
        video: VideoSpec | None = None,
        control_tokens: str = "reject",
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
        self.control_tokens = control_tokens
        self._control = control_pattern(tokenizer, tokens)

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
        if self.control_tokens not in CONTROL_TOKENS:
            raise ValueError(f"control_tokens must be one of {CONTROL_TOKENS}, got {self.control_tokens!r}")
        for turn in turns:
            found = self._control.search(turn.content) if self.control_tokens == "reject" else None
            if found:
                raise SampleError(f"{sample.source} (sample {sample.id!r}): {turn.role} text contains the control "
                                  f"token {found.group()} (reserved for the template; control_tokens: escape reads it "
                                  "as text)")
        media = {kind: iter(sample.media_of(kind)) for kind in MEDIA_KINDS}
        ids: list[int] = []
        labels: list[int] = []
        example = Example(torch.empty(0), torch.empty(0), sample.id, sample.source, reference=reference)
        if generation:
            example.prompt = next((t.content for t in reversed(turns) if t.role == "user"), None)
        pieces = [(piece, segment.trained, segment.data and self.control_tokens == "escape")
                  for segment in self._segments(sample, turns, generation)
                  for piece in _TAG.split(segment.text) if piece]
        plain = [piece for piece, _, escape in pieces if not _is_tag(piece) and not escape]
        # One call for the sample's plain text: the tokenizer's per-call overhead outweighs short pieces' encoding.
        encoded = iter(self.tokenizer(plain, add_special_tokens=False)["input_ids"] if plain else [])
        for piece, trained, escape in pieces:
            if _is_tag(piece):
                run = self._media_run(piece[1:-1], next(media[piece[1:-1]]).path, example, sample, media_loader)
                ids += run
                labels += [IGNORE_INDEX] * len(run)
            else:
                piece_ids = self._escaped(piece) if escape else next(encoded)
                ids += piece_ids
                labels += piece_ids if trained else [IGNORE_INDEX] * len(piece_ids)
        ids, labels = self._fit(ids, labels, sample, generation)
        example.input_ids = torch.tensor(ids, dtype=torch.long)
        example.labels = torch.tensor(labels, dtype=torch.long)
        return example

    def _escaped(self, text: str) -> list[int]:
        """Token ids of `text` with each control token in it tokenized as plain text."""
        ids, start = [], 0
        for match in [*self._control.finditer(text), None]:
            end = match.start() if match else len(text)
            ids += self.tokenizer(text[start:end], add_special_tokens=False)["input_ids"] if end > start else []
            if match:
                ids += self.tokenizer(match.group(), add_special_tokens=False, split_special_tokens=True)["input_ids"]
                start = match.end()
        return ids

    def _segments(self, sample: Sample, turns: list[Turn], generation: bool) -> list[Segment]:
        """The template's segments; a reasoning sample's effort (`"effort"` in its record) goes into its system turn."""
        try:
            return self.template.segments(turns, add_generation_prompt=generation, effort=sample.meta.get("effort"))
        except ValueError as err:
            raise SampleError(f"{sample.source} (sample {sample.id!r}): {err}") from None

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
            per_grid = self.image.num_tokens(*frames.shape[-2:])
            mel = loader.video_audio(self.audio, path) if self.video_audio else None
            example.video_pixels.append(frames)
            example.video_timestamps.append(times)
            if mel is None:
                return self._run("video", grids * per_grid)
            # Measured (meta) times: the interleaved block costs what the separate runs cost (the same ids, in
            # another order, and the same four brackets), so costs need no frame times.
            if not self.video.audio_in_video or times.is_meta:
                return self._run("video", grids * per_grid) + self._audio_run(mel, path, example)
            seconds = (times[:: self.image.temporal_patch] - times[0]).tolist()
            return self._audio_in_video_run(seconds, per_grid, self._audio_run(mel, path, example))
        raise SampleError(f"{sample.source} (sample {sample.id!r}): has {kind} input but the model takes no {kind}")

    def _audio_run(self, mel: torch.Tensor, path: str, example: Example) -> list[int]:
        n = self.audio.num_tokens(mel.shape[-1])
        if n == 0:  # an empty run would drop the clip without a trace
            raise MediaError(path, f"{mel.shape[-1]} mel frames are too short to give one audio token")
        example.audio_features.append(mel)
        return self._run("audio", n)

    def _audio_in_video_run(self, grid_seconds: list[float], per_grid: int, audio_run: list[int]) -> list[int]:
        """<vision_start><audio_start> grids and audio merged by time <audio_end><vision_end> (use_audio_in_video)."""
        kinds = interleave_audio(grid_seconds, per_grid, len(audio_run) - 2, self.video.ids_per_second or 25)
        ids = [self.token_ids["video"] if is_video else self.token_ids["audio"] for is_video in kinds]
        (vs, ve), (as_, ae) = self.template.tokens.brackets("video"), self.template.tokens.brackets("audio")
        tok = self.tokenizer.convert_tokens_to_ids
        return [tok(vs), tok(as_), *ids, tok(ae), tok(ve)]

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


def control_pattern(tokenizer, tokens: SpecialTokens) -> re.Pattern:
    """A regex of every control token: the tokenizer's special tokens and the template's own, less `in_text()`."""
    added = tokenizer.added_tokens_decoder.values()
    special = set(tokenizer.all_special_tokens) | {t.content for t in added if t.special}
    control = (special | set(tokens.all())) - tokens.in_text()
    return re.compile("|".join(re.escape(t) for t in sorted(control, key=len, reverse=True)))

"""The model's media settings (ImageSpec, AudioSpec, VideoSpec) and the loaders that turn one item into tensors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from valley3.data.media import MediaError
from valley3.data.media.audio import load_audio, log_mel
from valley3.data.media.image import load_image, tile_grid, tile_image, to_pixels
from valley3.data.media.probe import image_size
from valley3.data.media.video import load_video, load_video_audio, sample_indices


@dataclass(frozen=True)
class ImageSpec:
    """How the model wants images: each is resized to `resize(h, w)` and costs `num_tokens(h, w)` placeholders.

    `size` is the square side of a fixed-resolution encoder and of every tile; `input_size` (the encoder's own,
    None for the square) lets a native-resolution encoder see an image at its aspect ratio.
    """

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    num_tokens: Callable[[int, int], int]
    max_tiles: int = 1  # a sample's single image becomes up to this many tiles plus a thumbnail; 1 = no tiling
    input_size: Callable[[int, int], tuple[int, int]] | None = None
    temporal_patch: int = 1  # video frames per temporal grid (Qwen-VL's ViTs take frames in pairs: 2)

    def __post_init__(self):
        if self.max_tiles < 1:
            raise ValueError(f"max_tiles must be at least 1, got {self.max_tiles}")

    def resize(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) the encoder takes a picture of this size at."""
        return self.input_size(height, width) if self.input_size is not None else (self.size, self.size)


@dataclass(frozen=True)
class AudioSpec:
    """How the model wants audio: log-mel settings and `num_tokens(frames)`."""

    sampling_rate: int
    n_mels: int
    n_fft: int
    hop_length: int
    num_tokens: Callable[[int], int]


@dataclass(frozen=True)
class VideoSpec:
    """How videos are sampled (see `load_video`); the frames then take the image path, untiled.

    Args:
        num_frames: sample this many frames uniformly over the clip; exclusive with `fps`.
        fps: sample at this many frames per second of video; exclusive with `num_frames`.
        max_frames: the most frames per video (neither `num_frames` nor `fps`: this many, uniformly).
            Each frame costs as many tokens as an untiled image, so this bounds a video's length in tokens.
        audio: append the video's audio track (if it has one) as an audio item right after its frames;
            None: whenever the model has an audio encoder.
        backend: "auto" (decord, then torchcodec, then PyAV) or one of them.
        audio_in_video: lay a video with sound out as ONE block, its temporal grids and audio tokens merged by time
            (Qwen-Omni's and the Valley3 release's `use_audio_in_video=True`), instead of an audio item after it.
        ids_per_second: the time scale of that merge (TM-RoPE's `position_id_per_seconds`); None: the model's.
    """

    num_frames: int | None = None
    fps: float | None = None
    max_frames: int = 16
    audio: bool | None = None
    backend: str = "auto"
    audio_in_video: bool = False
    ids_per_second: float | None = None

    def __post_init__(self):
        sample_indices(1, 1.0, self.num_frames, self.fps, self.max_frames)  # the same argument errors, early
        if self.audio_in_video and self.audio is False:
            raise ValueError("VideoSpec(audio_in_video=True) interleaves the video's audio; it cannot have audio=False")


def interleave_audio(grid_seconds: list[float], tokens_per_grid: int, n_audio: int,
                     ids_per_second: float) -> list[bool]:
    """The kinds (True: video, False: audio) of an audio-in-video block in sequence order.

    Temporal grid k sits at `grid_seconds[k] * ids_per_second`, audio token j at j; a grid goes first on ties and
    brings all its tokens: the order of Qwen-Omni's and the Valley3 release's `use_audio_in_video` processors.
    """
    keys = [(s * ids_per_second, 0) for s in grid_seconds for _ in range(tokens_per_grid)]
    return [kind == 0 for _, kind in sorted(keys + [(float(j), 1) for j in range(n_audio)])]


def image_pixels(spec: ImageSpec, path: str, tile: bool) -> list[torch.Tensor]:
    """One image as the [3, H, W] tensors the encoder sees: its tiles and thumbnail when `tile`, else itself.

    Sizes, grids and token counts follow the image's full size (read from its header); a large JPEG is then
    decoded at the reduced scale that still covers them (`load_image(reduce_to=...)`).
    """
    size = image_size(path)
    if size is None:  # a PNG whose orientation lies behind its pixels: decode to know
        size = load_image(path).size
    width, height = size
    if tile and spec.max_tiles > 1:
        grid = tile_grid(width, height, spec.size, spec.max_tiles)
        image = load_image(path, reduce_to=(grid.cols * spec.size, grid.rows * spec.size))
        return [to_pixels(p, spec.resize(p.height, p.width), spec.mean, spec.std)
                for p in tile_image(image, spec.size, spec.max_tiles, grid=grid)]
    target = spec.resize(height, width)
    return [to_pixels(load_image(path, reduce_to=target[::-1]), target, spec.mean, spec.std)]


def audio_mel(spec: AudioSpec, wave: torch.Tensor, path: str) -> torch.Tensor:
    """The log-mel features [n_mels, frames] of a waveform read from `path`."""
    try:
        return log_mel(wave, spec.sampling_rate, spec.n_mels, spec.n_fft, spec.hop_length)
    except ValueError as err:  # a clip shorter than one STFT window
        raise MediaError(path, str(err)) from err


def video_pixels(image: ImageSpec, video: VideoSpec, path: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The sampled frames [T, 3, H, W] (sized and normalised as an untiled image) and their times [T] in seconds."""
    clip = load_video(path, video.num_frames, video.fps, video.max_frames, video.backend)
    height, width = clip.frames.shape[1:3]
    return clip.pixels(image.resize(height, width), image.mean, image.std), clip.timestamps


class MediaDecoder:
    """What the processor loads each media item with: decoded, sized and normalised tensors."""

    def image(self, spec: ImageSpec, path: str, tile: bool) -> list[torch.Tensor]:
        return image_pixels(spec, path, tile)

    def audio(self, spec: AudioSpec, path: str) -> torch.Tensor:
        return audio_mel(spec, load_audio(path, spec.sampling_rate), path)

    def video(self, image: ImageSpec, video: VideoSpec, path: str) -> tuple[torch.Tensor, torch.Tensor]:
        return video_pixels(image, video, path)

    def video_audio(self, spec: AudioSpec, path: str) -> torch.Tensor | None:
        """The log-mel of a video's audio track, None when it has none."""
        wave = load_video_audio(path, spec.sampling_rate)
        return None if wave is None else audio_mel(spec, wave, path)

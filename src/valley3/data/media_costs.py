"""MediaProbe: the processor's media loader for costs, giving meta tensors of the decoded shapes from metadata."""

from __future__ import annotations

import torch

from valley3.data.media import MediaError
from valley3.data.media.audio import load_audio, mel_frames
from valley3.data.media.image import load_image, tile_grid
from valley3.data.media.probe import VideoProbe, audio_length, image_size, probe_video, resampled_length
from valley3.data.media.video import load_video_audio, sample_indices
from valley3.data.media_runs import AudioSpec, ImageSpec, VideoSpec, video_pixels


def _meta(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype, device="meta")  # a shape, no storage


class MediaProbe:
    """Loads media the way `MediaDecoder` does, but as meta tensors of the same shapes, read from image headers,
    audio headers and video container metadata (`media/probe.py`). Where metadata cannot tell, the item is
    decoded (its real tensors returned) and counted in `decoded`.

    The errors are the decoder's for what metadata shows (missing, empty or unreadable files, no audio stream,
    clips too short for one mel frame); corrupt data behind a sound header shows up only when decoded.
    """

    def __init__(self):
        self.decoded = 0
        self._videos: dict[str, VideoProbe | None] = {}

    def image(self, spec: ImageSpec, path: str, tile: bool) -> list[torch.Tensor]:
        size = image_size(path)
        if size is None:
            self.decoded += 1
            size = load_image(path).size
        width, height = size
        parts = [(height, width)]
        if tile and spec.max_tiles > 1:  # as `tile_image`: the grid's tiles, plus a thumbnail when there are several
            tiles = tile_grid(width, height, spec.size, spec.max_tiles).tiles
            parts = [(spec.size, spec.size)] * (tiles + (tiles > 1))
        return [_meta(3, *spec.resize(h, w)) for h, w in parts]

    def audio(self, spec: AudioSpec, path: str) -> torch.Tensor:
        length = audio_length(path)
        if length is None:
            self.decoded += 1
            return self._mel(spec, load_audio(path, spec.sampling_rate).numel(), path)
        return self._mel(spec, resampled_length(*length, spec.sampling_rate), path, length[0])

    def video(self, image: ImageSpec, video: VideoSpec, path: str) -> tuple[torch.Tensor, torch.Tensor]:
        info = self._videos[path] = probe_video(path)
        if info is None:
            self.decoded += 1
            return video_pixels(image, video, path)
        try:
            n = len(sample_indices(info.frames, info.fps, video.num_frames, video.fps, video.max_frames))
        except ValueError as err:  # no frames or no rate: every decoder fails on it too
            raise MediaError(path, f"cannot decode video ({err})") from err
        return _meta(n, 3, *image.resize(info.height, info.width)), _meta(n, dtype=torch.float64)

    def video_audio(self, spec: AudioSpec, path: str) -> torch.Tensor | None:
        info = self._videos.pop(path) if path in self._videos else probe_video(path)
        if info is not None and not info.has_audio:
            return None
        if info is None or info.audio is None:
            self.decoded += 1
            wave = load_video_audio(path, spec.sampling_rate)
            return None if wave is None else self._mel(spec, wave.numel(), path)
        return self._mel(spec, resampled_length(*info.audio, spec.sampling_rate), path, info.audio[0])

    @staticmethod
    def _mel(spec: AudioSpec, samples: int, path: str, source_samples: int | None = None) -> torch.Tensor:
        if source_samples == 0:
            raise MediaError(path, "audio has no samples")
        try:
            return _meta(spec.n_mels, mel_frames(samples, spec.n_fft, spec.hop_length))
        except ValueError as err:  # as `audio_mel`: a clip shorter than one STFT window
            raise MediaError(path, str(err)) from err

"""Per-sample rotary position ids: 1-D RoPE, mRoPE (Qwen2/3-VL) and TM-RoPE (Qwen-Omni, 25 ids/s)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = [
    "AUDIO_IN_VIDEO", "Audio", "Image", "Segment", "Text", "Video", "audio_in_video_order", "merged_grid", "mrope_ids",
    "placeholder_runs", "rope_ids", "tm_rope_ids",
]

AUDIO_IN_VIDEO = "video+audio"  # the kind of an interleaved run in `placeholder_runs`
_AV = ("video", "audio")
# Float products such as 3 * 0.08 * 25 land just below an integer; nudge before flooring.
_EPS = 1e-6


@dataclass(frozen=True)
class Text:
    """A run of ``n`` text tokens (special tokens such as <vision_start> included).

    Args:
        n: number of tokens.
    """

    n: int


@dataclass(frozen=True)
class Image:
    """An image as its LLM-side grid, i.e. after spatial merge (``t * h * w`` tokens, raster order).

    Args:
        t: temporal grid (1 for a still image).
        h: merged height grid.
        w: merged width grid.
    """

    t: int
    h: int
    w: int


@dataclass(frozen=True)
class Audio:
    """``n`` audio tokens.

    Args:
        n: number of audio tokens (AuT gives 13 per full second of audio).
        seconds_per_token: if set, TM-RoPE spaces ids by this duration on the time axis; if None,
            ids are consecutive, as transformers' Qwen2.5/Qwen3-Omni ``get_rope_index`` does.
    """

    n: int
    seconds_per_token: float | None = None


@dataclass(frozen=True)
class Video:
    """A video as its merged LLM grid, temporal grids first (``t * h * w`` tokens).

    Args:
        t: number of temporal grids.
        h: merged height grid.
        w: merged width grid.
        timestamps: start time in seconds of each temporal grid; ids use offsets from the first.
            None means one id per grid (Qwen2-VL).
        audio: the video's own audio track, interleaved with the frames by time (TM-RoPE only;
            Omni ``use_audio_in_video``); the sequence must hold the tokens in ``audio_in_video_order``.
    """

    t: int
    h: int
    w: int
    timestamps: Sequence[float] | None = None
    audio: Audio | None = None


Segment = Text | Image | Video | Audio


def merged_grid(grid_thw: Sequence[int], spatial_merge_size: int = 2) -> tuple[int, int, int]:
    """Turn a processor's patch grid ``(t, h, w)`` into the LLM-side grid after spatial merge.

    Args:
        grid_thw: patch grid from the image processor.
        spatial_merge_size: merge factor of the vision tower (2 for Qwen2/3-VL).
    """
    t, h, w = (int(x) for x in grid_thw)
    return t, h // spatial_merge_size, w // spatial_merge_size


def rope_ids(length: int, start: int = 0) -> torch.Tensor:
    """Plain 1-D RoPE ids ``[start, start + length)`` as a ``[L]`` long tensor.

    Args:
        length: number of tokens.
        start: first id.
    """
    return torch.arange(start, start + length, dtype=torch.long)


def _line(n: int, start: int) -> torch.Tensor:
    return torch.arange(start, start + n, dtype=torch.long).expand(3, -1)


def _time_offsets(seconds: torch.Tensor, ids_per_second: float) -> torch.Tensor:
    return torch.floor(seconds.double() * ids_per_second + _EPS).long()


def _grid(t_offsets: torch.Tensor, h: int, w: int, start: int) -> torch.Tensor:
    t = t_offsets.view(-1, 1, 1).expand(-1, h, w)
    hh = torch.arange(h).view(1, -1, 1).expand(len(t_offsets), h, w)
    ww = torch.arange(w).view(1, 1, -1).expand(len(t_offsets), h, w)
    return torch.stack([t, hh, ww]).reshape(3, -1) + start


def _video_seconds(video: Video) -> torch.Tensor:
    if video.timestamps is None:
        raise ValueError("TM-RoPE needs Video.timestamps (seconds per temporal grid)")
    if len(video.timestamps) != video.t:
        raise ValueError(f"{len(video.timestamps)} timestamps for {video.t} temporal grids")
    ts = torch.tensor(video.timestamps, dtype=torch.float64)
    return ts - ts[0]


def _audio_ids(audio: Audio, start: int, ids_per_second: float) -> torch.Tensor:
    if audio.seconds_per_token is None:
        return _line(audio.n, start)
    seconds = torch.arange(audio.n, dtype=torch.float64) * audio.seconds_per_token
    return (_time_offsets(seconds, ids_per_second) + start).expand(3, -1)


def _audio_keys(audio: Audio, ids_per_second: float) -> torch.Tensor:
    if audio.seconds_per_token is None:
        return torch.arange(audio.n, dtype=torch.float64)
    return torch.arange(audio.n, dtype=torch.float64) * audio.seconds_per_token * ids_per_second


def audio_in_video_order(video: Video, ids_per_second: float = 25) -> torch.Tensor:
    """Where a video's tokens and its audio's go in the interleaved block: [t*h*w + n] indices into
    ``cat(video tokens, audio tokens)``, in sequence order.

    Both streams are merged by their unrounded temporal id (a video grid at ``seconds * ids_per_second``, audio
    token ``j`` at ``j``, or at its time when spaced), a video grid first on ties: the order of Qwen-Omni's and the
    Valley3 release's ``use_audio_in_video`` (processor and ``get_rope_index``).

    Args:
        video: the video, with ``audio`` set.
        ids_per_second: temporal ids per second (``position_id_per_seconds``).
    """
    if video.audio is None:
        raise ValueError("audio_in_video_order needs a Video with audio")
    grid_keys = _video_seconds(video) * ids_per_second
    keys = torch.cat([grid_keys.repeat_interleave(video.h * video.w), _audio_keys(video.audio, ids_per_second)])
    return torch.sort(keys, stable=True).indices  # stable: video tokens come first in `keys`, so they win ties


def _interleave(video: Video, pos: int, ids_per_second: float) -> tuple[torch.Tensor, int]:
    """The block's ids in sequence order and the next free id.

    The next id follows the block's trailing run (the tokens after its last switch between video and audio), not
    its maximum: transformers' Qwen3-Omni and the release take ``max + 1`` of the last piece they appended, and an
    audio tail can end below a tall frame's h/w ids.
    """
    frames = _grid(_time_offsets(_video_seconds(video), ids_per_second), video.h, video.w, pos)
    ids = torch.cat([frames, _audio_ids(video.audio, pos, ids_per_second)], dim=1)
    order = audio_in_video_order(video, ids_per_second)
    is_video = order < frames.shape[1]
    switches = (is_video[1:] != is_video[:-1]).nonzero()
    tail = int(switches[-1]) + 1 if len(switches) else 0
    ids = ids[:, order]
    return ids, int(ids[:, tail:].max()) + 1


def _assemble(segments: Sequence[Segment], piece) -> tuple[torch.Tensor, int]:
    """`piece(seg, pos)` gives a segment's ids, or (ids, next id) where the next id is not simply max + 1."""
    parts, pos = [], 0
    for seg in segments:
        ids = _line(seg.n, pos) if isinstance(seg, Text) else piece(seg, pos)
        ids, nxt = ids if isinstance(ids, tuple) else (ids, None)
        if ids.shape[1]:
            parts.append(ids)
            pos = int(ids.max()) + 1 if nxt is None else nxt  # by default after every id used so far
    if not parts:
        return torch.zeros(3, 0, dtype=torch.long), 0
    return torch.cat(parts, dim=1).contiguous(), pos


def mrope_ids(segments: Sequence[Segment], tokens_per_second: float | None = None) -> tuple[torch.Tensor, int]:
    """mRoPE ids for one sample (Qwen2-VL, Qwen2.5-VL, Qwen3-VL); returns ``([3, L] ids, next id)``.

    Text advances all three axes together; an image or video grid gets ``(t, h, w)`` offsets from the
    current position; the next segment starts at ``max + 1``. For Qwen3-VL pass each video frame as its
    own ``Image(1, h, w)`` between its timestamp text, as its processor lays them out.

    Args:
        segments: the sample's token sequence in order.
        tokens_per_second: Qwen2.5-VL's temporal scale; video grid ``k`` gets temporal offset
            ``floor((timestamps[k] - timestamps[0]) * tokens_per_second)``. None: one id per grid.
    """

    def piece(seg: Segment, pos: int) -> torch.Tensor:
        if isinstance(seg, Audio):
            raise TypeError("mRoPE has no audio; use tm_rope_ids")
        if isinstance(seg, Video) and seg.audio is not None:
            raise TypeError("audio inside a video needs tm_rope_ids")
        if isinstance(seg, Video) and tokens_per_second is not None and seg.timestamps is not None:
            t_offsets = _time_offsets(_video_seconds(seg), tokens_per_second)
        else:
            t_offsets = torch.arange(seg.t)
        return _grid(t_offsets, seg.h, seg.w, pos)

    return _assemble(segments, piece)


def tm_rope_ids(segments: Sequence[Segment], ids_per_second: float = 25) -> tuple[torch.Tensor, int]:
    """TM-RoPE ids for one sample (Qwen2.5/Qwen3-Omni); returns ``([3, L] ids, next id)``.

    Video temporal ids follow the frame timestamps at ``ids_per_second`` so that video and audio share
    one time axis; image grids step ``ids_per_second`` per temporal grid; audio ids are consecutive
    (reference) or time-spaced (``Audio.seconds_per_token``); h/w as in mRoPE. A video with ``audio``
    interleaves both by temporal id (``audio_in_video_order``). The next segment starts at ``max + 1`` (after an
    interleaved block: after its trailing run, as the reference does).

    Args:
        segments: the sample's token sequence in order.
        ids_per_second: temporal ids per second of media (``position_id_per_seconds``, 25).
    """

    def piece(seg: Segment, pos: int) -> torch.Tensor:
        if isinstance(seg, Audio):
            return _audio_ids(seg, pos, ids_per_second)
        if isinstance(seg, Image):
            t_offsets = torch.arange(seg.t) * math.floor(ids_per_second)
            return _grid(t_offsets, seg.h, seg.w, pos)
        if seg.audio is None:
            return _grid(_time_offsets(_video_seconds(seg), ids_per_second), seg.h, seg.w, pos)
        return _interleave(seg, pos, ids_per_second)

    return _assemble(segments, piece)


def placeholder_runs(ids: Sequence[int], placeholders: dict[int, str]) -> list[tuple[str | None, int]]:
    """A sample's tokens as maximal runs ``(kind, length)``: ``kind`` is a placeholder run's media, None is text.

    One media item is one run, as the processor brackets every item (``<|vision_start|>…<|vision_end|>``). Video and
    audio placeholders that touch with no text between are one video with its audio interleaved
    (``use_audio_in_video``): one run of kind ``AUDIO_IN_VIDEO``.

    Args:
        ids: the sample's token ids.
        placeholders: placeholder token id -> media kind ("image", "video", "audio").
    """
    runs: list[tuple[str | None, int]] = []
    for token in ids:
        kind = placeholders.get(int(token))
        if runs and runs[-1][0] == kind:
            runs[-1] = (kind, runs[-1][1] + 1)
        elif runs and kind in _AV and runs[-1][0] in (*_AV, AUDIO_IN_VIDEO):
            runs[-1] = (AUDIO_IN_VIDEO, runs[-1][1] + 1)
        else:
            runs.append((kind, 1))
    return runs

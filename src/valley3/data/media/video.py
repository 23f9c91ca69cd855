"""Video decoding (decord; torchcodec / PyAV fallbacks), frame sampling, rotation, and audio-in-video."""

from __future__ import annotations

import bisect
import functools
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image

from valley3._optional import optional_import
from valley3.data.media import MediaError, require_file
from valley3.data.media.audio import load_audio
from valley3.data.media.image import to_pixels
from valley3.threads import decode_threads

logger = logging.getLogger(__name__)

BACKENDS = ("decord", "torchcodec", "pyav")  # the order "auto" tries them in
_MODULES = {"decord": "decord", "torchcodec": "torchcodec.decoders", "pyav": "av"}
_Choose = Callable[[int, float], list[int]]  # (source frames, source fps) -> indices to decode


@dataclass(frozen=True)
class Video:
    """Frames sampled from one video, upright, with the time each is shown."""

    frames: torch.Tensor  # [T, H, W, 3] uint8 RGB in display orientation
    timestamps: torch.Tensor  # [T] float64 seconds since the stream's first frame
    indices: tuple[int, ...]  # the sampled source frames, in presentation order
    fps: float  # the source's average frame rate
    duration: float  # seconds the source spans: its frame count / fps
    backend: str  # the decoder that produced the frames
    rotation: int = 0  # display rotation applied, degrees counter-clockwise (0, 90, 180, 270)

    @property
    def num_frames(self) -> int:
        return self.frames.shape[0]

    def pixels(self, size: int | tuple[int, int], mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
        """Each frame through `to_pixels` (the image path's resize and normalisation): [T, 3, H, W] float.

        Args:
            size: the output side, or (height, width).
            mean: per-channel mean, as for images.
            std: per-channel standard deviation, as for images.
        """
        return torch.stack([to_pixels(Image.fromarray(f), size, mean, std) for f in self.frames.numpy()])


def sample_indices(
    total: int, src_fps: float, num_frames: int | None = None, fps: float | None = None, max_frames: int = 32
) -> list[int]:
    """The source frames to decode, sorted and without repeats.

    - `num_frames=k`: the middle frame of each of k equal segments, floor((j + 1/2) * total / k) for
      j < k (as InternVL's video loader: k=1 is the middle frame, and fade-in/out end frames are not forced in).
    - `fps=f`: the frame shown at each t = j / f before the end, floor(j * src_fps / f), so the frames
      are exactly 1/f s apart when f divides the source rate.
    - neither: `num_frames=max_frames`.
    More than `max_frames` frames (k too large, or a long clip at rate f) become `num_frames=max_frames`,
    which still spans the whole clip. Asking for more frames than the source has gives each frame once.

    Args:
        total: frames in the source.
        src_fps: the source's average frame rate.
        num_frames: sample this many frames uniformly; exclusive with `fps`.
        fps: sample at this rate, in frames per second of video; exclusive with `num_frames`.
        max_frames: the most frames returned.
    """
    if num_frames is not None and fps is not None:
        raise ValueError("give num_frames or fps, not both")
    if total < 1 or not src_fps > 0:
        raise ValueError(f"video stream reports {total} frames at {src_fps} fps")
    if max_frames < 1 or (num_frames is not None and num_frames < 1) or (fps is not None and not fps > 0):
        raise ValueError(f"need max_frames >= 1, num_frames >= 1, fps > 0; got {max_frames}, {num_frames}, {fps}")
    if fps is not None:
        # The 1e-6 keeps j * src_fps / f from landing a hair below an integer (29.97 fps sources).
        count = math.ceil(total * fps / src_fps - 1e-6)
        if count <= max_frames:
            return sorted({min(total - 1, math.floor(j * src_fps / fps + 1e-6)) for j in range(count)})
    k = min(num_frames or max_frames, max_frames)
    return sorted({(2 * j + 1) * total // (2 * k) for j in range(k)})


def load_video(
    path: str | os.PathLike,
    num_frames: int | None = None,
    fps: float | None = None,
    max_frames: int = 32,
    backend: str = "auto",
) -> Video:
    """Decode the sampled frames of a video (see `sample_indices`), upright per its rotation metadata.

    "auto" tries decord, then torchcodec, then PyAV, skipping those not installed; a backend that fails
    on the file is logged and the next one tried. decord is skipped for ±90° rotated videos, whose frames
    decord 0.6 returns mis-shaped (its 180° rotation is right); PyAV frames are rotated here.

    Args:
        path: the video file (any container FFmpeg reads).
        num_frames: sample this many frames uniformly; exclusive with `fps`.
        fps: sample at this many frames per second of video; exclusive with `num_frames`.
        max_frames: the most frames returned, whichever way they are sampled.
        backend: "auto", or one of "decord", "torchcodec", "pyav" to use that one only.

    Raises:
        MediaError: the file is missing, zero-length, has no video stream, or no backend decodes it.
    """
    if backend != "auto" and backend not in BACKENDS:
        raise ValueError(f"backend {backend!r}; expected 'auto' or one of {BACKENDS}")
    sample_indices(1, 1.0, num_frames, fps, max_frames)  # argument errors are the caller's, not the file's
    path = require_file(path)
    rotation = _probe_rotation(path)
    order = BACKENDS if backend == "auto" else (backend,)
    choose = functools.partial(sample_indices, num_frames=num_frames, fps=fps, max_frames=max_frames)
    errors, missing = [], []
    for name in order:
        module = optional_import(_MODULES[name])
        if module is None:
            missing.append(f"{name}: not installed")
            _note_missing(name)
            continue
        if name == "decord" and rotation in (90, 270):
            errors.append(f"decord: skipped, it mis-shapes {rotation}-degree rotated frames")
            continue
        try:
            out = _READERS[name](module, path, choose)
            if out.frames.ndim != 4 or out.frames.shape[-1] != 3 or len(out.frames) != len(out.indices):
                raise ValueError(f"decoded frames of shape {out.frames.shape} for {len(out.indices)} indices")
        except Exception as exc:  # noqa: BLE001  each decoder raises its own types; the next one may cope
            logger.warning("%s: %s could not decode it (%s)", path, name, exc)
            errors.append(f"{name}: {exc}")
            continue
        if errors:
            logger.info("%s: decoded with %s (%s)", path, name, "; ".join(errors))
        frames = out.frames
        if rotation and not out.rotated:
            frames = np.rot90(frames, k=rotation // 90, axes=(1, 2))
        return Video(
            frames=torch.from_numpy(np.ascontiguousarray(frames, dtype=np.uint8)),
            # Rounded to the microsecond: decord computes times in float32 (0.1 s reads 0.10000000149).
            timestamps=torch.as_tensor(np.round(out.times, 6), dtype=torch.float64),
            indices=tuple(out.indices),
            fps=out.fps,
            duration=out.total / out.fps,
            backend=name,
            rotation=rotation,
        )
    raise MediaError(path, "cannot decode video (" + "; ".join(missing + errors) + ")")


def load_video_audio(path: str | os.PathLike, sampling_rate: int) -> torch.Tensor | None:
    """The first audio track of a video as a mono waveform [T] at `sampling_rate`, or None if it has none.

    Args:
        path: the video file.
        sampling_rate: the rate of the returned waveform, as for `load_audio`.

    Raises:
        MediaError: the file is missing, zero-length or unreadable, or its audio track is undecodable.
    """
    path = require_file(path)
    av = optional_import("av")
    if av is None:
        raise MediaError(path, "reading the audio of a video needs PyAV (pip install av)")
    try:
        with av.open(str(path)) as container:
            has_audio = bool(container.streams.audio)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(path, f"cannot open video ({exc})") from exc
    return load_audio(path, sampling_rate) if has_audio else None


class _Decoded(NamedTuple):
    frames: np.ndarray  # [T, H, W, 3] uint8
    times: list[float]  # seconds since the stream's first frame
    indices: list[int]
    total: int  # frames in the source
    fps: float
    rotated: bool  # whether the decoder already applied the display rotation


@functools.cache
def _note_missing(name: str) -> None:
    # Once per process: on a machine without decord every video would otherwise log the same line.
    logger.info("video backend %s is not installed; load_video uses the next one of %s", name, BACKENDS)


def _probe_rotation(path: Path) -> int:
    """Display rotation in degrees counter-clockwise, rounded to 0/90/180/270, from PyAV's first frame."""
    av = optional_import("av")
    if av is None:  # the decoders that rotate by themselves (decord, torchcodec >= 0.11) still do
        return 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(path, "no video stream")
            stream = container.streams.video[0]
            # The display matrix is stream side data that PyAV exposes only per decoded frame.
            frame = next(container.decode(stream), None)
            if frame is None:
                raise MediaError(path, "video stream has no frames")
            angle = getattr(frame, "rotation", None)
            if angle is None:  # old PyAV: FFmpeg < 5 exported a clockwise "rotate" tag instead
                angle = -float(stream.metadata.get("rotate", 0))
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(path, f"cannot open video ({exc})") from exc
    return round(angle / 90) % 4 * 90


def _read_decord(decord, path: Path, choose: _Choose) -> _Decoded:
    reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=decode_threads())
    total, fps = len(reader), float(reader.get_avg_fps())
    indices = choose(total, fps)
    frames = reader.get_batch(indices).asnumpy()
    starts = reader.get_frame_timestamp([0, *indices])[:, 0]
    return _Decoded(frames, (starts[1:] - starts[0]).tolist(), indices, total, fps, rotated=True)


def _read_torchcodec(decoders, path: Path, choose: _Choose) -> _Decoded:
    decoder = decoders.VideoDecoder(str(path), dimension_order="NHWC", seek_mode="exact")
    meta, total = decoder.metadata, len(decoder)
    fps = float(meta.average_fps or total / meta.duration_seconds)
    indices = choose(total, fps)
    batch = decoder.get_frames_at(indices)
    pts = batch.pts_seconds.double()
    first = pts[0] if indices[0] == 0 else decoder.get_frame_at(0).pts_seconds
    # torchcodec >= 0.11 rotates while decoding and says so with metadata.rotation; older ones do not.
    return _Decoded(batch.data.numpy(), (pts - first).tolist(), indices, total, fps, hasattr(meta, "rotation"))


def _read_pyav(av, path: Path, choose: _Choose) -> _Decoded:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        # Demuxing without decoding is cheap and gives the exact frame count, each frame's pts in
        # presentation order, and the keyframes to seek to, so sparse samples skip whole GOPs.
        packets = [(p.pts, p.is_keyframe) for p in container.demux(stream) if p.size and p.pts is not None]
        pts = sorted(p for p, _ in packets)
        keys = sorted(p for p, key in packets if key) or pts[:1]
        total, fps, time_base = len(pts), float(stream.average_rate or stream.guessed_rate or 0), stream.time_base
        indices = choose(total, fps)
        wanted = {pts[i] for i in indices}
        got = _pyav_frames(container, stream, wanted, keys)
    if len(got) < len(wanted):  # a seek landed past its target (a missing or coarse index): decode in order
        with av.open(str(path)) as container:
            got = _pyav_frames(container, container.streams.video[0], wanted, keys=None)
    missing = [i for i in indices if pts[i] not in got]
    if missing:
        raise ValueError(f"frames {missing[:5]} could not be decoded")
    times = [float((pts[i] - pts[0]) * time_base) for i in indices]
    return _Decoded(np.stack([got[pts[i]] for i in indices]), times, indices, total, fps, rotated=False)


def _pyav_frames(container, stream, wanted: set[int], keys: list[int] | None) -> dict[int, np.ndarray]:
    """RGB frames whose pts are in `wanted`; with `keys`, seeking to the keyframe before each when it helps."""
    stream.thread_type = "AUTO"
    stream.codec_context.thread_count = decode_threads()  # 0: FFmpeg's choice; 1 in a loader worker
    got: dict[int, np.ndarray] = {}
    decoded, position = None, None
    for target in sorted(wanted):
        if target in got:
            continue
        key = keys[max(bisect.bisect_right(keys, target) - 1, 0)] if keys else None
        # Seek when a keyframe lies between here and the target: decoding up to it would be wasted.
        if decoded is None or (key is not None and position is not None and key > position):
            if key is not None:
                container.seek(key, stream=stream, backward=True)
            decoded = container.decode(stream)
        for frame in decoded:
            position = frame.pts
            if position in wanted:
                got[position] = frame.to_ndarray(format="rgb24")
            if position is not None and position >= target:
                break
    return got


_READERS = {"decord": _read_decord, "torchcodec": _read_torchcodec, "pyav": _read_pyav}

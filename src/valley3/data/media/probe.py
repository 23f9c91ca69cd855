"""Media sizes and lengths from headers and container indexes, without decoding pixels or samples.

Each probe answers what the matching loader would return after decoding (`load_image`'s upright size,
`load_audio`'s sample count, `load_video`'s frame count, rate and upright size), or None where only a decode can
tell; the caller then decodes. A file whose header is sound but whose data is corrupt passes a probe and fails
later, when the loader decodes it (a counted skip in training).
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import soundfile
import torch
from PIL import ExifTags, Image

from valley3._optional import optional_import
from valley3.data.media import MediaError, require_file
from valley3.data.media.image import _DECODE_ERRORS
from valley3.data.media.video import _probe_rotation

_MP4_FAMILY = "mov,mp4,m4a,3gp,3g2,mj2"  # FFmpeg's demuxer of the ISO base media formats
_QUARTER_TURNS = (5, 6, 7, 8)  # EXIF orientations that swap width and height


def image_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """(width, height) of the upright image `load_image` would return, from the header and EXIF orientation.

    Args:
        path: the image file.

    Raises:
        MediaError: the file is missing, empty, or its header is not an image's.
    """
    path = require_file(path)
    try:
        with Image.open(path) as image:
            width, height = image.size
            if image.format == "PNG" and "exif" not in image.info and _png_exif_after_data(path):
                return None  # Pillow finds a late eXIf chunk only by decoding the image
            orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    except _DECODE_ERRORS as exc:
        raise MediaError(path, f"cannot decode image ({exc})") from exc
    return (height, width) if orientation in _QUARTER_TURNS else (width, height)


def _png_exif_after_data(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(8)
        while len(head := f.read(8)) == 8:
            length, kind = struct.unpack(">I4s", head)
            if kind in (b"eXIf", b"IEND"):
                return kind == b"eXIf"
            f.seek(length + 4, os.SEEK_CUR)  # the chunk's data and CRC, unread
    return False


def audio_length(path: str | os.PathLike) -> tuple[int, int] | None:
    """(samples, rate) `load_audio` decodes from a file before resampling.

    soundfile's header count is exact for what soundfile decodes; other containers are read as PyAV would
    decode them (`container_audio_length`).

    Args:
        path: the audio file, or a video whose first audio stream is wanted.

    Raises:
        MediaError: the file is missing or empty, or no reader opens it.
    """
    path = require_file(path)
    try:
        info = soundfile.info(str(path))
        return info.frames, info.samplerate
    except (soundfile.LibsndfileError, RuntimeError, ValueError):
        pass
    av = optional_import("av")
    if av is None:
        return None
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise MediaError(path, "no audio stream")
            return container_audio_length(container)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(path, f"cannot decode audio ({exc})") from exc


def container_audio_length(container) -> tuple[int, int] | None:
    """(samples, rate) FFmpeg decodes from an open container's first audio stream, or None if not known.

    Known: AAC in MP4/MOV/M4A, where the sample table lists every packet and each decodes to one frame of
    `frame_size` samples; FFmpeg drops the encoder's priming samples (the first packet's negative timestamp)
    and keeps the last frame whole.

    Args:
        container: an open PyAV input container.
    """
    stream = container.streams.audio[0]
    context = stream.codec_context
    entries = stream.index_entries
    if container.format.name != _MP4_FAMILY or context.name != "aac" or not context.frame_size or not entries:
        return None
    if stream.time_base != Fraction(1, stream.rate):
        return None  # the priming is read in samples
    priming = max(0, -int(entries[0].timestamp))
    return len(entries) * context.frame_size - priming, stream.rate


def resampled_length(samples: int, rate: int, target: int) -> int:
    """The length torchaudio's `resample` gives `samples` samples at `rate` resampled to `target`."""
    if rate == target:
        return samples
    common = math.gcd(rate, target)
    # torchaudio computes this in torch's default float type; the same expression keeps long clips equal.
    return int(torch.ceil(torch.as_tensor((target // common) * samples / (rate // common))).item())


@dataclass(frozen=True)
class VideoProbe:
    """What `load_video` needs to choose frames and what shape they come out in, read from metadata."""

    frames: int  # frames in the source
    fps: float  # the source's average frame rate
    height: int  # upright frame height
    width: int  # upright frame width
    has_audio: bool  # whether the file has an audio stream
    audio: tuple[int, int] | None  # (samples, rate) of its audio, None when unknown or absent


def probe_video(path: str | os.PathLike) -> VideoProbe | None:
    """A video's frame count, rate, upright size and audio length from its container, or None (decode instead).

    Frame counts come from the MP4 sample table, else from demuxing packets without decoding them (the count
    PyAV's reader and decord's index give). The display rotation comes from the MP4 track header's matrix; other
    containers show it only on a decoded frame, so their first frame is decoded.

    Args:
        path: the video file.

    Raises:
        MediaError: the file is missing, empty, unreadable, or has no video stream.
    """
    path = require_file(path)
    av = optional_import("av")
    if av is None:
        return None
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(path, "no video stream")
            mp4 = container.format.name == _MP4_FAMILY
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            width, height = stream.codec_context.width, stream.codec_context.height
            frames = len(stream.index_entries) if mp4 else 0
            frames = frames or sum(1 for p in container.demux(stream) if p.size and p.pts is not None)
            has_audio = bool(container.streams.audio)
            audio = container_audio_length(container) if has_audio else None
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(path, f"cannot open video ({exc})") from exc
    quarter = _mp4_quarter_turn(path) if mp4 else None
    if quarter is None:
        quarter = _probe_rotation(path) in (90, 270)
    if quarter:
        width, height = height, width
    return VideoProbe(frames, fps, height, width, has_audio, audio)


def _mp4_quarter_turn(path: Path) -> bool | None:
    """Whether the first video track's display matrix turns it by a quarter; None if no video track is found."""
    with path.open("rb") as f:
        for moov in _boxes(f, 0, path.stat().st_size, b"moov"):
            for trak in _boxes(f, *moov, b"trak"):
                matrix = None
                for tkhd in _boxes(f, *trak, b"tkhd"):
                    f.seek(tkhd[0])
                    version = f.read(1)[0]
                    f.seek(tkhd[0] + (52 if version == 1 else 40))
                    matrix = struct.unpack(">9i", f.read(36))
                if matrix is not None and _handler(f, trak) == b"vide":
                    a, b = matrix[0], matrix[1]
                    return abs(b) > abs(a)  # sin beyond cos: 90 or 270 degrees, whichever way
    return None


def _handler(f, trak: tuple[int, int]) -> bytes | None:
    for mdia in _boxes(f, *trak, b"mdia"):
        for hdlr in _boxes(f, *mdia, b"hdlr"):
            f.seek(hdlr[0] + 8)  # version, flags, pre-defined
            return f.read(4)
    return None


def _boxes(f, start: int, end: int, kind: bytes):
    """(payload start, payload end) of each `kind` box between `start` and `end`, skipping the others unread."""
    at = start
    while at + 8 <= end:
        f.seek(at)
        size, name = struct.unpack(">I4s", f.read(8))
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", f.read(8))[0], 16
        elif size == 0:
            size = end - at
        if size < header:
            return
        if name == kind:
            yield at + header, at + size
        at += size

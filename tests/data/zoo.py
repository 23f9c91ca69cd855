"""A zoo of small media files in the shapes real data takes (EXIF turns, late PNG chunks, AAC/Opus tracks, rotated
and non-MP4 videos), written on the spot; used by the cost tests and `benchmarks/costs.py`."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import av
import numpy as np
import soundfile as sf
from PIL import ExifTags, Image

VIDEO_CODEC = "libx264" if "libx264" in av.codecs_available else "mpeg4"


def picture(width: int, height: int, seed: int = 0) -> Image.Image:
    """Gradients, a few blocks and mild noise: something JPEG and bicubic resizing treat like a photo."""
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.linspace(0, 1, width), np.linspace(0, 1, height))
    rgb = np.stack([x, y, 0.5 + 0.5 * np.sin(6 * (x + y))], axis=-1) * 200
    for _ in range(4):
        x0, y0 = rng.integers(0, width // 2), rng.integers(0, height // 2)
        rgb[y0 : y0 + height // 4, x0 : x0 + width // 4] = rng.integers(0, 255, 3)
    rgb += rng.normal(0, 6, rgb.shape)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def image(path: Path, width: int, height: int, orientation: int = 1, seed: int = 0, **save) -> str:
    """An image file; `orientation` is written as its EXIF orientation tag (1: upright, no tag)."""
    exif = Image.Exif()
    if orientation != 1:
        exif[ExifTags.Base.Orientation] = orientation
        save["exif"] = exif.tobytes()
    picture(width, height, seed).save(path, **save)
    return str(path)


def png_with_late_exif(path: Path, width: int, height: int, orientation: int) -> str:
    """A PNG whose eXIf chunk comes after the image data (legal; Pillow sees it only after decoding)."""
    image(path, width, height)
    data = path.read_bytes()
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    payload = exif.tobytes()[6:] if exif.tobytes().startswith(b"Exif\0\0") else exif.tobytes()
    chunk = struct.pack(">I", len(payload)) + b"eXIf" + payload + struct.pack(">I", zlib.crc32(b"eXIf" + payload))
    end = data.rindex(b"IEND") - 4
    path.write_bytes(data[:end] + chunk + data[end:])
    return str(path)


def tone(seconds: float, rate: int, channels: int = 1, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    wave = 0.3 * np.sin(2 * np.pi * hz * t)
    return np.stack([wave] * channels, axis=-1).astype(np.float32)


def sound(path: Path, seconds: float, rate: int, channels: int = 1, **options) -> str:
    """A tone written by soundfile (WAV, FLAC, OGG, MP3 by extension)."""
    sf.write(path, tone(seconds, rate, channels), rate, **options)
    return str(path)


def encoded_sound(path: Path, seconds: float, rate: int, codec: str, layout: str = "mono") -> str:
    """A tone in a container only PyAV reads (AAC in M4A, Opus in WebM)."""
    with av.open(str(path), "w") as container:
        _add_audio(container, codec, rate, layout, seconds)
    return str(path)


def _add_audio(container, codec: str, rate: int, layout: str, seconds: float, start: bool = False):
    stream = container.add_stream(codec, rate=rate, layout=layout)
    channels = 2 if layout == "stereo" else 1
    wave = np.ascontiguousarray(tone(seconds, rate, channels).T)
    step = stream.codec_context.frame_size or 1024
    frames = []
    for at in range(0, wave.shape[1], step):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave[:, at : at + step]), "fltp", layout)
        frame.sample_rate, frame.pts = rate, at
        frames.append(frame)
    if start:
        return stream, frames
    for frame in frames:
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
    return stream, []


def video(path: Path, width: int = 64, height: int = 48, frames: int = 30, fps: int = 10, rotation: int | None = None,
          audio: str | None = "aac", audio_rate: int = 16000, codec: str = VIDEO_CODEC, layout: str = "mono") -> str:
    """A clip with B-frames and several GOPs (H.264 where available), optionally a display rotation and a tone."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "23", "g": "12", "bf": "2", "preset": "veryfast"}
        if rotation is not None:
            stream.set_display_rotation(rotation)
        sound_stream, sound_frames = (None, [])
        if audio:
            sound_stream, sound_frames = _add_audio(container, audio, audio_rate, layout, frames / fps, start=True)
        base = np.asarray(picture(width, height))
        for i in range(frames):
            frame = np.roll(base, 2 * i, axis=1)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
        if sound_stream is not None:
            for frame in sound_frames:
                container.mux(sound_stream.encode(frame))
            container.mux(sound_stream.encode(None))
    return str(path)


def write_zoo(root: Path) -> dict[str, str]:
    """Every kind of file the cost tests compare, by name."""
    root.mkdir(parents=True, exist_ok=True)
    return {
        "png": image(root / "plain.png", 48, 40),
        "wide_png": image(root / "wide.png", 300, 40),
        "jpeg_turned": image(root / "turned.jpg", 96, 64, orientation=6, quality=90),
        "jpeg_upside_down": image(root / "upside.jpg", 90, 70, orientation=3),
        "jpeg_large": image(root / "large.jpg", 1200, 900, quality=90),
        "png_exif": image(root / "exif.png", 80, 30, orientation=8),
        "png_late_exif": png_with_late_exif(root / "late.png", 80, 30, orientation=6),
        "webp_turned": image(root / "turned.webp", 70, 50, orientation=5),
        "gif": image(root / "anim.gif", 40, 56),
        "wav": sound(root / "tone.wav", 1.3, 16000),
        "wav_8k": sound(root / "low.wav", 4.7, 8000),
        "wav_stereo_44k": sound(root / "stereo.wav", 2.1, 44100, channels=2),
        "flac": sound(root / "tone.flac", 1.7, 22050),
        "ogg": sound(root / "tone.ogg", 2.3, 44100),
        "mp3": sound(root / "tone.mp3", 2.37, 22050),
        "m4a": encoded_sound(root / "tone.m4a", 2.37, 44100, "aac"),
        "webm_opus": encoded_sound(root / "tone.webm", 1.9, 48000, "libopus"),
        "wav_too_short": sound(root / "click.wav", 0.005, 16000),
        "mp4": video(root / "clip.mp4"),
        "mp4_48k_stereo": video(root / "wide.mp4", 160, 90, frames=25, fps=25, audio_rate=48000, layout="stereo"),
        "mp4_silent": video(root / "silent.mp4", audio=None),
        "mp4_turned": video(root / "turned.mp4", 64, 48, frames=12, rotation=90),
        "mp4_upside_down": video(root / "upside.mp4", 64, 48, frames=12, rotation=180, audio=None),
        "mkv": video(root / "clip.mkv", 48, 32, frames=17, fps=8, audio=None, codec="mpeg4"),
        "webm": video(root / "clip.webm", 48, 32, frames=20, fps=10, audio="libopus", audio_rate=48000, codec="libvpx"),
    }

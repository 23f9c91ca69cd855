"""Tests for video decoding: sampling, backends and fallback, rotation, audio-in-video, broken files."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest
import soundfile
import torch
from PIL import Image

from valley3._optional import is_available
from valley3.data.media import MediaError, load_video, load_video_audio, sample_indices, to_pixels
from valley3.data.media import video as video_module

W, H, N, FPS, MARK = 64, 48, 30, 10, 16  # 3 s at 10 fps; a white MARK x MARK square in the top-left corner
CODEC = "libx264" if "libx264" in av.codecs_available else "mpeg4"
needs_decord = pytest.mark.skipif(not is_available("decord"), reason="decord not installed")


def _colour(i):
    """Frame i's background: the index is readable back from the red and green channels."""
    return np.array([8 * i, 240 - 8 * i, 60], dtype=np.uint8)


def _write(path, n=N, rotation=None, audio=True):
    """An H.264 (or MPEG-4) mp4 with B-frames and several GOPs, and optionally a 440 Hz mono AAC track."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(CODEC, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"crf": "4", "g": "12", "bf": "2"} if CODEC == "libx264" else {"qscale": "1", "g": "12"}
        if rotation is not None:
            stream.set_display_rotation(rotation)
        sound = container.add_stream("aac", rate=16000, layout="mono") if audio else None
        for i in range(n):
            image = np.broadcast_to(_colour(i), (H, W, 3)).copy()
            image[:MARK, :MARK] = 255
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
        if sound is not None:
            wave = (0.4 * np.sin(2 * np.pi * 440 * np.arange(2 * 16000) / 16000)).astype(np.float32)[None]
            step = sound.codec_context.frame_size or 1024
            for start in range(0, wave.shape[1], step):
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave[:, start : start + step]), "fltp", "mono")
                frame.sample_rate, frame.pts = 16000, start
                container.mux(sound.encode(frame))
            container.mux(sound.encode(None))
    return str(path)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("video")
    paths = {"clip": _write(root / "clip.mp4"), "silent": _write(root / "silent.mp4", audio=False)}
    for angle in (90, -90, 180):
        paths[f"rot{angle}"] = _write(root / f"rot{angle}.mp4", n=6, rotation=angle, audio=False)
    return paths


def _index_of(frame):
    """The source index of a decoded frame, from its background colour (well away from the marker)."""
    r, g, _ = frame[-8:, -8:].reshape(-1, 3).astype(float).mean(0)
    return round((r + 240 - g) / 16)


# --- sampling ---------------------------------------------------------------------------------------


def test_sample_indices_rules():
    assert sample_indices(30, 10.0, num_frames=4) == [3, 11, 18, 26]  # floor((j + 1/2) * 30 / 4)
    assert sample_indices(30, 10.0, num_frames=1) == [15]
    assert sample_indices(5, 10.0, num_frames=9) == [0, 1, 2, 3, 4]  # never a frame twice
    assert sample_indices(30, 10.0, fps=4) == [0, 2, 5, 7, 10, 12, 15, 17, 20, 22, 25, 27]  # floor(j * 2.5)
    assert sample_indices(30, 10.0, fps=25) == list(range(30))
    assert sample_indices(30, 10.0, fps=10, max_frames=6) == [2, 7, 12, 17, 22, 27]  # over budget: uniform
    assert sample_indices(30, 10.0) == sample_indices(30, 10.0, num_frames=32) == list(range(30))
    assert sample_indices(300, 29.97, fps=1) == [0, 29, 59, 89, 119, 149, 179, 209, 239, 269, 299]  # floor(j * 29.97)
    for bad in ({"num_frames": 2, "fps": 1.0}, {"num_frames": 0}, {"fps": 0.0}, {"max_frames": 0}):
        with pytest.raises(ValueError):
            sample_indices(30, 10.0, **bad)


@pytest.mark.parametrize("backend", ["auto", "pyav"])
def test_uniform_sampling_gives_the_expected_frames_and_times(clips, backend):
    video = load_video(clips["clip"], num_frames=4, backend=backend)
    assert video.indices == (3, 11, 18, 26)
    assert video.timestamps.tolist() == [0.3, 1.1, 1.8, 2.6]
    assert video.frames.dtype == torch.uint8 and video.frames.shape == (4, H, W, 3)
    assert [_index_of(f) for f in video.frames.numpy()] == [3, 11, 18, 26]
    assert (video.fps, video.duration, video.rotation) == (10.0, 3.0, 0)
    assert video.backend == ("decord" if backend == "auto" and is_available("decord") else "pyav")


@pytest.mark.parametrize("backend", ["auto", "pyav"])
def test_fps_sampling_and_the_max_frames_budget(clips, backend):
    video = load_video(clips["clip"], fps=2, backend=backend)
    assert video.indices == (0, 5, 10, 15, 20, 25)
    assert video.timestamps.tolist() == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert [_index_of(f) for f in video.frames.numpy()] == list(video.indices)
    capped = load_video(clips["clip"], fps=10, max_frames=6, backend=backend)
    assert capped.indices == (2, 7, 12, 17, 22, 27) and capped.num_frames == 6


@needs_decord
def test_pyav_fallback_decodes_the_same_frames_as_decord(clips):
    ref = load_video(clips["clip"], fps=10, backend="decord")
    alt = load_video(clips["clip"], fps=10, backend="pyav")
    assert ref.backend == "decord" and alt.backend == "pyav" and ref.num_frames == N
    assert ref.indices == alt.indices and torch.equal(ref.timestamps, alt.timestamps)
    assert (ref.frames.int() - alt.frames.int()).abs().max() <= 2  # same decoder, colour conversion may round


def test_pyav_in_order_decoding_matches_keyframe_seeking(clips):
    # The path taken when a seek overshoots (a missing or coarse index): same frames, decoded in order.
    with av.open(clips["clip"]) as container:
        stream = container.streams.video[0]
        pts = sorted(p.pts for p in container.demux(stream) if p.size)
    wanted = {pts[i] for i in (1, 13, 14, 29)}
    results = []
    for keys in (None, [pts[0], pts[12], pts[24]]):
        with av.open(clips["clip"]) as container:
            results.append(video_module._pyav_frames(container, container.streams.video[0], wanted, keys))
    assert sorted(results[0]) == sorted(results[1]) == sorted(wanted)
    assert all(np.array_equal(results[0][p], results[1][p]) for p in wanted)
    assert [_index_of(results[0][p]) for p in sorted(wanted)] == [1, 13, 14, 29]


def test_auto_falls_back_when_decord_is_missing_or_fails(clips, monkeypatch, caplog):
    real_import = video_module.optional_import
    monkeypatch.setattr(video_module, "optional_import", lambda n: None if n == "decord" else real_import(n))
    video_module._note_missing.cache_clear()
    with caplog.at_level(logging.INFO, logger=video_module.__name__):
        video = load_video(clips["clip"], num_frames=2)
        load_video(clips["clip"], num_frames=2)
    assert video.backend in ("torchcodec", "pyav") and video.indices == (7, 22)
    assert caplog.text.count("video backend decord is not installed") == 1  # once, not once per video
    monkeypatch.undo()

    def broken(*args):
        raise RuntimeError("boom")

    monkeypatch.setitem(video_module._READERS, "decord", broken)
    monkeypatch.setitem(video_module._READERS, "torchcodec", broken)
    with caplog.at_level(logging.INFO, logger=video_module.__name__):
        video = load_video(clips["clip"], num_frames=2)
    assert video.backend == "pyav" and video.indices == (7, 22)
    if is_available("decord"):
        assert f"{clips['clip']}: decord could not decode it (boom)" in caplog.text


def _fake_torchcodec(rotates):
    """torchcodec's VideoDecoder API over frames PyAV decoded; `rotates` mimics >= 0.11 (metadata.rotation)."""

    class VideoDecoder:
        def __init__(self, path, dimension_order, seek_mode):
            assert (dimension_order, seek_mode) == ("NHWC", "exact")
            raw = video_module._read_pyav(av, Path(path), lambda total, fps: list(range(total)))  # not rotated
            self.frames = torch.from_numpy(raw.frames)
            self.metadata = SimpleNamespace(average_fps=10.0, duration_seconds=3.0)
            if rotates:
                self.metadata.rotation = None

        def __len__(self):
            return len(self.frames)

        def get_frames_at(self, indices):
            pts = torch.tensor(indices, dtype=torch.float32) / 10 + 1.5  # a stream that starts at 1.5 s
            return SimpleNamespace(data=self.frames[indices], pts_seconds=pts)

        def get_frame_at(self, index):
            return SimpleNamespace(pts_seconds=index / 10 + 1.5)

    return SimpleNamespace(VideoDecoder=VideoDecoder)


@pytest.mark.parametrize("rotates", [False, True])
def test_torchcodec_backend_glue(clips, monkeypatch, rotates):
    real_import = video_module.optional_import
    fake = _fake_torchcodec(rotates)
    monkeypatch.setattr(
        video_module, "optional_import", lambda n: fake if n == "torchcodec.decoders" else real_import(n)
    )
    video = load_video(clips["clip"], num_frames=2, backend="torchcodec")
    assert video.backend == "torchcodec" and video.indices == (7, 22) and video.timestamps.tolist() == [0.7, 2.2]
    assert [_index_of(f) for f in video.frames.numpy()] == [7, 22]
    # The fake hands back unrotated frames: a torchcodec without metadata.rotation is rotated here.
    turned = load_video(clips["rot90"], num_frames=1, backend="torchcodec").frames[0].numpy()
    assert _marker_corner(turned) == (["top-left"] if rotates else ["bottom-left"])


# --- rotation ---------------------------------------------------------------------------------------


def _marker_corner(frame):
    corners = {
        "top-left": frame[:4, :4],
        "top-right": frame[:4, -4:],
        "bottom-left": frame[-4:, :4],
        "bottom-right": frame[-4:, -4:],
    }
    return [name for name, patch in corners.items() if patch.min() > 230]


# Display-matrix angles are counter-clockwise: at 90 the top-left marker turns to the bottom-left.
@pytest.mark.parametrize("angle, corner", [(90, "bottom-left"), (-90, "top-right"), (180, "bottom-right")])
@pytest.mark.parametrize("backend", ["auto", "pyav"])
def test_rotated_video_comes_back_upright(clips, angle, corner, backend):
    video = load_video(clips[f"rot{angle}"], num_frames=3, backend=backend)
    assert video.rotation == angle % 360
    assert video.frames.shape[1:3] == ((W, H) if angle % 180 else (H, W))
    assert all(_marker_corner(f) == [corner] for f in video.frames.numpy())


@needs_decord
def test_forced_decord_refuses_quarter_turns_instead_of_returning_mis_shaped_frames(clips):
    with pytest.raises(MediaError, match="decord: skipped"):
        load_video(clips["rot90"], backend="decord")
    assert _marker_corner(load_video(clips["rot180"], num_frames=1, backend="decord").frames[0].numpy()) == [
        "bottom-right"
    ]


def _ffmpeg(*args):
    return subprocess.run(["ffmpeg", "-v", "error", "-y", *map(str, args)], capture_output=True, check=False)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg CLI not installed")
def test_phone_style_rotate_tag_matches_what_ffmpeg_displays(clips, tmp_path):
    # FFmpeg 5.x turns the legacy tag into a display matrix; FFmpeg >= 6 dropped it for -display_rotation.
    tagged, shown = tmp_path / "tagged.mp4", tmp_path / "shown.png"
    run = _ffmpeg("-i", clips["silent"], "-c", "copy", "-metadata:s:v:0", "rotate=90", tagged)
    if run.returncode or video_module._probe_rotation(tagged) == 0:
        run = _ffmpeg("-display_rotation", "90", "-i", clips["silent"], "-c", "copy", tagged)
    assert run.returncode == 0, run.stderr.decode()
    assert _ffmpeg("-i", tagged, "-frames:v", "1", shown).returncode == 0  # ffmpeg autorotates by default
    reference = np.asarray(Image.open(shown)).astype(int)
    for backend in ("auto", "pyav"):
        frame = load_video(tagged, num_frames=30, backend=backend).frames[0].numpy().astype(int)
        assert frame.shape == reference.shape and np.abs(frame - reference).max() <= 2


# --- audio and pixels -------------------------------------------------------------------------------


def test_audio_track_of_a_video_and_a_video_without_one(clips):
    wave = load_video_audio(clips["clip"], 16000)
    assert wave.dtype == torch.float32 and abs(wave.numel() - 32000) <= 2048  # AAC priming and padding
    peak = torch.fft.rfft(wave[2048:-2048]).abs().argmax().item() * 16000 / (wave.numel() - 4096)
    assert abs(peak - 440) < 5
    assert load_video_audio(clips["silent"], 16000) is None
    assert load_video(clips["silent"], num_frames=2).num_frames == 2  # no audio track is fine for the video


def test_video_pixels_follow_the_image_path(clips):
    video = load_video(clips["clip"], num_frames=2)
    pixels = video.pixels(32, (0.5,) * 3, (0.5,) * 3)
    assert pixels.shape == (2, 3, 32, 32) and pixels.dtype == torch.float32
    expected = to_pixels(Image.fromarray(video.frames[1].numpy()), 32, (0.5,) * 3, (0.5,) * 3)
    assert torch.equal(pixels[1], expected)


# --- broken files -----------------------------------------------------------------------------------


def test_unreadable_videos_raise_media_error_naming_the_file(clips, tmp_path):
    data = Path(clips["clip"]).read_bytes()
    (tmp_path / "noise.mp4").write_bytes(os.urandom(4096))
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.mp4").write_bytes(b"")
    faststart = tmp_path / "faststart.mp4"  # index first, so the cut loses frames, not the header
    with av.open(clips["silent"]) as src, av.open(str(faststart), "w", options={"movflags": "faststart"}) as dst:
        out = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = out
                dst.mux(packet)
    (tmp_path / "cut_late.mp4").write_bytes(faststart.read_bytes()[: faststart.stat().st_size * 2 // 3])
    soundfile.write(tmp_path / "tone.wav", np.zeros(1600), 16000)
    cases = {
        "noise.mp4": "cannot",
        "cut.mp4": "cannot",
        "cut_late.mp4": "cannot decode video",
        "empty.mp4": "zero-length",
        "missing.mp4": "no such file",
        "tone.wav": "no video stream",
    }
    for name, reason in cases.items():
        with pytest.raises(MediaError) as info:
            load_video(tmp_path / name, fps=10)
        assert info.value.path == str(tmp_path / name) and reason in info.value.reason
    for name in ("noise.mp4", "empty.mp4", "missing.mp4"):
        with pytest.raises(MediaError, match=name):
            load_video_audio(tmp_path / name, 16000)

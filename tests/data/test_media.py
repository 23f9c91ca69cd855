"""Tests for image and audio loading, pixel normalisation and the Whisper log-mel features."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
import soundfile
import torch
from PIL import Image

from valley3.data.media import MediaError, load_audio, load_image, log_mel, num_frames, to_pixels
from valley3.data.media import audio as audio_module

_real_read_pyav = audio_module._read_pyav


def _sine(freq, rate, seconds, amp=0.5):
    return amp * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)


def _encode_av(path, codec, wave, rate):
    """Write a stereo [2, T] waveform with PyAV, in the codec's frame size."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout="stereo")
        step = stream.codec_context.frame_size or 1024
        for start in range(0, wave.shape[1], step):
            chunk = np.ascontiguousarray(wave[:, start : start + step], dtype=np.float32)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = rate, start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


# --- images -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt, suffix", [("PNG", "png"), ("JPEG", "jpg")])
def test_load_image_rgb_round_trip(tmp_path, fmt, suffix):
    path = tmp_path / f"a.{suffix}"
    Image.new("RGB", (30, 20), (200, 40, 10)).save(path, fmt, quality=100)
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (30, 20)
    assert np.abs(np.asarray(image).astype(int) - [200, 40, 10]).max() <= 2  # JPEG rounding


def test_load_image_converts_greyscale_and_composites_alpha_on_white(tmp_path):
    Image.new("L", (4, 4), 90).save(tmp_path / "grey.png")
    assert np.asarray(load_image(tmp_path / "grey.png")).tolist() == [[[90, 90, 90]] * 4] * 4
    rgba = Image.new("RGBA", (2, 1), (0, 0, 0, 0))
    rgba.putpixel((1, 0), (10, 20, 30, 255))
    rgba.save(tmp_path / "alpha.png")
    image = load_image(tmp_path / "alpha.png")
    assert image.mode == "RGB"
    assert np.asarray(image).tolist() == [[[255, 255, 255], [10, 20, 30]]]


def _bad_images(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, "PNG")
    (tmp_path / "truncated.png").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    (tmp_path / "noise.jpg").write_bytes(np.random.default_rng(1).integers(0, 256, 2048, dtype=np.uint8).tobytes())
    (tmp_path / "empty.png").write_bytes(b"")
    return {"truncated.png": "cannot decode", "noise.jpg": "cannot decode", "empty.png": "zero-length",
            "missing.png": "no such file"}


def test_unreadable_images_raise_media_error_naming_the_path(tmp_path):
    for name, reason in _bad_images(tmp_path).items():
        with pytest.raises(MediaError) as info:
            load_image(tmp_path / name)
        assert info.value.path == str(tmp_path / name)
        assert str(info.value).startswith(f"{tmp_path / name}: ") and reason in info.value.reason


def test_to_pixels_constant_colour_exact_values():
    image = Image.new("RGB", (50, 30), (255, 0, 51))
    pixels = to_pixels(image, (24, 40), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    assert pixels.shape == (3, 24, 40) and pixels.dtype == torch.float32
    expected = torch.tensor([1.0, -1.0, 51 / 255 * 2 - 1]).view(3, 1, 1).expand(3, 24, 40)
    torch.testing.assert_close(pixels, expected, atol=1e-6, rtol=0)
    clip = to_pixels(image, 7, mean=(0.48145466, 0.4578275, 0.40821073), std=(0.26862954, 0.26130258, 0.27577711))
    assert clip.shape == (3, 7, 7)
    torch.testing.assert_close(clip[:, 3, 3], torch.tensor([(1 - 0.48145466) / 0.26862954, -0.4578275 / 0.26130258,
                                                            (0.2 - 0.40821073) / 0.27577711]), atol=1e-5, rtol=0)


def test_to_pixels_matches_siglip_image_processor():
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    image = Image.fromarray(np.random.default_rng(2).integers(0, 256, (37, 53, 3), dtype=np.uint8))
    reference = SiglipImageProcessorPil(size={"height": 32, "width": 24}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    expected = reference(image, return_tensors="pt")["pixel_values"][0]
    torch.testing.assert_close(to_pixels(image, (32, 24), [0.5] * 3, [0.5] * 3), expected, atol=1e-5, rtol=0)


# --- audio ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rate, seconds, suffix, subtype", [(8000, 1.0, "wav", "PCM_16"), (44100, 0.5, "flac", "PCM_24")]
)
def test_load_audio_resamples_stereo_to_16k_mono(tmp_path, rate, seconds, suffix, subtype):
    left, right = _sine(440, rate, seconds, 0.6), _sine(440, rate, seconds, 0.2)
    path = tmp_path / f"a.{suffix}"
    soundfile.write(path, np.stack([left, right], axis=1), rate, subtype=subtype)
    wave = load_audio(path, 16000)
    assert wave.dtype == torch.float32 and wave.shape == (int(16000 * seconds),)
    middle = slice(1000, len(wave) - 1000)  # the resampling filter rings at the edges
    np.testing.assert_allclose(wave[middle].numpy(), _sine(440, 16000, seconds, 0.4)[middle], atol=2e-3)


def test_load_audio_averages_channels_without_resampling(tmp_path):
    soundfile.write(tmp_path / "c.wav", np.stack([np.full(100, 0.5), np.full(100, 0.25)], 1), 16000, subtype="FLOAT")
    assert torch.equal(load_audio(tmp_path / "c.wav", 16000), torch.full((100,), 0.375))
    assert load_audio(tmp_path / "c.wav", 8000).shape == (50,)


@pytest.mark.parametrize("suffix, codec", [("m4a", "aac"), ("mp3", "libmp3lame")])
def test_load_audio_compressed_containers(tmp_path, monkeypatch, suffix, codec):
    path = tmp_path / f"a.{suffix}"
    _encode_av(path, codec, np.stack([_sine(440, 44100, 1.0, 0.6), _sine(440, 44100, 1.0, 0.2)]), 44100)
    used_pyav = []
    monkeypatch.setattr(audio_module, "_read_pyav", lambda p: used_pyav.append(p) or _real_read_pyav(p))
    wave = load_audio(path, 16000).numpy()
    if suffix == "m4a":
        assert used_pyav == [path]  # soundfile cannot read MP4 containers
    # Codecs pad with up to a few frames of priming/padding samples.
    assert 16000 <= len(wave) <= 16000 + 3 * 1152 * 16000 // 44100
    middle = wave[2000:14000]
    assert abs(np.sqrt(np.mean(middle**2)) - 0.4 / np.sqrt(2)) < 0.02
    spectrum = np.abs(np.fft.rfft(middle))
    assert abs(np.argmax(spectrum) * 16000 / len(middle) - 440) < 3


def test_unreadable_audio_raises_media_error_naming_the_path(tmp_path):
    (tmp_path / "noise.wav").write_bytes(np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (tmp_path / "noise.m4a").write_bytes(np.random.default_rng(4).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (tmp_path / "empty.wav").write_bytes(b"")
    soundfile.write(tmp_path / "silent.wav", np.zeros((0, 1)), 16000)
    cases = {"noise.wav": "cannot decode", "noise.m4a": "cannot decode", "empty.wav": "zero-length",
             "missing.wav": "no such file", "silent.wav": "no samples"}
    for name, reason in cases.items():
        with pytest.raises(MediaError) as info:
            load_audio(tmp_path / name, 16000)
        assert info.value.path == str(tmp_path / name) and reason in info.value.reason, str(info.value)
        assert str(info.value).startswith(f"{tmp_path / name}: ")


# --- log-mel ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_mels", [80, 128])
@pytest.mark.parametrize("n_samples", [201, 1234, 16000, 16000 * 31 + 77])
def test_log_mel_matches_whisper_feature_extractor(n_mels, n_samples):
    from transformers import WhisperFeatureExtractor

    rng = np.random.default_rng(n_samples)
    wave = (rng.standard_normal(n_samples) * 0.1 + _sine(300, 16000, n_samples / 16000, 0.3)).astype(np.float32)
    extractor = WhisperFeatureExtractor(feature_size=n_mels, sampling_rate=16000)
    # truncation=False as well: "do_not_pad" alone still cuts inputs at 30 s
    expected = extractor(wave, sampling_rate=16000, padding="do_not_pad", truncation=False, return_tensors="pt")
    features = log_mel(torch.from_numpy(wave), n_mels=n_mels)
    assert features.shape == (n_mels, num_frames(n_samples))
    torch.testing.assert_close(features, expected["input_features"][0], atol=1e-4, rtol=0)


@pytest.mark.parametrize("n_samples, frames", [(201, 1), (319, 1), (320, 2), (321, 2), (16000, 100), (16159, 100)])
def test_num_frames_is_exact(n_samples, frames):
    assert num_frames(n_samples) == frames
    assert log_mel(torch.zeros(n_samples)).shape == (80, frames)


def test_log_mel_rejects_too_short_or_multichannel_input():
    with pytest.raises(ValueError, match="at least 201 samples"):
        log_mel(torch.zeros(200))
    with pytest.raises(ValueError, match="mono"):
        log_mel(torch.zeros(2, 1600))

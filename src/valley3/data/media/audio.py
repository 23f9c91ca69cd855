"""Audio loading (soundfile, PyAV fallback) to mono at a target rate, and the Whisper log-mel spectrogram."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio.functional as AF

from valley3.data.media import MediaError, require_file


def load_audio(path: str | os.PathLike, sampling_rate: int) -> torch.Tensor:
    """Decode an audio file to a mono float32 waveform [T] at `sampling_rate` (channels averaged).

    WAV/FLAC/OGG (and MP3 with libsndfile >= 1.1) are read by soundfile; other containers (m4a, mp4,
    webm, ...) by PyAV. torchaudio >= 2.9 no longer decodes files, so it is used only to resample.

    Args:
        path: the audio file, or a video file whose first audio stream is wanted.
        sampling_rate: the rate of the returned waveform, e.g. 16000 for Whisper-style encoders.

    Raises:
        MediaError: the file is missing, zero-length, undecodable, or holds no samples.
    """
    path = require_file(path)
    try:
        wave, rate = _read_soundfile(path)
    except (soundfile.LibsndfileError, RuntimeError, ValueError):
        wave, rate = _read_pyav(path)
    if wave.size == 0:
        raise MediaError(path, "audio has no samples")
    if not np.isfinite(wave).all():
        raise MediaError(path, "audio has NaN or infinite samples")
    wave_t = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))
    if rate != sampling_rate:
        wave_t = AF.resample(wave_t, rate, sampling_rate)
    return wave_t


def num_frames(n_samples: int, hop_length: int = 160) -> int:
    """The number of frames `log_mel` returns for `n_samples` samples.

    The centred STFT gives 1 + n // hop frames and Whisper drops the last one, so n // hop remain.

    Args:
        n_samples: waveform length in samples (`log_mel` needs at least max(n_fft // 2 + 1, hop_length)).
        hop_length: STFT hop, in samples.
    """
    return n_samples // hop_length


def mel_frames(n_samples: int, n_fft: int = 400, hop_length: int = 160) -> int:
    """`num_frames(n_samples)`, or ValueError when the clip is too short for `log_mel`.

    Args:
        n_samples: waveform length in samples.
        n_fft: STFT window and FFT size.
        hop_length: STFT hop, in samples.
    """
    # The centred STFT reflect-pads n_fft // 2 samples each side, which needs a longer signal.
    if n_samples <= n_fft // 2 or num_frames(n_samples, hop_length) < 1:
        raise ValueError(f"log_mel needs at least {max(n_fft // 2 + 1, hop_length)} samples, got {n_samples}")
    return num_frames(n_samples, hop_length)


def log_mel(
    wave: torch.Tensor,
    sampling_rate: int = 16000,
    n_mels: int = 80,
    n_fft: int = 400,
    hop_length: int = 160,
) -> torch.Tensor:
    """Whisper's log-mel spectrogram [n_mels, num_frames(T)] of a mono waveform, without 30 s padding.

    Equals transformers' `WhisperFeatureExtractor(feature_size=n_mels)(wave, sampling_rate=16000,
    padding="do_not_pad", truncation=False)` at 16 kHz. Runs on the waveform's device.

    Args:
        wave: mono waveform [T] at `sampling_rate`.
        sampling_rate: its rate; the mel filters span 0 to sampling_rate / 2.
        n_mels: mel bins (80 for Whisper up to large-v2, 128 for large-v3 and Qwen audio encoders).
        n_fft: STFT window and FFT size.
        hop_length: STFT hop, in samples.
    """
    wave = torch.as_tensor(wave).to(torch.float32)
    if wave.dim() != 1:
        raise ValueError(f"log_mel expects a mono waveform [T], got shape {tuple(wave.shape)}")
    mel_frames(wave.shape[0], n_fft, hop_length)
    window = torch.hann_window(n_fft, device=wave.device)  # periodic, as Whisper uses
    stft = torch.stft(wave, n_fft, hop_length, window=window, return_complex=True)
    power = stft[:, :-1].abs() ** 2
    filters = _mel_filters(n_mels, n_fft, sampling_rate).to(wave.device)
    log_spec = torch.clamp(filters.T @ power, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0


@functools.lru_cache(maxsize=8)
def _mel_filters(n_mels: int, n_fft: int, sampling_rate: int) -> torch.Tensor:
    # transformers' float64 slaney filters, the ones WhisperFeatureExtractor uses; torchaudio's float32
    # melscale_fbanks differs by up to 0.3% on the triangles' tails.
    from transformers.audio_utils import mel_filter_bank

    filters = mel_filter_bank(
        num_frequency_bins=n_fft // 2 + 1,
        num_mel_filters=n_mels,
        min_frequency=0.0,
        max_frequency=sampling_rate / 2,
        sampling_rate=sampling_rate,
        norm="slaney",
        mel_scale="slaney",
    )
    return torch.from_numpy(filters).to(torch.float32)


def _read_soundfile(path: Path) -> tuple[np.ndarray, int]:
    data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    return data.mean(axis=1), rate


def _read_pyav(path: Path) -> tuple[np.ndarray, int]:
    import av  # only containers soundfile cannot read need it

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise MediaError(path, "no audio stream")
            stream = container.streams.audio[0]
            # Planar float keeps channels apart, so they are averaged the same way as soundfile's.
            resampler = av.AudioResampler(format="fltp")
            chunks, rate = [], stream.rate
            for frame in container.decode(stream):
                rate = frame.sample_rate
                chunks += [f.to_ndarray() for f in resampler.resample(frame)]
            chunks += [f.to_ndarray() for f in resampler.resample(None)]
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise MediaError(path, f"cannot decode audio ({exc})") from exc
    if not chunks or not rate:
        return np.zeros(0, dtype=np.float32), rate or 0
    return np.concatenate(chunks, axis=1).mean(axis=0), rate

"""Whisper audio encoder from transformers, pooled 2x (Qwen2-Audio style: 25 tokens per second)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import WhisperConfig, WhisperModel
from transformers.models.whisper.modeling_whisper import WhisperEncoder as _HFWhisperEncoder

from valley3.models.audio.base import AudioEncoder
from valley3.models.presets import AUDIO, resolve
from valley3.models.init_args import records_init_args
from valley3.models.weights import load_pretrained


@records_init_args
class WhisperEncoder(AudioEncoder):
    """Whisper's encoder over fixed windows; a long clip is cut into windows encoded in one batch.

    Whisper only accepts exactly `2 * max_source_positions` mel frames, so each window is padded to
    that length and only the features of real frames are kept: a clip's token count depends on its
    own length alone, never on the batch.

    Args:
        preset: a named shape from `valley3.models.presets.AUDIO` (e.g. "tiny-whisper").
        config: WhisperConfig keywords, applied on top of the preset.
        path: a local Whisper checkpoint folder; only its encoder is kept.
        pool: average-pooling stride over encoder frames (2 gives Whisper-large's 25 tokens/s).
    """

    sampling_rate = 16000
    n_fft = 400
    hop_length = 160

    def __init__(
        self, preset: str | None = None, config: dict[str, Any] | None = None, path: str | None = None, pool: int = 2
    ):
        super().__init__()
        if path is not None:
            self.model = load_pretrained(WhisperModel, path).get_encoder()
        else:
            self.model = _HFWhisperEncoder(WhisperConfig(**resolve(AUDIO, preset, config)))
        cfg = self.model.config
        self.embed_dim = cfg.d_model
        self.n_mels = cfg.num_mel_bins
        self.window = 2 * cfg.max_source_positions  # mel frames per encoder call
        self.pool = pool

    def _window_tokens(self, frames: int) -> int:
        # conv2 has kernel 3, stride 2, padding 1; pooling floors.
        return ((frames - 1) // 2 + 1) // self.pool

    def num_tokens(self, num_frames: int) -> int:
        full, rest = divmod(num_frames, self.window)
        return full * self._window_tokens(self.window) + (self._window_tokens(rest) if rest else 0)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        windows, keep = [], []
        for clip, length in zip(features, lengths.tolist()):
            for start in range(0, length, self.window):
                chunk = clip[:, start : min(start + self.window, length)]
                keep.append(self._window_tokens(chunk.shape[-1]))
                windows.append(F.pad(chunk, (0, self.window - chunk.shape[-1])))
        hidden = self.model(torch.stack(windows).to(self.model.conv1.weight.dtype)).last_hidden_state
        if self.pool > 1:
            hidden = F.avg_pool1d(hidden.transpose(1, 2), self.pool, self.pool).transpose(1, 2)
        return torch.cat([h[:n] for h, n in zip(hidden, keep)])

    @property
    def block_classes(self) -> set[type[nn.Module]]:
        return {type(layer) for layer in self.model.layers}

"""Qwen3-Omni's AuT audio encoder from transformers (the one Valley3 uses): about 13 tokens per second."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import AutoConfig
from transformers.models.qwen3_omni_moe.configuration_qwen3_omni_moe import Qwen3OmniMoeAudioEncoderConfig
from transformers.models.qwen3_omni_moe.modeling_qwen3_omni_moe import Qwen3OmniMoeAudioEncoder

from valley3.compat import aut_output_lengths
from valley3.models.audio.base import AudioEncoder
from valley3.models.presets import AUDIO, resolve
from valley3.models.weights import load_pretrained, local_folder, on_meta, tower_state
from valley3.models.init_args import records_init_args

_TOWER_PREFIX = "thinker.audio_tower."  # where a full Qwen3-Omni checkpoint keeps the encoder


@records_init_args
class AuTEncoder(AudioEncoder):
    """AuT: log-mel clips cut into chunks of `2 * n_window` frames (1 s), each downsampled 8x by three
    stride-2 convs (100 frames -> 13 tokens), then attention within windows of `n_window_infer` frames.

    Clips never attend to each other, so a clip's tokens depend on its own frames alone. The token count
    is derived from the conv layers' own kernel, stride and padding, and checked at construction against
    transformers' length formula (which assumes `n_window` = 50).

    Args:
        preset: a named shape from `valley3.models.presets.AUDIO` (e.g. "aut").
        config: Qwen3OmniMoeAudioEncoderConfig keywords, applied on top of the preset.
        path: a local folder with a Qwen3-Omni checkpoint (its `thinker.audio_tower` is read) or the encoder alone.
    """

    sampling_rate = 16000
    n_fft = 400
    hop_length = 160

    def __init__(self, preset: str | None = None, config: dict[str, Any] | None = None, path: str | None = None):
        super().__init__()
        if path is not None:
            self.model = _load(path)
        else:
            self.model = Qwen3OmniMoeAudioEncoder(Qwen3OmniMoeAudioEncoderConfig(**resolve(AUDIO, preset, config)))
        cfg = self.model.config
        self.embed_dim = cfg.output_dim
        self.n_mels = cfg.num_mel_bins
        self.chunk = 2 * cfg.n_window  # mel frames per conv chunk
        self.chunk_tokens = self._conv_tokens(self.chunk)
        expected = int(aut_output_lengths(self.chunk, cfg.n_window))
        if self.chunk_tokens != expected:
            raise ValueError(
                f"n_window={cfg.n_window}: the convs give {self.chunk_tokens} tokens per chunk but transformers' "
                f"AuT assumes {expected}; keep n_window at 50"
            )

    def _conv_tokens(self, frames: int) -> int:
        for conv in (self.model.conv2d1, self.model.conv2d2, self.model.conv2d3):  # time is the conv's last axis
            k, s, p, d = conv.kernel_size[1], conv.stride[1], conv.padding[1], conv.dilation[1]
            frames = (frames + 2 * p - d * (k - 1) - 1) // s + 1
        return frames

    def num_tokens(self, num_frames: int) -> int:
        full, rest = divmod(num_frames, self.chunk)
        return full * self.chunk_tokens + (self._conv_tokens(rest) if rest else 0)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # transformers takes the clips concatenated along time, [n_mels, sum(lengths)], with their lengths.
        flat = torch.cat([clip[:, :n] for clip, n in zip(features, lengths.tolist())], dim=1)
        out = self.model(input_features=flat.to(self.model.conv2d1.weight.dtype), feature_lens=lengths)
        return out.last_hidden_state

    @property
    def block_classes(self) -> set[type[nn.Module]]:
        return {type(layer) for layer in self.model.layers}


def _load(path: str) -> Qwen3OmniMoeAudioEncoder:
    """The encoder from a local folder: a full Qwen3-Omni checkpoint (only the audio tower is read) or the encoder."""
    cfg = AutoConfig.from_pretrained(local_folder(path), local_files_only=True)
    if cfg.model_type != "qwen3_omni_moe":
        return load_pretrained(Qwen3OmniMoeAudioEncoder, path)
    model = Qwen3OmniMoeAudioEncoder(cfg.thinker_config.audio_config)
    if on_meta():  # shapes only (valley3 inspect): the tower's weights are not read
        return model
    state = tower_state(path, (_TOWER_PREFIX,))
    model.load_state_dict(state)  # strict: a missing weight is an error, not a random init
    return model

"""The contract every audio encoder meets: log-mel frames in, a known number of features out."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import nn



class AudioEncoder(nn.Module, ABC):
    """Maps log-mel features to a variable number of feature rows per clip.

    Subclasses set `embed_dim` and the feature-extraction settings their checkpoint expects
    (`sampling_rate`, `n_mels`, `n_fft`, `hop_length`), which the processor reads.
    """

    embed_dim: int
    sampling_rate: int
    n_mels: int
    n_fft: int
    hop_length: int

    @abstractmethod
    def num_tokens(self, num_frames: int) -> int:
        """Feature rows produced for a clip of `num_frames` log-mel frames."""

    def seconds_to_tokens(self, seconds: float) -> int:
        """Tokens for a clip of this duration (for `valley3 inspect` and budgets)."""
        return self.num_tokens(math.floor(seconds * self.sampling_rate / self.hop_length))

    @abstractmethod
    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """[A, n_mels, T] padded clips with true frame counts [A] -> [sum_i num_tokens(lengths_i), D]."""

    @property
    @abstractmethod
    def block_classes(self) -> set[type[nn.Module]]:
        """Module classes FSDP wraps one by one (the transformer blocks)."""

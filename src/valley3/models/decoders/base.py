"""The decoder contract OmniModel codes against, and which of the two architectures a decoder belongs to."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import nn

from valley3.compat import no_split_modules


class Decoder(nn.Module, ABC):
    """A transformers model (`self.model`) that OmniModel feeds with token embeddings.

    Two architectures, declared by `owns_vision`:

    - False ("composed encoders", `HFDecoder`): any causal LM. OmniModel's own vision and audio towers and
      connectors turn media into features and scatter them into the embeddings; the decoder sees embeddings only.
      `forward(embeds, attention_mask, position_ids, cu_seqlens)`, `prefill(embeds, attention_mask)`.
    - True ("the decoder owns vision", `Qwen3VLDecoder`): the decoder carries its own ViT, merger and DeepStack and
      its own position ids (TM-RoPE), so it takes the tokens and the pictures too (`VisionInputs` keywords:
      input_ids, token_ids, pixel_values, video_pixels, video_frames, video_timestamps, dummy_inputs). It also
      answers what the processor asks of a vision tower: `image_num_tokens`, `input_size`, `temporal_patch_size`,
      `image_mean` / `image_std`, and splits itself into `components()` ("vision", "decoder").

    Subclasses set `self.model` and `self.tokenizer_path`, and define `hidden_size`, `forward`, `prefill`, `step`.
    """

    owns_vision: ClassVar[bool] = False
    model: nn.Module
    tokenizer_path: str

    @property
    @abstractmethod
    def hidden_size(self) -> int:
        """The width of the embeddings the decoder takes."""

    @abstractmethod
    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, cu_seqlens: torch.Tensor | None = None,
                **vision: Any) -> torch.Tensor:
        """Logits [B, L, vocab]; `vision` only for a decoder that owns vision."""

    @property
    def vocab_size(self) -> int:
        return self.model.get_input_embeddings().num_embeddings

    def resize_vocab(self, size: int) -> None:
        """Grow the embeddings when the tokenizer gained tokens (template or media specials)."""
        if size > self.vocab_size:
            self.model.resize_token_embeddings(size, mean_resizing=False)

    def embed_tokens(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model.get_input_embeddings()(input_ids)

    @property
    def block_classes(self) -> set[type[nn.Module]]:
        """The transformer block classes FSDP wraps one by one."""
        names = no_split_modules(self.model)
        return {type(m) for m in self.model.modules() if type(m).__name__ in names}

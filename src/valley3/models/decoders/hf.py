"""Decoder wrapper over any transformers causal LM, built from a config or loaded from a local path."""

from __future__ import annotations

from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, DynamicCache

from valley3.assets import tiny_tokenizer_dir
from valley3.models.attention import packed_inputs, register_backends, resolve_backend
from valley3.models.decoders.base import Decoder
from valley3.models.decoding import DecodeState
from valley3.models.init_args import records_init_args
from valley3.models.presets import DECODERS, resolve
from valley3.models.weights import load_pretrained


@records_init_args
class HFDecoder(Decoder):
    """A causal LM that OmniModel feeds with input embeddings (any transformers one; composed encoders, see `Decoder`).

    Args:
        preset: a named shape from `valley3.models.presets.DECODERS` (e.g. "tiny-qwen3").
        config: config keywords (with `model_type`), applied on top of the preset.
        path: a local checkpoint folder; wins over preset/config.
        tokenizer: the tokenizer folder; defaults to `path`, else the project's tiny tokenizer.
        attn_implementation: "sdpa" (default), "eager", "flash_attention_2", "sdpa_varlen" (one SDPA call per
            packed sample, the fast CPU path for packing) or "auto" (flash-attn where installed on a GPU, else
            "sdpa_varlen"). Packed samples are kept apart on every one (see `valley3.models.attention`).
        dtype: parameter dtype, e.g. "float32" or "bfloat16".
    """

    def __init__(
        self,
        preset: str | None = None,
        config: dict[str, Any] | None = None,
        path: str | None = None,
        tokenizer: str | None = None,
        attn_implementation: str = "sdpa",
        dtype: str = "float32",
    ):
        super().__init__()
        torch_dtype = getattr(torch, dtype)
        register_backends()
        attn_implementation = resolve_backend(attn_implementation)
        if path is not None:
            self.model = load_pretrained(AutoModelForCausalLM, path, attn_implementation=attn_implementation,
                                         dtype=torch_dtype)
        else:
            kwargs = resolve(DECODERS, preset, config)
            cfg = AutoConfig.for_model(kwargs.pop("model_type"), **kwargs)
            self.model = AutoModelForCausalLM.from_config(cfg, attn_implementation=attn_implementation, dtype=torch_dtype)
        self.tokenizer_path = tokenizer or path or tiny_tokenizer_dir()

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    def forward(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cu_seqlens: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits. With `cu_seqlens` (sample boundaries over the flattened rows) the batch is packed: each
        sample attends only to itself, and `attention_mask` is replaced by the backend's own isolation."""
        kwargs = {"attention_mask": attention_mask}
        if cu_seqlens is not None:
            kwargs = packed_inputs(self.model.config, cu_seqlens, inputs_embeds)
        # use_cache=False: training never needs a cache, and one would change how transformers builds masks.
        out = self.model(inputs_embeds=inputs_embeds, position_ids=position_ids, use_cache=False, **kwargs)
        return out.logits

    def prefill(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, DecodeState]:
        """Logits [B, vocab] after each left-padded prompt, and the cache and next positions to continue them.

        Position ids count each row's real tokens (from `attention_mask`), so a padded row equals the prompt alone."""
        positions = (attention_mask.cumsum(1) - 1).clamp(min=0)
        cache = DynamicCache(config=self.model.config)
        out = self.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=positions,
                         cache=cache, use_cache=True, logits_to_keep=1)
        return out.logits[:, -1], DecodeState(cache, attention_mask, positions[:, -1] + 1)

    def step(self, inputs_embeds: torch.Tensor, state: DecodeState) -> torch.Tensor:
        """Logits [R, vocab] after one more token per row ([R, 1, width] embeddings), through the cache."""
        positions = state.advance()[:, None]
        out = self.model(inputs_embeds=inputs_embeds, attention_mask=state.attention_mask, position_ids=positions,
                         cache=state.cache, use_cache=True)
        return out.logits[:, -1]

    def generate(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """New token ids only (transformers returns just the continuation when given embeddings)."""
        return self.model.generate(inputs_embeds=inputs_embeds, attention_mask=attention_mask, **kwargs)

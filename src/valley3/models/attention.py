"""Packed attention: each sample of a packed row attends only to itself, on every attention backend."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import sdpa_mask

from valley3._optional import is_available
from valley3.compat import attn_implementation

# valley3's own backend: one causal SDPA call per group of equal-length samples, no T x T mask.
SDPA_VARLEN = "sdpa_varlen"
# How each backend isolates packed samples: a block-diagonal float mask, or sample boundaries.
MASK_BACKENDS = ("sdpa", "eager")
VARLEN_BACKENDS = ("flash_attention_2", SDPA_VARLEN)
BACKENDS = MASK_BACKENDS + VARLEN_BACKENDS + ("auto",)


def flash_attn_available() -> bool:
    """flash-attn is optional (the GPU extra): it must import and have a CUDA device to run on."""
    return torch.cuda.is_available() and is_available("flash_attn")


def resolve_backend(name: str) -> str:
    """The backend to build with: "auto" means flash-attn varlen where it runs, else valley3's SDPA varlen."""
    if name not in BACKENDS:
        raise ValueError(f"unknown attention backend {name!r}; choose one of {BACKENDS}")
    if name == "auto":
        return "flash_attention_2" if flash_attn_available() else SDPA_VARLEN
    return name


def segment_ids(cu_seqlens: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """[B, T] index of the sample each token of the flattened packed batch belongs to."""
    lengths = cu_seqlens.diff().long()
    ids = torch.repeat_interleave(torch.arange(len(lengths), device=cu_seqlens.device), lengths)
    if ids.numel() != shape[0] * shape[1]:
        raise ValueError(f"cu_seqlens covers {ids.numel()} tokens but the batch has {shape[0]} x {shape[1]}")
    return ids.view(shape)


def block_causal_mask(
    cu_seqlens: torch.Tensor, shape: tuple[int, int], dtype: torch.dtype, sliding_window: int | None = None
) -> torch.Tensor:
    """[B, 1, T, T] additive float mask: 0 where a query may see a key (same sample, not later, and within
    `sliding_window` when given, as transformers counts it), the dtype's minimum elsewhere.

    Float, not bool: eager attention adds the mask to the scores, so a bool mask would add 1 instead of
    masking. Every row keeps its diagonal, so no softmax row is fully masked (no NaN).
    """
    seg = segment_ids(cu_seqlens, shape)
    pos = torch.arange(shape[1], device=seg.device)
    allowed = (seg[:, :, None] == seg[:, None, :]) & (pos[:, None] >= pos[None, :])
    if sliding_window is not None:
        allowed &= pos[None, :] > pos[:, None] - sliding_window
    mask = torch.zeros(allowed.shape, dtype=dtype, device=seg.device)
    return mask.masked_fill_(~allowed, torch.finfo(dtype).min).unsqueeze(1)


def packed_inputs(config: Any, cu_seqlens: torch.Tensor, inputs_embeds: torch.Tensor) -> dict[str, Any]:
    """The keyword arguments a transformers causal LM (of `config`) needs to keep the packed samples apart."""
    backend = attn_implementation(config)
    shape = tuple(inputs_embeds.shape[:2])
    if backend in MASK_BACKENDS:
        cu = cu_seqlens.to(inputs_embeds.device)
        mask = block_causal_mask(cu, shape, inputs_embeds.dtype)
        if "sliding_attention" not in (getattr(config, "layer_types", None) or []):
            return {"attention_mask": mask}
        # Models with sliding-window layers (Gemma3, Qwen2 with use_sliding_window) take one mask per layer type.
        window = block_causal_mask(cu, shape, inputs_embeds.dtype, config.sliding_window)
        return {"attention_mask": {"full_attention": mask, "sliding_attention": window}}
    if backend == "flash_attention_2":
        cu = cu_seqlens.to(inputs_embeds.device, torch.int32)
        longest = int(cu_seqlens.diff().max())
        # No 2-D mask: with one, transformers would unpad by it and ignore cu_seqlens.
        return {"attention_mask": None, "cu_seq_lens_q": cu, "cu_seq_lens_k": cu, "max_length_q": longest,
                "max_length_k": longest}
    if backend == SDPA_VARLEN:
        # An all-ones 2-D mask makes transformers skip building a T x T mask (no padding, plain causal);
        # left as None it would detect the restarting position ids and build a block mask we never read.
        # Boundaries stay on the CPU: the attention reads them as Python ints in every layer.
        cu = cu_seqlens.detach().to("cpu", torch.int64)
        ones = torch.ones(shape, dtype=torch.long, device=inputs_embeds.device)
        return {"attention_mask": ones, "cu_seq_lens_q": cu, "cu_seq_lens_k": cu}
    raise ValueError(f"packed sequences are not supported with attention backend {backend!r}; use one of {BACKENDS}")


def sdpa_varlen_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Causal SDPA per packed sample; without `cu_seq_lens_q` it is exactly transformers' SDPA (padded batches,
    generation). Samples of equal length share one batched call, so a pack of equal-length samples costs what
    the padded batch of them costs; others cost only their own length squared, not the whole row's."""
    cu = kwargs.get("cu_seq_lens_q")
    if cu is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout, scaling, **kwargs)
    if kwargs.get("softcap") is not None:
        raise ValueError("sdpa_varlen does not support attention softcapping; use eager or flash_attention_2")
    window = kwargs.get("sliding_window")
    batch, heads, length, dim = query.shape
    lengths = cu.diff().tolist()
    # [B, H, T, D] -> [H, B*T, D]: samples are contiguous runs of the flattened rows.
    q, k, v = (x.transpose(0, 1).reshape(x.shape[1], batch * length, dim) for x in (query, key, value))
    pieces = [torch.split(x, lengths, dim=1) for x in (q, k, v)]
    by_length: dict[int, list[int]] = defaultdict(list)
    for i, n in enumerate(lengths):
        by_length[n].append(i)
    outs: list[torch.Tensor | None] = [None] * len(lengths)
    for idx in by_length.values():
        # 4-D inputs with enable_gqa keep CPU SDPA on its fused kernel (3-D inputs fall back to the math path).
        qs, ks, vs = (torch.stack([p[i] for i in idx]) for p in pieces)
        n = qs.shape[2]
        mask = None
        if window is not None and n > window:  # a sliding-window layer whose window this sample exceeds
            one = torch.tensor([0, n], device=qs.device)
            mask = block_causal_mask(one, (1, n), qs.dtype, window)
        out = F.scaled_dot_product_attention(
            qs, ks, vs, attn_mask=mask, dropout_p=dropout, scale=scaling, is_causal=mask is None,
            enable_gqa=qs.shape[1] != ks.shape[1],
        )
        for j, i in enumerate(idx):
            outs[i] = out[j]
    out = torch.cat(outs, dim=1).view(heads, batch, length, dim)
    return out.permute(1, 2, 0, 3), None  # transformers expects [B, T, H, D]


def register_backends() -> None:
    """Make `sdpa_varlen` a transformers attention backend. Idempotent (a registration maps the name to the same
    function again); the decoders call it before building a model, so importing this module changes nothing."""
    AttentionInterface.register(SDPA_VARLEN, sdpa_varlen_attention)
    # Unpacked batches (validation, generation) get exactly the mask SDPA gets.
    AttentionMaskInterface.register(SDPA_VARLEN, sdpa_mask)

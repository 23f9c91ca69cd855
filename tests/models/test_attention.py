"""Packed attention: for every decoder preset and CPU backend, packed = one by one (logits, loss, gradients)."""

from __future__ import annotations

import pytest
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device

from valley3.data.batch import Batch
from valley3.data.packing import PackingCollator
from valley3.data.processor import IGNORE_INDEX, Example
from valley3.models.attention import (
    SDPA_VARLEN,
    block_causal_mask,
    flash_attn_available,
    packed_inputs,
    resolve_backend,
)
from valley3.models.decoders import HFDecoder
from valley3.models.presets import DECODERS
from valley3.stages.base import masked_loss

CPU_BACKENDS = ("sdpa", "eager", SDPA_VARLEN)
# Real-size presets keep their architecture (RoPE scaling, sliding windows, norms) at a tiny width; a
# sliding-window family gets one sliding and one full layer, with a window shorter than the samples.
_SHRINK = {"vocab_size": 1024, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
           "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16}
# Qwen3-VL presets are built by Qwen3VLDecoder; its packing test is in test_qwen3_vl.py.
TEXT_DECODERS = sorted(name for name, preset in DECODERS.items() if preset.get("model_type") != "qwen3_vl")
_SLIDING = {"sliding_window": 16, "query_pre_attn_scalar": 16, "layer_types": ["sliding_attention", "full_attention"]}


def _decoder(preset: str, backend: str, dtype: str = "float32") -> HFDecoder:
    config = {}
    if not preset.startswith("tiny-"):
        config = {**_SHRINK, **(_SLIDING if "sliding_window" in DECODERS[preset] else {})}
    torch.manual_seed(0)
    return HFDecoder(preset, config=config, attn_implementation=backend, dtype=dtype)


def _examples(lengths=(37, 21, 50), seed=1) -> list[Example]:
    generator = torch.Generator().manual_seed(seed)
    examples = []
    for i, n in enumerate(lengths):
        ids = torch.randint(0, 1000, (n,), generator=generator)
        labels = ids.clone()
        labels[: n // 3] = IGNORE_INDEX  # a prompt that carries no loss
        examples.append(Example(ids, labels, f"s{i}", "memory"))
    return examples


def _packed(decoder: HFDecoder, batch: Batch) -> torch.Tensor:
    embeds = decoder.embed_tokens(batch.input_ids)
    return decoder(embeds, position_ids=batch.position_ids, cu_seqlens=batch.cu_seqlens)


def _grads(decoder: HFDecoder) -> dict[str, torch.Tensor]:
    grads = {n: p.grad.clone() for n, p in decoder.named_parameters() if p.grad is not None}
    decoder.zero_grad(set_to_none=True)
    return grads


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("preset", TEXT_DECODERS)
def test_packed_logits_loss_and_gradients_equal_one_by_one(preset, backend):
    decoder = _decoder(preset, backend)
    examples = _examples()
    batch = PackingCollator(pad_id=0)([[examples[0], examples[1]], [examples[2]]])  # two rows, one padded
    logits = _packed(decoder, batch)
    total, count = masked_loss(logits, batch.labels)
    (total / count).backward()
    packed_grads = _grads(decoder)

    single, totals, counts = [], [], []
    for ex in examples:
        out = decoder(decoder.embed_tokens(ex.input_ids[None]))
        t, c = masked_loss(out, ex.labels[None])
        single.append(out[0])
        totals.append(t)
        counts.append(c)
    (sum(totals) / sum(counts)).backward()
    single_grads = _grads(decoder)

    flat = logits.flatten(0, 1)
    for ex, start, ref in zip(examples, batch.cu_seqlens.tolist(), single):
        assert (flat[start : start + len(ex)] - ref).abs().max() <= 1e-5, ex.sample_id
    assert count == sum(counts)
    assert abs(float((total / count).detach()) - float((sum(totals) / sum(counts)).detach())) <= 1e-5
    assert packed_grads.keys() == single_grads.keys()
    for name, grad in packed_grads.items():
        assert (grad - single_grads[name]).abs().max() <= 1e-5, name


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("preset", TEXT_DECODERS)
def test_perturbing_one_sample_leaves_the_other_bit_identical(preset, backend):
    decoder = _decoder(preset, backend)
    a, b = _examples((30, 40))
    perturbed = Example(torch.randint(0, 1000, (len(a),)), a.labels, a.sample_id, a.source)
    collate = PackingCollator(pad_id=0)
    with torch.no_grad():
        first, second = (_packed(decoder, collate([x, b]))[0, len(a):] for x in (a, perturbed))
        changed = _packed(decoder, collate([perturbed, b]))[0, : len(a)]
        original = _packed(decoder, collate([a, b]))[0, : len(a)]
    assert torch.equal(first, second)
    assert not torch.equal(changed, original)  # the perturbation did reach the model


def test_masks_are_float_block_diagonal_causal_and_windowed():
    cu = torch.tensor([0, 3, 5, 8])
    mask = block_causal_mask(cu, (2, 4), torch.float32)
    assert mask.dtype == torch.float32 and mask.shape == (2, 1, 4, 4)  # never bool: eager adds the mask
    seen = mask[:, 0] == 0
    assert seen[0].tolist() == [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 0, 1]]
    assert seen[1].tolist() == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 1, 1, 0], [0, 1, 1, 1]]
    window = block_causal_mask(torch.tensor([0, 4]), (1, 4), torch.float32, sliding_window=2)[0, 0] == 0
    assert window.tolist() == [[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]
    eager = _decoder("tiny-llama", "eager")
    inputs = packed_inputs(eager.model.config, cu, torch.zeros(2, 4, 64))
    assert inputs["attention_mask"].dtype == torch.float32


def test_backend_choice():
    if not flash_attn_available():
        assert resolve_backend("auto") == SDPA_VARLEN  # the CPU fallback
    with pytest.raises(ValueError, match="unknown attention backend 'flex'"):
        resolve_backend("flex")
    with pytest.raises(ValueError, match="cu_seqlens covers 5 tokens"):
        block_causal_mask(torch.tensor([0, 5]), (1, 4), torch.float32)


def test_sdpa_varlen_without_packing_is_sdpa():
    """Unpacked batches (validation, left-padded generation) on the varlen backend are plain SDPA."""
    varlen, sdpa = _decoder("tiny-qwen3", SDPA_VARLEN), _decoder("tiny-qwen3", "sdpa")
    ids = torch.randint(0, 1000, (2, 12))
    mask = torch.ones_like(ids)
    mask[0, :5] = 0
    with torch.no_grad():
        assert torch.equal(varlen(varlen.embed_tokens(ids), mask), sdpa(sdpa.embed_tokens(ids), mask))
        out = varlen.generate(varlen.embed_tokens(ids), mask, max_new_tokens=3, do_sample=False)
        ref = sdpa.generate(sdpa.embed_tokens(ids), mask, max_new_tokens=3, do_sample=False)
    assert torch.equal(out, ref)


@pytest.mark.gpu
@pytest.mark.skipif(not flash_attn_available(), reason="needs flash-attn on a CUDA GPU")
def test_flash_varlen_packed_equals_one_by_one():
    decoder = _decoder("tiny-qwen3", "flash_attention_2", dtype="bfloat16").cuda()
    examples = _examples()
    batch = PackingCollator(pad_id=0)([examples])
    with torch.no_grad():
        logits = _packed(decoder, move_data_to_device(batch, "cuda"))[0].float()
        for ex, start in zip(examples, batch.cu_seqlens.tolist()):
            ref = decoder(decoder.embed_tokens(ex.input_ids[None].cuda()))[0].float()
            assert (logits[start : start + len(ex)] - ref).abs().max() <= 2e-2, ex.sample_id

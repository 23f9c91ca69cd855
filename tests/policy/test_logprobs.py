"""Policy.logprobs: packed == padded (left and right) == a full forward's log_softmax gather, on both architectures."""

from __future__ import annotations

import pytest
import torch

from valley3.data.collate import PadCollator
from valley3.data.processor import IGNORE_INDEX
from valley3.policy.prompts import prompt_example, with_completion

from ..conftest import forward
from .conftest import prompts


def _reference(policy, prompt, completion, mask, temperature) -> torch.Tensor:
    """Each sample alone, unpadded: log_softmax(logits / T) of the whole sequence, gathered at its labels."""
    example = with_completion(prompt_example(policy.processor, prompt), completion, mask, 0)
    batch = PadCollator(policy.processor.pad_id)([example])
    with torch.no_grad():
        logits = forward(policy.model, batch)[0]
    log_p = (logits.float() / temperature).log_softmax(-1)[:-1]
    labels = example.labels[1:]
    keep = labels != IGNORE_INDEX
    return log_p[keep].gather(-1, labels[keep][:, None]).squeeze(-1)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_packed_equals_padded_equals_full_forward(policy, media, temperature):
    base = prompts(media)
    gen = torch.Generator().manual_seed(0)
    # Three completions share the image prompt (one with a tool response masked out), then text and audio ones.
    pairs = [(base[0], 5), (base[0], 7), (base[0], 4), (base[1], 6), (base[2], 3)]
    completions = [torch.randint(100, 900, (n,), generator=gen).tolist() for _, n in pairs]
    masks = [None, [1, 1, 0, 0, 0, 1, 1], None, None, None]
    masks = [m if m is not None else [1] * len(c) for m, c in zip(masks, completions)]
    group = [p for p, _ in pairs]
    reference = [_reference(policy, p, c, m, temperature) for p, c, m in zip(group, completions, masks)]
    layouts = {
        "right": policy.completion_batch(group, completions, masks),
        "left": policy.completion_batch(group, completions, masks, padding_side="left"),
        "packed": policy.completion_batch(group, completions, masks, packed=True),
        "packed_rows": policy.completion_batch(group, completions, masks, packed=True, pack_tokens=120),
    }
    assert layouts["packed_rows"].input_ids.shape[0] > 1 and layouts["packed"].cu_seqlens is not None
    for name, batch in layouts.items():
        with torch.no_grad():
            out = policy.logprobs(batch, temperature)
        got = out.per_sample(batch)
        assert [len(g) for g in got] == [sum(m) for m in masks], name
        for g, ref in zip(got, reference):
            assert (g - ref).abs().max() <= 1e-5, name
        assert out.logprobs.dtype == torch.float32 and bool((out.logprobs[~out.mask] == 0).all())
        assert all(bool((e >= 0).all()) for e in out.entropy_per_sample(batch))


def test_logprobs_carry_gradients(policy, media):
    batch = policy.completion_batch(prompts(media)[:2], [[300, 301], [302]], packed=True)
    out = policy.logprobs(batch)
    assert out.logprobs.requires_grad
    out.logprobs.sum().backward()
    assert policy.model.decoder.embed_tokens(torch.tensor([0])).requires_grad
    grads = [p.grad for p in policy.model.parameters() if p.grad is not None]
    assert grads and any(bool(g.any()) for g in grads)
    policy.model.zero_grad(set_to_none=True)

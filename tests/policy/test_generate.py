"""Policy.generate on both architectures: log-probs, shared media, seeds, stop strings, finish reasons, streaming."""

from __future__ import annotations

import pytest
import torch

from .conftest import prompts, vision_tower


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_generation_logprobs_equal_recomputed_logprobs(policy, media, temperature):
    group = prompts(media)[:2]
    out = policy.generate(group, n=2, max_new_tokens=6, temperature=temperature, top_k=50, top_p=0.9, seed=0)
    flat = [c for per_prompt in out for c in per_prompt]
    assert all(len(c.token_ids) == len(c.logprobs) > 0 for c in flat)
    batch = policy.completion_batch([p for p in group for _ in range(2)], [c.token_ids for c in flat], packed=True)
    with torch.no_grad():
        recomputed = policy.logprobs(batch, temperature).per_sample(batch)
    for c, ref in zip(flat, recomputed):
        assert (torch.tensor(c.logprobs) - ref).abs().max() <= 1e-4


def test_n_samples_of_one_image_prompt_encode_the_image_once(policy, media):
    calls = []
    hook = vision_tower(policy).register_forward_hook(lambda *args: calls.append(1))
    try:
        out = policy.generate(prompts(media)[:1], n=4, max_new_tokens=5, temperature=1.0, seed=0)
    finally:
        hook.remove()
    assert len(calls) == 1
    assert len(out) == 1 and len(out[0]) == 4
    assert len({tuple(c.token_ids) for c in out[0]}) > 1  # four real samples, not one copied


def test_left_padded_batch_equals_each_prompt_alone(policy, media):
    group = prompts(media)
    together = policy.generate(group, max_new_tokens=5, temperature=0)
    for prompt, batched in zip(group, together):
        alone = policy.generate([prompt], max_new_tokens=5, temperature=0)[0][0]
        assert alone.token_ids == batched[0].token_ids
        assert max(abs(a - b) for a, b in zip(alone.logprobs, batched[0].logprobs)) <= 1e-5


def test_the_same_seed_gives_the_same_samples_and_another_seed_differs(policy, media):
    group = prompts(media)[:2]

    def run(seed):
        torch.manual_seed(seed + 100)  # the global stream must not matter
        return [[c.token_ids for c in per] for per in policy.generate(group, n=2, max_new_tokens=6, seed=seed)]

    first = run(3)
    assert run(3) == first
    assert run(4) != first


def test_prefix_is_continued_and_not_part_of_the_text(omni_policy, media):
    prompt, prefix = prompts(media)[1], "The answer is"
    ids = omni_policy.prompt_ids(prompt, prefix)
    tail = omni_policy.processor.tokenizer(prefix, add_special_tokens=False)["input_ids"]
    assert ids == omni_policy.prompt_ids(prompt) + tail
    out = omni_policy.generate([prompt], prefix=[prefix], max_new_tokens=4, seed=0)[0][0]
    assert not out.text.startswith(prefix) and len(out.token_ids) == 4
    batch = omni_policy.completion_batch([prompt], [out.token_ids], prefix=[prefix])
    assert batch.input_ids[0, : len(ids)].tolist() == ids
    with torch.no_grad():
        recomputed = omni_policy.logprobs(batch).per_sample(batch)[0]
    assert (torch.tensor(out.logprobs) - recomputed).abs().max() <= 1e-4


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_media_placeholders_are_never_sampled_and_logprobs_stay_the_models(policy, media, temperature):
    # An untrained policy that likes placeholder ids: fed back (log-probs, an agent's next turn), a completion
    # holding one claims an image or a clip the batch has none of, and the step fails.
    head = dict(policy.model.named_modules())[next(n for n, _ in policy.model.named_modules() if n.endswith("lm_head"))]
    banned = list(policy.banned_ids)
    assert set(banned) == set(policy.processor.token_ids.values())

    def favour_placeholders(module, args, logits):
        logits = logits.clone()
        logits[..., banned] += 8.0
        return logits

    hook = head.register_forward_hook(favour_placeholders)
    try:
        group = prompts(media)[:2]
        out = policy.generate(group, n=2, max_new_tokens=6, temperature=temperature, seed=0)
        flat = [c for per_prompt in out for c in per_prompt]
        assert not {t for c in flat for t in c.token_ids} & set(banned)
        batch = policy.completion_batch([p for p in group for _ in range(2)], [c.token_ids for c in flat], packed=True)
        with torch.no_grad():
            recomputed = policy.logprobs(batch, temperature or 1.0).per_sample(batch)
        for c, ref in zip(flat, recomputed):  # the model's own log-probs, placeholders' mass included
            assert (torch.tensor(c.logprobs) - ref).abs().max() <= 1e-4
    finally:
        hook.remove()

"""Budget forcing: the cap holds for every sample and capped samples still close and answer; extensions lengthen
the thinking; a multi-token end marker is forced whole; streamed text is the returned text."""

from __future__ import annotations

import dataclasses

import pytest

from tests.conftest import tiny_omni
from valley3.reasoning.budget import BudgetForcing

from .conftest import record

PAIRS = [(3, 4), (11, 7), (19, 2), (6, 14), (9, 9), (15, 1)]


def _prompts(levels=("minimal", "medium", "high")) -> list[dict]:
    return [record(a, b, level, answered=False) for a, b in PAIRS for level in levels]


@pytest.mark.parametrize("cap", [0, 3, 8, 16])
def test_thinking_stays_within_the_cap_and_capped_samples_close_and_answer(reasoning_ckpt, cap):
    _, policy = reasoning_ckpt
    answers = BudgetForcing(max_thinking_tokens=cap, max_new_tokens=32)(policy, _prompts(), temperature=0)
    assert all(a.thinking_tokens <= cap for a in answers)
    capped = [a for a in answers if a.capped]
    assert capped if cap < 16 else True  # "high" thinks ~40 tokens here, so small caps cut it
    for a in answers:
        assert a.parsed.one_block and a.parsed.ok, (a.text, a.parsed.error)  # closed, then a non-empty answer
        assert a.text.startswith("<thinking>\n") and "\n</thinking>\n\n" in a.text


def test_sampled_answers_keep_the_cap(reasoning_ckpt):
    _, policy = reasoning_ckpt
    for seed in range(3):
        answers = BudgetForcing(max_thinking_tokens=6, max_new_tokens=32)(policy, _prompts(("high",)), seed=seed,
                                                                         temperature=1.0)
        assert all(a.thinking_tokens <= 6 and a.parsed.one_block for a in answers)


def test_per_prompt_caps(reasoning_ckpt):
    _, policy = reasoning_ckpt
    prompts = _prompts(("high",))[:3]
    answers = BudgetForcing(max_new_tokens=96)(policy, prompts, caps=[2, None, 5], temperature=0)
    assert answers[0].thinking_tokens <= 2 and answers[2].thinking_tokens <= 5
    assert answers[1].thinking_tokens > 5 and not answers[1].capped


def test_extend_lengthens_the_thinking_strictly(reasoning_ckpt):
    _, policy = reasoning_ckpt
    means = []
    for extend in (0, 1, 2):
        answers = BudgetForcing(extend=extend, max_new_tokens=48)(policy, _prompts(), temperature=0)
        assert all(a.extensions <= extend for a in answers) and any(a.extensions == extend for a in answers)
        assert all(a.thinking.count("Wait") == a.extensions for a in answers)
        means.append(sum(a.thinking_tokens for a in answers) / len(answers))
    assert means[0] < means[1] < means[2], means


def test_extend_under_a_cap_never_passes_it(reasoning_ckpt):
    _, policy = reasoning_ckpt
    answers = BudgetForcing(max_thinking_tokens=20, extend=3, wait="Hmm, wait", max_new_tokens=32)(
        policy, _prompts(), temperature=0)
    assert all(a.thinking_tokens <= 20 and a.parsed.one_block for a in answers)


def test_without_forcing_it_is_one_plain_generation(reasoning_ckpt):
    _, policy = reasoning_ckpt
    prompts = _prompts()
    answers = BudgetForcing(max_new_tokens=64)(policy, prompts, temperature=0)
    plain = policy.generate(prompts, max_new_tokens=64, temperature=0)
    assert [a.text for a in answers] == [c[0].text for c in plain]
    by_level = {lv: [a.thinking_tokens for a, p in zip(answers, prompts) if p["effort"] == lv]
                for lv in ("minimal", "medium", "high")}
    assert max(by_level["minimal"]) == 0 < min(by_level["medium"])  # the trained control, as a sanity check
    assert sum(by_level["medium"]) < sum(by_level["high"])


@pytest.mark.parametrize("forcing", [BudgetForcing(max_thinking_tokens=5, max_new_tokens=24),
                                     BudgetForcing(extend=2, max_new_tokens=24), BudgetForcing(max_new_tokens=24)])
def test_streamed_text_adds_up_to_the_answer(reasoning_ckpt, forcing):
    _, policy = reasoning_ckpt
    prompts = _prompts()[:6]
    shown = [""] * len(prompts)

    def streamer(i, delta):
        shown[i] += delta

    answers = forcing(policy, prompts, streamer=streamer, temperature=0)
    assert shown == [a.text for a in answers]
    assert all(s.count("</thinking>") <= 1 for s in shown)  # suppressed ends never reach the screen


def test_a_multi_token_end_marker_is_forced_whole():
    from valley3.policy import Policy, build_processor

    model = tiny_omni(seed=2).eval()  # untrained: it never closes the thinking itself, so every sample is capped
    processor = build_processor(model)
    tokens = dataclasses.replace(processor.template.tokens, think_start="<reasoning>", think_end="</reasoning>")
    processor.template.tokens = tokens
    assert len(processor.tokenizer("</reasoning>", add_special_tokens=False)["input_ids"]) > 1
    policy = Policy(model, processor)
    answers = BudgetForcing(max_thinking_tokens=7, max_new_tokens=12)(
        policy, _prompts(("high",))[:4], temperature=1.0, seed=0)
    for a in answers:
        assert a.capped and a.thinking_tokens <= 7 and a.parsed.one_block
        assert "\n</reasoning>\n\n" in a.text


def test_bad_budgets_are_errors(reasoning_ckpt):
    _, policy = reasoning_ckpt
    with pytest.raises(ValueError, match=">= 0"):
        BudgetForcing(max_thinking_tokens=-1)
    with pytest.raises(ValueError, match="2 thinking budgets for 1 prompts"):
        BudgetForcing()(policy, _prompts()[:1], caps=[1, 2])


def test_early_banned_ids_cannot_start_an_answer():
    from valley3.policy import Policy, build_processor

    model = tiny_omni(seed=2).eval()
    policy = Policy(model, build_processor(model))
    prompts = _prompts(("high",))[:3]
    free = policy.generate(prompts, max_new_tokens=2, temperature=0)
    first = [c[0].token_ids[0] for c in free]
    banned = policy.generate(prompts, max_new_tokens=2, temperature=0, min_new_tokens=1, early_banned=first)
    assert all(c[0].token_ids[0] not in first for c in banned)

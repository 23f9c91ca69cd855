"""Stop strings (kept, spanning tokens), finish reasons and streamed text deltas."""

from __future__ import annotations

import torch

from valley3.policy.text import GrowingText

from .conftest import prompts


def _decode(pieces: dict[int, bytes]):
    return lambda ids: b"".join(pieces[i] for i in ids).decode("utf-8", errors="replace")


def test_a_stop_string_across_tokens_ends_the_text_and_is_kept():
    text = GrowingText(_decode({1: b"The ", 2: b"ans", 3: b"wer", 4: b" is</", 5: b"ans", 6: b"wer> more"}),
                       stop=["</answer>", "zzz"])
    deltas = [text.push(t) for t in (1, 2, 3, 4, 5)]
    assert text.stop is None and "".join(deltas) == "The answer is</ans"
    assert text.push(6) == "wer>" and text.stop == "</answer>" and text.text == "The answer is</answer>"


def test_a_split_character_waits_for_its_last_byte():
    euro = "€".encode()
    text = GrowingText(_decode({1: b"5 ", 2: euro[:2], 3: euro[2:] + b"!"}))
    assert [text.push(t) for t in (1, 2, 3)] == ["5 ", "", "€!"] and text.finish() == ""


def _sample(policy, media, **kwargs):
    return policy.generate(prompts(media)[1:2], temperature=1.0, seed=11, **kwargs)[0][0]


def test_stop_strings_stop_generation_and_finish_reasons(omni_policy, media):
    tokenizer = omni_policy.processor.tokenizer
    free = _sample(omni_policy, media, max_new_tokens=12)
    assert free.finish_reason == "length" and len(free.token_ids) == 12 and free.stop is None
    # A stop string made of the text of tokens 3..5: it completes only when token 5 comes.
    stop = tokenizer.decode(free.token_ids[3:6])
    end = free.text.index(stop) + len(stop)
    upto = next(k for k in range(1, 13) if stop in tokenizer.decode(free.token_ids[:k]))
    assert upto > 1 and len(tokenizer(stop, add_special_tokens=False)["input_ids"]) > 1
    stopped = _sample(omni_policy, media, max_new_tokens=12, stop=[stop])
    assert stopped.finish_reason == "stop" and stopped.stop == stop
    assert stopped.text == free.text[:end] and stopped.text.endswith(stop)
    assert stopped.token_ids == free.token_ids[:upto] and stopped.logprobs == free.logprobs[:upto]
    # eos: the third token counts as the end of the turn; it is left out of the ids, text and log-probs.
    eos_ids = omni_policy.eos_ids
    omni_policy.eos_ids = (free.token_ids[2],)
    try:
        ended = _sample(omni_policy, media, max_new_tokens=12)
    finally:
        omni_policy.eos_ids = eos_ids
    first = free.token_ids.index(free.token_ids[2])
    assert ended.finish_reason == "eos" and ended.token_ids == free.token_ids[:first]
    assert len(ended.logprobs) == first and ended.stop is None


def test_streamed_deltas_add_up_to_each_text(omni_policy, media):
    streamed: dict[int, str] = {}

    def streamer(row: int, delta: str) -> None:
        assert delta
        streamed[row] = streamed.get(row, "") + delta

    out = omni_policy.generate(prompts(media)[:2], n=2, max_new_tokens=10, seed=5, stop=["e"], streamer=streamer)
    flat = [c for per in out for c in per]
    assert {row: c.text for row, c in enumerate(flat) if c.text} == streamed
    assert any(c.finish_reason == "stop" for c in flat)  # a stopped row's deltas end with its stop string
    plain = omni_policy.generate(prompts(media)[:2], n=2, max_new_tokens=10, seed=5)  # decoded once at the end
    for c, p in zip(flat, [c for per in plain for c in per]):
        assert p.text == omni_policy.processor.tokenizer.decode(p.token_ids)
        assert p.text.startswith(c.text) and (c.finish_reason == "stop" or p.text == c.text)


def test_greedy_is_temperature_zero(omni_policy, media):
    greedy = omni_policy.generate(prompts(media)[1:2], max_new_tokens=5, temperature=0, seed=1)[0][0]
    again = omni_policy.generate(prompts(media)[1:2], max_new_tokens=5, temperature=0, seed=2)[0][0]
    top1 = omni_policy.generate(prompts(media)[1:2], max_new_tokens=5, temperature=1.0, top_k=1, seed=3)[0][0]
    assert greedy.token_ids == again.token_ids == top1.token_ids
    assert torch.allclose(torch.tensor(greedy.logprobs), torch.tensor(top1.logprobs))

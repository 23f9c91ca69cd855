"""`<thinking>` parsing: well-formed answers and every named malformed case; format/parse round trip; token counts."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from valley3.reasoning import MALFORMED, count_thinking_tokens, format_reasoning, parse_thinking
from valley3.reasoning import parse as P

CASES = [
    # text, thinking, answer, error, exactly one block
    ("<thinking>\nprice is $5\n</thinking>\n\n$10.", "price is $5", "$10.", None, True),
    ("<thinking>\n</thinking>\n\nYes.", "", "Yes.", None, True),
    ("The answer is $10.", "", "The answer is $10.", P.NO_THINKING, False),
    ("<thinking>\nprice is $5, so two cost", "price is $5, so two cost", "", P.MISSING_CLOSE, False),
    ("price is $5\n</thinking>\n\n$10.", "price is $5", "$10.", P.MISSING_OPEN, False),
    ("<thinking>a</thinking>\n<thinking>b</thinking>\n\n$10.", "a\nb", "$10.", P.MULTIPLE_BLOCKS, False),
    ("<thinking>a<thinking>b</thinking>\n\n$10.", "ab", "$10.", P.UNBALANCED_MARKERS, False),
    ("</thinking>a<thinking>b", "b", "", P.UNBALANCED_MARKERS, False),
    ("Sure.<thinking>\nx\n</thinking>\n\n$10.", "x", "$10.", P.TEXT_BEFORE_THINKING, True),
    ("<thinking>\nso the answer is $10.\n</thinking>", "so the answer is $10.", "", P.ANSWER_INSIDE_THINKING, True),
    ("<thinking>\n</thinking>\n\n", "", "", P.EMPTY_ANSWER, True),
]


@pytest.mark.parametrize("text, thinking, answer, error, one", CASES, ids=[c[3] or "ok" for c in CASES])
def test_parse_names_each_case(text, thinking, answer, error, one):
    parsed = parse_thinking(text)
    assert (parsed.thinking, parsed.answer, parsed.error, parsed.one_block) == (thinking, answer, error, one)
    assert parsed.ok == (error is None)
    assert error is None or error in MALFORMED


def test_every_named_case_is_covered():
    assert set(MALFORMED) == {c[3] for c in CASES if c[3]}


@pytest.mark.parametrize("thinking", ["", "one step", "line one\nline two"])
def test_format_then_parse_round_trips(thinking):
    text = format_reasoning(thinking, "$4.99.")
    assert parse_thinking(text) == parse_thinking(text)
    parsed = parse_thinking(text)
    assert (parsed.thinking, parsed.answer, parsed.error) == (thinking, "$4.99.", None)
    assert text.startswith("<thinking>\n") and "\n</thinking>\n\n$4.99." in text
    if not thinking:  # the release's empty block
        assert text == "<thinking>\n</thinking>\n\n$4.99."


def test_other_markers():
    text = format_reasoning("x", "y", open="<think>", close="</think>")
    assert parse_thinking(text, open="<think>", close="</think>").thinking == "x"
    assert parse_thinking(text).error == P.NO_THINKING


def test_thinking_tokens_count_the_stripped_text():
    tok = AutoTokenizer.from_pretrained("src/valley3/assets/tiny_tokenizer")
    text = format_reasoning("The price tag shows $4.99.", "Yes.")
    n = len(tok("The price tag shows $4.99.", add_special_tokens=False)["input_ids"])
    assert count_thinking_tokens(parse_thinking(text), tok) == n > 0
    assert count_thinking_tokens("  \n", tok) == 0

"""Answer extraction: letters, JSON objects and fields, thinking blocks; malformed outputs give typed reasons."""

import pytest

from valley3.eval.metrics import (
    FAILURE_REASONS,
    extract_answer_text,
    extract_json,
    extract_json_field,
    extract_letter,
    strip_thinking,
)


@pytest.mark.parametrize(
    "text, letter",
    [
        ("B", "B"),
        ("(B)", "B"),
        ("B.", "B"),
        ("b", "B"),
        ("**C**", "C"),
        ("Answer: B", "B"),
        ("the answer is (C)", "C"),
        ("The correct answer is: (B) Red shoes.", "B"),
        ("B. Red leather shoes", "B"),
        ("I would pick (C) because of the logo", "C"),
        ("答案是C", "C"),
        ("<thinking>A looks close, but no</thinking>\n\nD", "D"),
        ('{"thinking process": "the logo", "answer": "A"}', "A"),
    ],
)
def test_extract_letter(text, letter):
    assert extract_letter(text).value == letter


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "empty"),
        ("   \n", "empty"),
        (None, "empty"),
        ("E", "invalid_letter"),  # 4 options: A-D
        ("Option A is too small, so the answer is D", "ambiguous"),  # two letters: can_infer gives none either
        ("The answer is A or B", "ambiguous"),
        ("Cannot determine the answer", "refused"),
        ("the answer is F", "invalid_letter"),
        ("a red shoe", "no_letter"),
        ("<thinking>A or B, let me think", "no_answer"),  # thinking never closed
        ("<thinking>B</thinking>  ", "no_answer"),
        ('{"answer": "B"', "truncated_json"),
        ('{"thinking process": "x"}', "missing_field"),
    ],
)
def test_extract_letter_failures(text, reason):
    got = extract_letter(text)
    assert (got.value, got.reason) == (None, reason) and not got.ok
    assert reason in FAILURE_REASONS


def test_letter_range_follows_num_options():
    assert extract_letter("E", num_options=5).value == "E"
    assert extract_letter("C", num_options=2).reason == "invalid_letter"


@pytest.mark.parametrize(
    "text, obj",
    [
        ('{"a": 1}', {"a": 1}),
        ('Sure! Here it is:\n```json\n{"a": {"b": [1, 2]}}\n```\nAnything else?', {"a": {"b": [1, 2]}}),
        ('Braces {like this} first, then {"a": 2}', {"a": 2}),
        ('<thinking>{"draft": 1}</thinking>{"a": 3}', {"a": 3}),
        ('{"a": "\\"}"}', {"a": '"}'}),  # escaped quote and a brace inside a string
    ],
)
def test_extract_json(text, obj):
    assert extract_json(text).value == obj


@pytest.mark.parametrize(
    "text, reason",
    [
        ("no json here", "no_json"),
        ('{"color": "re', "truncated_json"),
        ('```json\n{"colors": ["red", "blue"', "truncated_json"),
        ('{"a": "}"', "truncated_json"),  # the brace is inside an unclosed string
        ('{"a": 1,, }', "invalid_json"),
        ('<thinking>{"a": 1}', "no_answer"),
        ("", "empty"),
    ],
)
def test_extract_json_failures(text, reason):
    assert extract_json(text).reason == reason


def test_json_field_and_answer_text():
    out = '<thinking>it is red</thinking>{"Thinking Process": "look", "answer": "Red"}'
    assert extract_json_field(out, "thinking_process").value == "look"  # key spelling folded
    assert extract_answer_text(out).value == "Red"
    assert extract_answer_text("The answer is: red shoes").value == "red shoes"
    assert extract_answer_text('{"answer": ["a", "b"]}').value == '["a", "b"]'
    assert extract_answer_text('{"x": 1}').reason == "missing_field"
    assert strip_thinking("</thinking> tail").value == "tail"  # block opened by the prompt
    assert strip_thinking("<think>x</think>y").value == "y"

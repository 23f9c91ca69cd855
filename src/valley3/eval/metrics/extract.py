"""Answer extraction from raw model outputs: thinking blocks, option letters, JSON objects and fields.

Every function returns an :class:`Extracted`; a malformed output gives ``value=None`` and a ``reason``
from :data:`FAILURE_REASONS`, never an exception, so metrics can count malformed outputs by type.
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass
from typing import Any

FAILURE_REASONS: tuple[str, ...] = (
    "empty",  # nothing but whitespace
    "no_answer",  # unclosed <thinking>, or nothing after </thinking>
    "no_letter",  # no option letter found
    "invalid_letter",  # a letter beyond the number of options
    "no_json",  # no JSON object in the output
    "truncated_json",  # an object that opens but never closes (cut by max_new_tokens)
    "invalid_json",  # a closed object that does not parse
    "missing_field",  # valid JSON without the requested field
)

_OPEN = re.compile(r"<think(?:ing)?>", re.IGNORECASE)
_CLOSE = re.compile(r"</think(?:ing)?>", re.IGNORECASE)
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)(?:```|$)", re.DOTALL)
# "B", "(B)", "B.", "B)", "[B]", "**B**", "b": the whole answer is one letter.
_LONE = re.compile(r"^[\s*\[(]*([A-Za-z])[\s*\]).:]*$")
# "Answer: B", "the answer is (B)", "correct option: B", "答案是B": uppercase only, prose has "a".
# "I" followed by a lowercase word is the pronoun ("Answer: I think B").
_STATED = re.compile(
    r"(?i:(answer|答案)|option|choice|选项)\s*(?i:is|是|为)?\s*[:：]?\s*[*\[(]*"
    r"([A-HJ-Z]|I(?!\s+[a-z']))(?![A-Za-z'])"
)
# "B. Red shoes", "(B) red shoes", "B) red shoes" at the start of the answer.
_LEADING = re.compile(r"^[\s*\[(]*([A-Z])\s*[).:\]]")
_BRACKETED = re.compile(r"\(([A-Z])\)")
_ANSWER_PREFIX = re.compile(
    r"^(?:the\s+)?(?:final\s+)?answer\s*(?:is\s*)?[:：]?\s*|^答案\s*(?:是|为)?\s*[:：]?\s*", re.IGNORECASE
)


@dataclass(frozen=True)
class Extracted:
    """An extracted value, or ``value=None`` with the failure ``reason``."""

    value: Any = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None


def _fail(reason: str) -> Extracted:
    assert reason in FAILURE_REASONS, reason
    return Extracted(None, reason)


def strip_thinking(text: str | None) -> Extracted:
    """The answer after a ``<thinking>...</thinking>`` block (``<think>`` too); text without one is kept whole."""
    if text is None or not text.strip():
        return _fail("empty")
    closes = list(_CLOSE.finditer(text))
    if closes:  # also a bare "</thinking>" when the template opened the block in the prompt
        text = text[closes[-1].end() :]
    elif _OPEN.search(text):
        return _fail("no_answer")  # thinking never closed: the budget ran out before an answer
    text = text.strip()
    return Extracted(text) if text else _fail("no_answer")


def extract_letter(text: str | None, num_options: int = 4) -> Extracted:
    """The option letter of an answer ("B", "(B)", "B.", "Answer: B", JSON ``answer`` field ...)."""
    answer = strip_thinking(text)
    if not answer.ok:
        return answer
    body = answer.value
    if body.startswith(("{", "```")):
        field = extract_json_field(body, "answer")
        if not field.ok:
            return field
        body = str(field.value).strip()
    letter = _stated_letter(body)
    if letter is None and (m := _LEADING.search(body)):
        letter = m.group(1)
    if letter is None and len(found := set(_BRACKETED.findall(body))) == 1:
        letter = found.pop()  # "I would pick (C) because ..."
    if letter is None:
        return _fail("no_letter")
    if string.ascii_uppercase.index(letter) >= num_options:
        return _fail("invalid_letter")
    return Extracted(letter)


def _stated_letter(body: str) -> str | None:
    """A lone letter, else the last stated letter ("answer ..." statements win over "option ...")."""
    if m := _LONE.search(body):
        return m.group(1).upper()
    found = list(_STATED.finditer(body))
    answers = [m for m in found if m.group(1)]
    return (answers or found)[-1].group(2) if found else None


def _unbalanced(text: str) -> bool:
    """Whether the braces/brackets opened at ``text[0]`` never close (string-aware)."""
    depth, in_str, escaped = 0, False, False
    for ch in text:
        if in_str:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return False
    return True


def extract_json(text: str | None) -> Extracted:
    """The first JSON object in an output: after thinking, inside a fenced block or after leading prose."""
    answer = strip_thinking(text)
    if not answer.ok:
        return answer
    body = answer.value
    if m := _FENCE.search(body):
        body = m.group(1)
    starts = [i for i, ch in enumerate(body) if ch == "{"]
    if not starts:
        return _fail("no_json")
    decoder = json.JSONDecoder()
    for start in starts:
        try:
            obj, _ = decoder.raw_decode(body, start)
        except json.JSONDecodeError:
            continue
        return Extracted(obj)
    return _fail("truncated_json" if _unbalanced(body[starts[0] :]) else "invalid_json")


def extract_json_field(text: str | None, field: str = "answer") -> Extracted:
    """One field of the output's JSON object, e.g. ``answer`` of ``{"thinking process": ..., "answer": ...}``."""
    obj = extract_json(text)
    if not obj.ok:
        return obj
    if field in obj.value:
        return Extracted(obj.value[field])
    wanted = _norm_key(field)
    for key, value in obj.value.items():
        if _norm_key(key) == wanted:
            return Extracted(value)
    return _fail("missing_field")


def extract_answer_text(text: str | None, field: str = "answer") -> Extracted:
    """The free-text answer: after thinking, the JSON ``field`` when the answer is JSON, minus "Answer:"."""
    answer = strip_thinking(text)
    if not answer.ok:
        return answer
    body = answer.value
    if body.startswith(("{", "```")):
        value = extract_json_field(body, field)
        if not value.ok:
            return value
        body = value.value if isinstance(value.value, str) else json.dumps(value.value, ensure_ascii=False)
    body = _ANSWER_PREFIX.sub("", body.strip(), count=1).strip()
    return Extracted(body) if body else _fail("no_answer")


def _norm_key(key: str) -> str:
    return re.sub(r"[\s_\-]+", " ", str(key)).strip().lower()

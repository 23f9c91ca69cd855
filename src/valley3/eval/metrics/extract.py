"""Answer extraction from raw model outputs: thinking blocks, option letters, JSON values and fields.

Every function returns an :class:`Extracted`; a malformed output gives ``value=None`` and a ``reason``
from :data:`FAILURE_REASONS`, never an exception, so metrics can count malformed outputs by type.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

FAILURE_REASONS: tuple[str, ...] = (
    "empty",  # nothing but whitespace
    "no_answer",  # unclosed <thinking>, or nothing after </thinking>
    "no_letter",  # neither an option letter nor an option's text
    "invalid_letter",  # a letter beyond the number of options
    "ambiguous",  # more than one option named ("A or B", "B. Actually no, C.")
    "refused",  # a refusal VLMEvalKit's can_infer maps to "no option" ("Cannot determine the answer")
    "no_json",  # no JSON object or array in the output
    "truncated_json",  # a JSON value that opens but never closes (cut by max_new_tokens)
    "invalid_json",  # a closed bracket group that does not parse
    "missing_field",  # valid JSON without the requested field
    "wrong_type",  # valid JSON of the wrong shape (an array where an object is asked, or the reverse)
)

LETTERS = string.ascii_uppercase
_OPEN = re.compile(r"<think(?:ing)?>", re.IGNORECASE)
_CLOSE = re.compile(r"</think(?:ing)?>", re.IGNORECASE)
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)(?:```|$)", re.DOTALL)
# can_infer_option's separators (.()[],:;!*#{} and whitespace), plus double quotes and backticks, and every
# non-ASCII character: Chinese answers ("答案是C") put no space around the letter.
_SEPARATORS = re.compile(r"[\s.()\[\],:;!*#{}\"`]+|[^\x00-\x7f]+")
# Strings VLMEvalKit's can_infer_option answers with "Z" (no option) whatever letters they contain.
_REFUSALS = (
    "Failed to obtain answer via API",
    "Sorry, I can't help with images of people yet.",
    "I can't process this file.",
    "I'm sorry, but without the image provided",
    "Cannot determine the answer",
)
# "The answer is", "Answer:", "答案是": only as a whole word followed by "is" or a colon ("Answering machine"
# and the brand "Answers Pet Food" keep their first word).
_ANSWER_PREFIX = re.compile(
    r"^(?:the\s+)?(?:final\s+|correct\s+)?answer(?:\s+is\b\s*[:：]?|\s*[:：])\s*|^答案(?:是|为|\s*[:：])\s*[:：]?\s*",
    re.IGNORECASE,
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


def _answer_body(text: str | None, field: str = "answer") -> Extracted:
    """The text after thinking; when it is JSON, its ``field`` (a non-string value as JSON text)."""
    answer = strip_thinking(text)
    if not answer.ok or not answer.value.startswith(("{", "```")):
        return answer
    value = extract_json_field(answer.value, field)
    if not value.ok:
        return value
    body = value.value if isinstance(value.value, str) else json.dumps(value.value, ensure_ascii=False)
    return Extracted(body.strip()) if body.strip() else _fail("no_answer")


def _letter_tokens(body: str) -> list[str]:
    """can_infer's tokens, minus "I" as the pronoun ("I think B"): an "I" before a lowercase word."""
    tokens = [t for t in _SEPARATORS.split(body) if t]
    return [t for k, t in enumerate(tokens) if not (t == "I" and k + 1 < len(tokens) and tokens[k + 1][:1].islower())]


def extract_letter(text: str | None, num_options: int = 4, options: Sequence[str] | None = None) -> Extracted:
    """The one option an answer names, as VLMEvalKit's ``can_infer`` decides it (README, "Answer extraction").

    After thinking (and the JSON ``answer`` field), the answer names an option by exactly one option letter
    among its tokens, else by containing exactly one option's text (case-insensitive, needs ``options``).
    Two or more letters or texts are ``ambiguous``; a lone lowercase letter ("b") is that letter.

    Args:
        text: the raw output.
        num_options: how many options the question has (ignored when ``options`` is given).
        options: the option texts, in letter order.
    """
    n = len(options) if options is not None else num_options
    body = _answer_body(text)
    if not body.ok:
        return body
    if any(phrase in body.value for phrase in _REFUSALS):
        return _fail("refused")
    tokens = _letter_tokens(body.value)
    named = sorted({t for t in tokens if len(t) == 1 and t in LETTERS[:n]})
    if len(named) == 1:
        return Extracted(named[0])
    if len(tokens) == 1 and len(tokens[0]) == 1 and tokens[0].islower() and tokens[0].upper() in LETTERS[:n]:
        return Extracted(tokens[0].upper())  # "b", "(b)": the whole answer is one letter
    lowered = body.value.lower()
    by_text = [LETTERS[i] for i, o in enumerate(options or ()) if str(o).strip() and str(o).lower() in lowered]
    if len(by_text) == 1:
        return Extracted(by_text[0])
    if len(named) > 1 or len(by_text) > 1:
        return _fail("ambiguous")
    if any(len(t) == 1 and t in LETTERS[n:] and t != "I" for t in tokens):
        return _fail("invalid_letter")
    return _fail("no_letter")


def _span_end(text: str, start: int) -> int | None:
    """The index after the bracket group opened at ``text[start]`` (string-aware), or None if it never closes."""
    depth, in_str, escaped = 0, False, False
    for i in range(start, len(text)):
        ch = text[i]
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
                return i + 1
    return None


def extract_json(text: str | None) -> Extracted:
    """The output's JSON object (or array): after thinking, inside a fenced block or after leading prose.

    Bracket groups are read in order; one that opens and never closes makes the output ``truncated_json``
    (nothing inside it is used: the object that was being written is the answer, not a part of it), a closed
    group that does not parse is skipped whole. An array counts when it starts the answer or holds an object.
    """
    answer = strip_thinking(text)
    if not answer.ok:
        return answer
    body = answer.value
    if m := _FENCE.search(body):
        body = m.group(1).strip()
    decoder, pos, invalid = json.JSONDecoder(), 0, False
    while (start := _next_bracket(body, pos)) is not None:
        try:
            value, end = decoder.raw_decode(body, start)
        except json.JSONDecodeError:
            end = _span_end(body, start)
            if end is None:
                return _fail("truncated_json")
            invalid, pos = True, end
            continue
        if isinstance(value, dict) or start == 0 or any(isinstance(v, dict) for v in value):
            return Extracted(value)
        pos = end  # "[1]" in prose is not the answer
    return _fail("invalid_json" if invalid else "no_json")


def _next_bracket(body: str, pos: int) -> int | None:
    found = [i for i in (body.find("{", pos), body.find("[", pos)) if i >= 0]
    return min(found) if found else None


def extract_json_field(text: str | None, field: str = "answer") -> Extracted:
    """One field of the output's JSON object, e.g. ``answer`` of ``{"thinking process": ..., "answer": ...}``."""
    obj = extract_json(text)
    if not obj.ok:
        return obj
    if not isinstance(obj.value, dict):
        return _fail("wrong_type")
    key = _find_key(obj.value, field)
    return Extracted(obj.value[key]) if key is not None else _fail("missing_field")


def unwrap_field(value: Any, field: str | None) -> Any:
    """``value[field]`` when ``value`` is an object holding ``field`` (a JSON string in it is parsed), else
    ``value``: the optional answer wrapper of ``{"thinking process": ..., "answer": {...}}``."""
    if field is None or not isinstance(value, dict) or (key := _find_key(value, field)) is None:
        return value
    inner = value[key]
    if isinstance(inner, str) and inner.strip().startswith(("{", "[")):
        parsed = extract_json(inner)
        return parsed.value if parsed.ok else inner
    return inner


def extract_answer_text(text: str | None, field: str = "answer", strip_prefix: bool = True) -> Extracted:
    """The free-text answer: after thinking, the JSON ``field`` when the answer is JSON, minus "Answer:" unless
    ``strip_prefix`` is False (captions: COCO's pipeline scores a caption as written)."""
    body = _answer_body(text, field)
    if not body.ok:
        return body
    value = _ANSWER_PREFIX.sub("", body.value, count=1).strip() if strip_prefix else body.value
    return Extracted(value) if value else _fail("no_answer")


def _find_key(obj: dict, field: str) -> Any:
    if field in obj:
        return field
    wanted = _norm_key(field)
    return next((key for key in obj if _norm_key(key) == wanted), None)


def _norm_key(key: str) -> str:
    return re.sub(r"[\s_\-]+", " ", str(key)).strip().lower()

"""`<thinking>` answers: writing one, parsing one back with its malformed cases named, counting thinking tokens."""

from __future__ import annotations

from dataclasses import dataclass

THINK_OPEN, THINK_CLOSE = "<thinking>", "</thinking>"
SEPARATOR = "\n\n"  # between the close marker and the answer (Qwen3 writes "</think>\n\n" too)

# Malformed cases, each named so a report can count them.
NO_THINKING = "no_thinking"
MISSING_CLOSE = "missing_close"
MISSING_OPEN = "missing_open"
MULTIPLE_BLOCKS = "multiple_blocks"
UNBALANCED_MARKERS = "unbalanced_markers"
TEXT_BEFORE_THINKING = "text_before_thinking"
ANSWER_INSIDE_THINKING = "answer_inside_thinking"
EMPTY_ANSWER = "empty_answer"
MALFORMED = {
    NO_THINKING: "no thinking block: the whole output is taken as the answer",
    MISSING_CLOSE: "the thinking block is never closed (the output ran out inside it): no answer",
    MISSING_OPEN: "a close marker without an open marker",
    MULTIPLE_BLOCKS: "two or more thinking blocks: their texts are joined, the answer is what follows the last",
    UNBALANCED_MARKERS: "open and close markers out of order or unequal in number: the thinking runs from the first "
                        "open to the last close",
    TEXT_BEFORE_THINKING: "text before the thinking block (it is dropped)",
    ANSWER_INSIDE_THINKING: "nothing after the thinking block: any answer is inside the thinking",
    EMPTY_ANSWER: "an empty thinking block and nothing after it",
}


@dataclass(frozen=True)
class ThinkingParse:
    """A generated reasoning answer split into its thinking and its answer.

    `thinking` and `answer` are stripped of surrounding whitespace; `error` is None for a well-formed output,
    else one of `MALFORMED`'s names. `opens`/`closes` count the markers.
    """

    thinking: str
    answer: str
    error: str | None
    opens: int
    closes: int

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def one_block(self) -> bool:
        """Exactly one thinking block, opened then closed (whatever surrounds it)."""
        return self.opens == 1 and self.closes == 1 and self.error not in (UNBALANCED_MARKERS, MISSING_OPEN)


def format_reasoning(thinking: str, answer: str, open: str = THINK_OPEN, close: str = THINK_CLOSE,
                     separator: str = SEPARATOR) -> str:
    """The assistant text of a reasoning answer; empty thinking gives the release's `<thinking>\\n</thinking>`."""
    inner = f"\n{thinking.strip()}\n" if thinking.strip() else "\n"
    return f"{open}{inner}{close}{separator}{answer}"


def parse_thinking(text: str, open: str = THINK_OPEN, close: str = THINK_CLOSE) -> ThinkingParse:
    """Split `text` (a generated assistant turn) into thinking and answer, naming what is malformed."""
    opens, closes = text.count(open), text.count(close)

    def result(thinking: str, answer: str, error: str | None) -> ThinkingParse:
        return ThinkingParse(thinking.strip(), answer.strip(), error, opens, closes)

    if opens == 0 and closes == 0:
        return result("", text, NO_THINKING)
    if opens == 0:
        head, _, tail = text.rpartition(close)
        return result(head.replace(close, ""), tail, MISSING_OPEN)
    if closes == 0:
        return result(text.split(open, 1)[1].replace(open, ""), "", MISSING_CLOSE)
    start, end = text.index(open), text.rindex(close)
    if end < start:
        return result(text[start + len(open) :].replace(close, ""), "", UNBALANCED_MARKERS)
    if not _ordered(text, open, close):
        return result(text[start + len(open) : end].replace(open, "").replace(close, ""), text[end + len(close) :],
                      UNBALANCED_MARKERS)
    answer = text[end + len(close) :]
    if opens > 1:
        blocks = [part.split(close, 1)[0] for part in text.split(open)[1:]]
        return result("\n".join(b.strip() for b in blocks), answer, MULTIPLE_BLOCKS)
    thinking = text[start + len(open) : end]
    if text[:start].strip():
        return result(thinking, answer, TEXT_BEFORE_THINKING)
    if not answer.strip():
        return result(thinking, answer, ANSWER_INSIDE_THINKING if thinking.strip() else EMPTY_ANSWER)
    return result(thinking, answer, None)


def _ordered(text: str, open: str, close: str) -> bool:
    """Markers alternate open, close, open, close, ... with as many of each."""
    depth, i = 0, 0
    while True:
        a, b = text.find(open, i), text.find(close, i)
        if a < 0 and b < 0:
            return depth == 0
        if a >= 0 and (b < 0 or a < b):
            if depth:
                return False
            depth, i = 1, a + len(open)
        else:
            if not depth:
                return False
            depth, i = 0, b + len(close)


def count_thinking_tokens(thinking: str | ThinkingParse, tokenizer) -> int:
    """Tokens of the thinking text (stripped; 0 for an empty block) under `tokenizer`, without special tokens."""
    text = thinking.thinking if isinstance(thinking, ThinkingParse) else thinking.strip()
    return len(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0

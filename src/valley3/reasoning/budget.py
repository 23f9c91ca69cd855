"""Budget forcing at inference (s1): cap the thinking at N tokens, or lengthen it by suppressing its end N times."""

from __future__ import annotations

from collections.abc import Callable, Sequence
import os
from dataclasses import dataclass
from typing import Any, Protocol

from valley3.reasoning.parse import (
    SEPARATOR,
    ThinkingParse,
    count_thinking_tokens,
    format_reasoning,
    parse_thinking,
)

Streamer = Callable[[int, str], None]


class _Policy(Protocol):
    """What budget forcing needs of `valley3.policy.Policy` (duck-typed: reasoning/ sits below policy/)."""

    processor: Any

    def generate(self, prompts: Sequence[Any], **kwargs: Any) -> list[list[Any]]: ...


@dataclass
class ReasonedAnswer:
    """One generated reasoning answer.

    `text` is the whole assistant turn as the model's context held it (forced parts included); `parsed` splits it;
    `thinking_tokens` counts its thinking as `count_thinking_tokens` does; `capped` is True when the end marker was
    forced (the cap was reached, or the model stopped inside the thinking); `extensions` counts suppressed ends.
    """

    text: str
    parsed: ThinkingParse
    thinking_tokens: int
    capped: bool = False
    extensions: int = 0

    @property
    def thinking(self) -> str:
        return self.parsed.thinking

    @property
    def answer(self) -> str:
        return self.parsed.answer


@dataclass
class _Row:
    cap: int | None
    thinking: str = ""  # the thinking text so far (after "<thinking>\n")
    capped: bool = False
    extensions: int = 0
    thinking_now: bool = True
    shown: str = ""  # what the streamer was given
    held: str = ""  # streamed text held back: it may be the start of a close marker that gets suppressed


class BudgetForcing:
    """s1's budget forcing over a policy's `generate` (prefix + stop strings); one call at a time per object.

    Args:
        max_thinking_tokens: hard cap on thinking tokens (None: no cap). At the cap the thinking is cut and the end
            marker and separator are forced as written text, so a marker of several tokens works the same; then the
            model answers.
        extend: how many times to suppress the model's own end of thinking and append `wait` (while under the cap).
        wait: what is appended to the thinking when its end is suppressed (s1: "Wait").
        max_new_tokens: tokens of a thinking phase when there is no cap, and of a plain (unforced) generation.
        max_answer_tokens: tokens of the answer after the forced end of thinking (default `max_new_tokens`).
    """

    def __init__(self, max_thinking_tokens: int | None = None, extend: int = 0, wait: str = "Wait",
                 max_new_tokens: int = 512, max_answer_tokens: int | None = None):
        if (max_thinking_tokens is not None and max_thinking_tokens < 0) or extend < 0:
            raise ValueError(f"max_thinking_tokens and extend must be >= 0, got {max_thinking_tokens}, {extend}")
        self.max_thinking_tokens, self.extend, self.wait = max_thinking_tokens, extend, wait
        self.max_new_tokens, self.max_answer_tokens = max_new_tokens, max_answer_tokens
        self._rows: list[_Row] = []

    @property
    def forcing(self) -> bool:
        return self.max_thinking_tokens is not None or self.extend > 0

    def __call__(self, policy: _Policy, prompts: Sequence[Any], caps: Sequence[int | None] | None = None,
                 streamer: Streamer | None = None, **sampling: Any) -> list[ReasonedAnswer]:
        """Answer each prompt (Sample or messages record, "effort" naming its level); `caps` overrides the cap per
        prompt; `sampling` (temperature, top_p, top_k, seed) goes to `policy.generate`."""
        caps = [self.max_thinking_tokens] * len(prompts) if caps is None else list(caps)
        if len(caps) != len(prompts):
            raise ValueError(f"{len(caps)} thinking budgets for {len(prompts)} prompts")
        self._policy, self._prompts, self._streamer, self._sampling = policy, prompts, streamer, sampling
        tokens = policy.processor.template.tokens
        self._open, self._close = tokens.think_start, tokens.think_end
        if all(c is None for c in caps) and self.extend == 0:
            outs = policy.generate(prompts, max_new_tokens=self.max_new_tokens, streamer=streamer, **sampling)
            return [self._result(out[0].text) for out in outs]
        self._rows = [_Row(cap) for cap in caps]
        while active := [i for i, row in enumerate(self._rows) if row.thinking_now]:
            self._think(active)
        return self._answer()

    def _answer(self) -> list[ReasonedAnswer]:
        """The answers after the (forced) end of thinking. The first token can be neither the end of the turn nor a
        (one-token) marker, so the answer is not empty; a marker written later ends the answer, so the output keeps
        one thinking block within the cap."""
        prefixes = [self._closed(row.thinking) for row in self._rows]
        for i, prefix in enumerate(prefixes):
            self._show(i, prefix)
        rows = list(range(len(prefixes)))
        tok = self._policy.processor.tokenizer
        markers = [tok(m, add_special_tokens=False)["input_ids"] for m in (self._open, self._close)]
        outs = self._policy.generate(self._prompts, prefix=prefixes, stop=[self._open, self._close],
                                     max_new_tokens=self.max_answer_tokens or self.max_new_tokens,
                                     streamer=self._hold(rows), min_new_tokens=1,
                                     early_banned=[ids[0] for ids in markers if len(ids) == 1], **self._sampling)
        results = []
        for i, (out, row) in enumerate(zip(outs, self._rows)):
            answer = out[0].text[: -len(out[0].stop)] if out[0].finish_reason == "stop" else out[0].text
            self._show(i, prefixes[i] + answer)
            results.append(self._result(prefixes[i] + answer, row))
        return results

    def _think(self, active: list[int]) -> None:
        """One thinking phase of the rows still thinking: each generates up to the close marker or its cap."""
        tok = self._policy.processor.tokenizer
        room = {i: self.max_new_tokens if self._rows[i].cap is None
                else self._rows[i].cap - count_thinking_tokens(self._rows[i].thinking, tok) for i in active}
        for i in active:
            self._show(i, self._context(i))
            if room[i] <= 0:  # the appended `wait` used the budget up: close now
                self._end(i, self._cut(self._rows[i].thinking, self._rows[i].cap), capped=True)
        # Rows of equal room share a call, so each row's token limit is exact.
        for limit in sorted({r for r in room.values() if r > 0}):
            members = [i for i in active if room[i] == limit]
            outs = self._policy.generate(
                [self._prompts[i] for i in members], prefix=[self._context(i) for i in members],
                stop=[self._close, self._open],
                max_new_tokens=limit, streamer=self._hold(members), **self._sampling)
            for i, out in zip(members, outs):
                self._after(i, out[0])

    def _after(self, i: int, out: Any) -> None:
        row, tok = self._rows[i], self._policy.processor.tokenizer
        stop = out.stop if out.finish_reason == "stop" else None
        closed = stop == self._close  # an open marker inside the thinking ends it too, by force
        thinking = row.thinking + (out.text[: -len(stop)] if stop else out.text)
        if row.cap is not None and count_thinking_tokens(thinking, tok) > row.cap:
            return self._end(i, self._cut(thinking, row.cap), capped=True)
        if closed and row.extensions < self.extend:  # suppress the end: drop the marker, append `wait`
            row.thinking = thinking.rstrip() + ("\n" if thinking.strip() else "") + self.wait
            row.extensions += 1
            return None
        return self._end(i, thinking, capped=not closed)

    def _end(self, i: int, thinking: str, capped: bool) -> None:
        row = self._rows[i]
        row.thinking, row.capped, row.thinking_now = thinking, capped, False

    def _cut(self, thinking: str, cap: int) -> str:
        """The longest token prefix of `thinking` that counts (as `count_thinking_tokens` does) within `cap`."""
        tok = self._policy.processor.tokenizer
        ids = tok(thinking.strip(), add_special_tokens=False)["input_ids"]
        keep = min(len(ids), cap)
        while keep > 0 and count_thinking_tokens(tok.decode(ids[:keep]), tok) > cap:
            keep -= 1
        return tok.decode(ids[:keep]) if keep else ""

    def _closed(self, thinking: str) -> str:
        """The thinking as the model wrote it, then the end marker and separator (forced, or the model's own)."""
        if not thinking.strip():
            return format_reasoning("", "", self._open, self._close)
        newline = "" if thinking.endswith("\n") else "\n"
        return f"{self._open}\n{thinking}{newline}{self._close}{SEPARATOR}"

    def _context(self, i: int) -> str:
        return f"{self._open}\n{self._rows[i].thinking}"

    # -- streaming: what is shown follows the context, never a close marker that was then suppressed ----------
    def _hold(self, members: list[int]) -> Streamer | None:
        """A streamer for a call over `members` that holds back any tail which may be the start of a marker."""
        if self._streamer is None:
            return None
        markers = (self._open, self._close)

        def stream(j: int, delta: str) -> None:
            row = self._rows[members[j]]
            held = row.held + delta
            keep = max(n for n in range(min(len(held), max(map(len, markers))) + 1)
                       if n == 0 or any(m.startswith(held[-n:]) for m in markers))
            self._show(members[j], row.shown + held[: len(held) - keep], hold=held[len(held) - keep:])

        return stream

    def _show(self, i: int, target: str, hold: str = "") -> None:
        """Stream what `target` (the text the row's context holds) adds to what was shown."""
        row = self._rows[i]
        row.held = hold
        if self._streamer is None:
            return
        # Where the context left what was shown (whitespace the format normalises, or a cut after streaming),
        # the display cannot take text back: it goes on from where the two part.
        delta, row.shown = target[len(os.path.commonprefix([row.shown, target])):], target
        if delta:
            self._streamer(i, delta)

    def _result(self, text: str, row: _Row | None = None) -> ReasonedAnswer:
        parsed = parse_thinking(text, self._open, self._close)
        n = count_thinking_tokens(parsed, self._policy.processor.tokenizer)
        return ReasonedAnswer(text, parsed, n, row.capped if row else False, row.extensions if row else 0)

"""Generated text as it grows: incremental detokenization and stop strings (kept, possibly spanning tokens)."""

from __future__ import annotations

from collections.abc import Callable, Sequence


class GrowingText:
    """One row's text, grown token by token, cut right after the first stop string that appears.

    Each new token is decoded within a short window (the tokens since the previous emitted piece), so a step costs
    the same however long the text is; a token that ends inside a multi-byte character waits for the next one.

    Args:
        decode: token ids -> text.
        stop: strings that end the text; the first to complete (it may span several tokens) is kept, the rest cut.
    """

    def __init__(self, decode: Callable[[list[int]], str], stop: Sequence[str] = ()):
        self.decode = decode
        self.stops = [s for s in stop if s]
        self.ids: list[int] = []
        self.text = ""
        self.stop: str | None = None  # the stop string that ended the text
        self._start = self._read = 0  # decode window: ids[_start:_read] already emitted, ids[_read:] pending

    def push(self, token: int) -> str:
        """Add a token; returns the text it adds (maybe "" while a character is incomplete)."""
        self.ids.append(token)
        before = self.decode(self.ids[self._start : self._read])
        after = self.decode(self.ids[self._start :])
        if len(after) <= len(before) or after.endswith("\ufffd"):
            return ""
        self._start, self._read = self._read, len(self.ids)
        return self._append(after[len(before) :])

    def finish(self) -> str:
        """Once generation ended: whatever text the window still held back (e.g. a character cut at the end)."""
        if self.stop is not None:
            return ""
        full = self.decode(self.ids)
        return self._append(full[len(self.text) :]) if full.startswith(self.text) else ""

    def _append(self, delta: str) -> str:
        old = len(self.text)
        self.text += delta
        ends = []
        for s in self.stops:
            at = self.text.find(s, max(0, old - len(s) + 1))  # only where the new text completes it
            if at >= 0:
                ends.append((at + len(s), s))
        if ends:
            end, self.stop = min(ends)
            self.text = self.text[:end]
        return self.text[old:]

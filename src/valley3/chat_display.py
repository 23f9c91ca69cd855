"""Streamed reasoning answers on a terminal: the thinking dimmed (ANSI) or hidden, the answer as it comes."""

from __future__ import annotations

from typing import TextIO

DIM, RESET = "\x1b[2m", "\x1b[0m"


class ThinkingDisplay:
    """Writes text deltas as they stream; the `<thinking>...</thinking>` block is dimmed, or left out when hidden.

    Markers may arrive split over deltas (a marker of several tokens), so a tail that could start one is held back
    until the next delta decides it.

    Args:
        out: where to write (flushed after every delta).
        open: the thinking start marker.
        close: the thinking end marker.
        hide: leave the thinking out (the answer is still shown).
        color: dim the thinking with ANSI codes (False: plain text).
    """

    def __init__(self, out: TextIO, open: str = "<thinking>", close: str = "</thinking>", hide: bool = False,
                 color: bool = True):
        self.out, self.open, self.close, self.hide, self.color = out, open, close, hide, color
        self.reset()

    def reset(self) -> None:
        """Start a new answer."""
        self.inside, self.pending, self.after_close = False, "", False

    def feed(self, delta: str) -> None:
        self.pending += delta
        while self.pending:
            # Outside a block a stray close marker (the open one was in the prompt, or never written) is a marker too.
            found = [(self.pending.find(m), m) for m in ((self.close,) if self.inside else (self.open, self.close))]
            found = [(at, m) for at, m in found if at >= 0]
            if found:
                at, marker = min(found)
                self._write(self.pending[:at])
                self._marker(marker)
                self.pending = self.pending[at + len(marker) :]
                continue
            keep = next((n for n in range(min(len(self.pending), max(len(self.open), len(self.close)) - 1), 0, -1)
                         if self.open.startswith(self.pending[-n:]) or self.close.startswith(self.pending[-n:])), 0)
            self._write(self.pending[: len(self.pending) - keep])
            self.pending = self.pending[len(self.pending) - keep :]
            break
        self.out.flush()

    def finish(self) -> None:
        """Write what was held back and close the dimmed span."""
        self._write(self.pending)
        self.pending = ""
        if self.inside and self.color and not self.hide:
            self.out.write(RESET)
        self.out.write("\n")
        self.out.flush()
        self.reset()

    def _marker(self, marker: str) -> None:
        if marker == self.open:
            self.inside = True
            if not self.hide:
                self.out.write((DIM if self.color else "") + marker)
        else:
            if not self.hide:
                self.out.write((DIM if self.color and not self.inside else "") + marker + (RESET if self.color else ""))
            self.inside, self.after_close = False, True

    def _write(self, text: str) -> None:
        if self.inside and self.hide:
            return
        if self.after_close and self.hide:  # the separator after a hidden block is left out too
            text = text.lstrip("\n")
            self.after_close = not text
        if text:
            self.out.write(text)

"""The sample schema every data format is read into: Sample, Turn, MediaRef, with validation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROLES = ("system", "user", "assistant", "tool")
MEDIA_KINDS = ("image", "audio", "video")
# The tag a turn's text carries where a media item stands, e.g. "<image>What colour is it?".
MEDIA_TAGS = {kind: f"<{kind}>" for kind in MEDIA_KINDS}


class SchemaError(ValueError):
    """A sample that does not fit the schema; the message names its file and line."""


def read_records(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """("file:line", record) for each non-blank JSONL line (a byte-order mark is allowed); a line that is not a
    JSON object is a SchemaError naming it."""
    with open(path, encoding="utf-8-sig") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SchemaError(f"{where}: invalid JSON ({exc.msg}, column {exc.colno})") from None
            if not isinstance(record, dict):
                raise SchemaError(f"{where}: expected a JSON object, got {type(record).__name__}")
            yield where, record


@dataclass(frozen=True)
class MediaRef:
    kind: str  # one of MEDIA_KINDS
    path: str  # absolute, or relative to the file that referenced it (resolved by the reader)


@dataclass(frozen=True)
class Turn:
    role: str  # one of ROLES
    content: str  # text with one MEDIA_TAGS tag where each media item stands


@dataclass
class Sample:
    """One conversation. Within a kind, `media` lists items in the order their tags appear."""

    id: str
    turns: list[Turn]
    media: list[MediaRef] = field(default_factory=list)
    source: str = "<memory>"  # "file:line", used in every error about this sample
    meta: dict[str, Any] = field(default_factory=dict)

    def media_of(self, kind: str) -> list[MediaRef]:
        return [m for m in self.media if m.kind == kind]

    @property
    def modalities(self) -> set[str]:
        return {m.kind for m in self.media} | {"text"}

    def validate(self) -> Sample:
        """Raise SchemaError naming `source` unless roles, turn order and media tags are consistent."""
        where = f"{self.source} (sample {self.id!r})"
        if not self.turns:
            raise SchemaError(f"{where}: no turns")
        for i, turn in enumerate(self.turns):
            if turn.role not in ROLES:
                raise SchemaError(f"{where}: turn {i} has role {turn.role!r}; expected one of {ROLES}")
            if not isinstance(turn.content, str):
                raise SchemaError(f"{where}: turn {i} content must be a string, got {type(turn.content).__name__}")
        if self.turns[0].role == "system":
            body = self.turns[1:]
        else:
            body = self.turns
        if any(t.role == "system" for t in body):
            raise SchemaError(f"{where}: a system turn may only come first")
        if not any(t.role == "assistant" for t in body):
            raise SchemaError(f"{where}: no assistant turn, so nothing to learn from")
        for m in self.media:
            if m.kind not in MEDIA_KINDS:
                raise SchemaError(f"{where}: media kind {m.kind!r}; expected one of {MEDIA_KINDS}")
            if not m.path:
                raise SchemaError(f"{where}: empty {m.kind} path")
        for kind, tag in MEDIA_TAGS.items():
            tags = sum(t.content.count(tag) for t in self.turns)
            refs = len(self.media_of(kind))
            if tags != refs:
                raise SchemaError(f"{where}: {tags} {tag} tag(s) in the text but {refs} {kind} file(s)")
        return self

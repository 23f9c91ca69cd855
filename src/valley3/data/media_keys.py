"""Which record keys hold media, per data format; any other key holding media files is an error."""

from __future__ import annotations

import os
from typing import Any

from valley3.data.schema import MEDIA_KINDS, SchemaError

# Each format's own spelling first, then the other tools' one: ms-swift's messages use plurals ("images"), and
# so does LLaMA-Factory's ShareGPT; LLaVA's conversations use singulars ("image"). Both are read in both formats.
SPELLINGS = {
    "messages": {kind: (f"{kind}s", kind) for kind in MEDIA_KINDS},
    "llava": {kind: (kind, f"{kind}s") for kind in MEDIA_KINDS},
}
MEDIA_KEYS = {key for spellings in SPELLINGS["messages"].values() for key in spellings}
# File endings of media the loaders read; an unknown key whose value ends so would be dropped silently.
_EXTENSIONS = {
    ".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".heic",  # images
    ".wav", ".mp3", ".flac", ".ogg", ".opus", ".m4a", ".aac",  # audio
    ".mp4", ".avi", ".mov", ".mkv", ".webm", ".flv", ".m4v", ".mpeg", ".mpg", ".ts",  # video
}


def media_paths(record: dict[str, Any], kind: str, format: str, where: str) -> tuple[str, list[str]]:
    """(the key used, its paths) of one media kind in a record of `format`; both spellings at once is an error."""
    spellings = SPELLINGS[format][kind]
    present = [key for key in spellings if record.get(key) is not None]
    if len(present) > 1:
        raise SchemaError(f"{where}: both {present[0]!r} and {present[1]!r} hold {kind} files; use one")
    key = present[0] if present else spellings[0]
    value = record.get(key)
    if value is None:
        return key, []
    items = [value] if isinstance(value, (str, dict)) else value
    if not isinstance(items, list):
        raise SchemaError(f"{where}: '{key}' must be a path or a list of paths, got {type(value).__name__}")
    paths = []
    for item in items:
        path = item.get("path") if isinstance(item, dict) else item  # ms-swift also writes {"path": ...} entries
        if not isinstance(path, str):
            raise SchemaError(f"{where}: '{key}' entries must be paths (strings), got {type(item).__name__}")
        paths.append(path)
    return key, paths


def check_unknown(record: dict[str, Any], known: set[str], where: str) -> None:
    """Raise if a key the reader does not take holds what looks like media files (it would be dropped)."""
    for key, value in record.items():
        if key in known:
            continue
        files = [v for v in _strings(value) if os.path.splitext(v.split("?")[0])[1].lower() in _EXTENSIONS]
        if files:
            raise SchemaError(
                f"{where}: key {key!r} holds media file(s) ({files[0]!r}) but is not a media key; "
                f"valley3 reads media from {sorted(MEDIA_KEYS)}"
            )


def _strings(value: Any) -> list[str]:
    """A path, a list of paths, or {"path": ...} entries (ms-swift), as strings; anything else gives none."""
    items = value if isinstance(value, list) else [value]
    items = [item.get("path") if isinstance(item, dict) else item for item in items]
    return [item for item in items if isinstance(item, str)]

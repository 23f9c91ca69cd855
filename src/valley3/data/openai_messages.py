"""OpenAI chat messages (text, image, audio and video content parts) -> a valley3 messages record."""

from __future__ import annotations

import base64
import binascii
import mimetypes
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

# Part type -> (media kind, the key holding the part's payload). "input_audio" is OpenAI's; the *_url ones are
# what vLLM and SGLang accept.
_PARTS = {"image_url": ("image", "image_url"), "audio_url": ("audio", "audio_url"), "video_url": ("video", "video_url"),
          "input_audio": ("audio", "input_audio")}


class MessageError(ValueError):
    """A request's messages cannot be read; the message names the message and part."""


def _data_url(url: str, kind: str, out: Path, where: str) -> str:
    header, _, payload = url.partition(",")
    if ";base64" not in header:
        raise MessageError(f"{where}: only base64 data URLs are read")
    mime = header[5:].split(";")[0]
    suffix = mimetypes.guess_extension(mime) or f".{mime.rpartition('/')[2] or kind}"
    return _write(payload, suffix, out, where)


def _write(payload: str, suffix: str, out: Path, where: str) -> str:
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as err:
        raise MessageError(f"{where}: the base64 payload does not decode ({err})") from None
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{len(list(out.iterdir())):04d}{suffix}"
    path.write_bytes(data)
    return str(path)


def _local(url: str, where: str, roots: Sequence[Path] | None) -> str:
    path = Path(unquote(urlparse(url).path) if url.startswith("file://") else url).expanduser().resolve()
    if roots is not None and not any(path.is_relative_to(r) for r in roots):
        raise MessageError(f"{where}: {path} lies outside the folders this server may read")
    if not path.is_file():
        raise MessageError(f"{where}: no such file {path}")
    return str(path)


def media_path(part: dict[str, Any], out: Path, where: str, roots: Sequence[Path] | None = None) -> tuple[str, str]:
    """(kind, local path) of one media part; a data URL or base64 audio is written into `out`."""
    kind, key = _PARTS[part["type"]]
    value = part.get(key)
    if part["type"] == "input_audio":
        if not isinstance(value, dict) or not isinstance(value.get("data"), str):
            raise MessageError(f"{where}: input_audio needs {{'data': base64, 'format': 'wav'}}")
        return kind, _write(value["data"], f".{value.get('format', 'wav')}", out, where)
    url = value.get("url") if isinstance(value, dict) else value
    if not isinstance(url, str) or not url:
        raise MessageError(f"{where}: {key} needs a url")
    if url.startswith("data:"):
        return kind, _data_url(url, kind, out, where)
    if url.startswith(("http://", "https://")):
        raise MessageError(f"{where}: remote media are not fetched (no network); send a data URL or a local path")
    return kind, _local(url, where, roots)


def to_record(messages: Sequence[dict[str, Any]], media_dir: str | os.PathLike,
              roots: Sequence[str | os.PathLike] | None = None) -> dict[str, Any]:
    """A messages record (`valley3.data.formats`) from OpenAI chat messages: text parts joined, each media part a
    tag where it stands plus its file (local paths as given, data URLs written into `media_dir`).

    Args:
        messages: [{"role": ..., "content": str | [parts] | None}, ...].
        media_dir: where decoded data URLs go (the caller removes it after the request).
        roots: folders local paths must lie in (None: any readable file).
    """
    out, allowed = Path(media_dir), None if roots is None else [Path(r).resolve() for r in roots]
    record: dict[str, Any] = {"messages": [], "images": [], "audios": [], "videos": []}
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise MessageError(f"message {i}: expected an object with a 'role'")
        content = message.get("content") or ""
        if isinstance(content, list):
            text = []
            for j, part in enumerate(content):
                where = f"message {i} part {j}"
                kind = part.get("type") if isinstance(part, dict) else None
                if kind == "text":
                    text.append(str(part.get("text", "")))
                elif kind in _PARTS:
                    media, path = media_path(part, out, where, allowed)
                    text.append(f"<{media}>")
                    record[f"{media}s"].append(path)
                else:
                    raise MessageError(f"{where}: unsupported part type {kind!r} (text, {', '.join(_PARTS)})")
            content = "".join(text)
        elif not isinstance(content, str):
            raise MessageError(f"message {i}: content must be a string or a list of parts")
        record["messages"].append({"role": message["role"], "content": content})
    return {k: v for k, v in record.items() if v or k == "messages"}

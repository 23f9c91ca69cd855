"""Readers of ms-swift "messages" and LLaVA/ShareGPT "conversations" data files into validated Samples."""

from __future__ import annotations

import codecs
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from valley3.data.media_keys import MEDIA_KEYS, check_unknown, media_paths
from valley3.data.schema import MEDIA_KINDS, MEDIA_TAGS, MediaRef, Sample, SchemaError, Turn
from valley3.data.templates import render_tool_call

FORMATS = ("auto", "messages", "llava")
# LLaVA/ShareGPT speakers -> schema roles; an unlisted speaker is an error rather than a guess.
LLAVA_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
    "tool": "tool",
    "observation": "tool",
}
_MESSAGES_KEYS = {"id", "messages", "system", *MEDIA_KEYS}
_LLAVA_KEYS = {"id", "conversations", "system", *MEDIA_KEYS}
_TAG_RE = re.compile("|".join(re.escape(tag) for tag in MEDIA_TAGS.values()))


def read_samples(
    path: str | os.PathLike, format: str = "auto", media_root: str | os.PathLike | None = None,
    errors: list[str] | None = None,
) -> list[Sample]:
    """Read every sample of a JSONL or JSON-list file, each validated.

    Args:
        path: the data file. A file whose first non-blank character is "[" is a JSON list (its entries are
            counted from 0 in messages); anything else is JSONL (lines counted from 1, blank lines skipped).
        format: "messages" (ms-swift), "llava" (LLaVA-OneVision / ShareGPT "conversations"), or "auto",
            which picks per record by its "messages" or "conversations" key.
        media_root: folder that relative media paths are resolved against; default the data file's folder.
        errors: given, a record that does not fit is skipped and its error message appended here.

    Raises:
        SchemaError: a record does not fit; the message starts with "file:line" (or "file: entry N").
    """
    return list(iter_samples(path, format, media_root, errors))


def iter_samples(
    path: str | os.PathLike, format: str = "auto", media_root: str | os.PathLike | None = None,
    errors: list[str] | None = None,
) -> Iterator[Sample]:
    """Like `read_samples`, but yields samples one by one, so JSONL files of any size stream.

    Args:
        path: the data file.
        format: "messages", "llava" or "auto".
        media_root: folder that relative media paths are resolved against; default the data file's folder.
        errors: given, a record that does not fit is skipped and its error message appended here.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    path = Path(path)
    base_dir = Path(media_root).expanduser().absolute() if media_root is not None else path.absolute().parent
    for source, default_id, record in _records(path):
        try:
            if isinstance(record, SchemaError):  # a line that is not JSON (or not UTF-8)
                raise record
            sample = parse_record(record, source, base_dir, format, default_id=default_id)
        except SchemaError as err:
            if errors is None:
                raise
            errors.append(str(err))
            continue
        yield sample


def parse_record(
    record: dict[str, Any],
    source: str,
    base_dir: str | os.PathLike,
    format: str = "auto",
    default_id: str | None = None,
) -> Sample:
    """Turn one decoded record into a validated Sample.

    Media with no tag in the text get their tags prepended to the first user turn ("<image>" in messages
    records, as ms-swift does; "<image>\\n" in LLaVA records); a partial tag/file mismatch is an error.

    Args:
        record: the decoded JSON object.
        source: where it came from ("file:line"); every error message starts with it.
        base_dir: folder that relative media paths are resolved against.
        format: "messages", "llava", or "auto" (chosen by the record's "messages"/"conversations" key).
        default_id: the id when the record has none; defaults to `source`.
    """
    if not isinstance(record, dict):
        raise SchemaError(f"{source}: expected a JSON object, got {_type(record)}")
    sample_id = record.get("id")
    if sample_id is None:
        sample_id = default_id or source
    if isinstance(sample_id, int) and not isinstance(sample_id, bool):
        sample_id = str(sample_id)
    if not isinstance(sample_id, str):
        raise SchemaError(f"{source}: 'id' must be a string, got {_type(sample_id)}")
    where = f"{source} (sample {sample_id!r})"
    if format == "auto":
        format = _detect(record, where)
    if format == "messages":
        turns, files = _messages(record, where)
        known, sep = _MESSAGES_KEYS, ""
    elif format == "llava":
        turns, files = _llava(record, where)
        known, sep = _LLAVA_KEYS, "\n"
    else:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    check_unknown(record, known, where)
    turns = _with_system(turns, record.get("system"), where)
    turns = _with_missing_tags(turns, files, sep)
    media = _media_in_tag_order(turns, files, Path(base_dir))
    meta = {k: v for k, v in record.items() if k not in known}
    if isinstance(meta.get("meta"), dict):  # a record's own "meta" object (pass_rate, ifd, ...) is read flat
        meta = {**meta.pop("meta"), **meta}
    return Sample(id=sample_id, turns=turns, media=media, source=source, meta=meta).validate()


def _records(path: Path) -> Iterator[tuple[str, str, Any]]:
    """Yield (source, default id, decoded record) for each record of a JSON-list or JSONL file."""
    if _is_json_list(path):
        text = _decode(path.read_bytes(), path, 1)
        try:
            records = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SchemaError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg}, column {exc.colno})") from None
        for index, record in enumerate(records):
            yield f"{path}: entry {index}", f"{path.stem}:{index}", record
        return
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            # A bad line is yielded as its error, so a reader that skips bad records can go on to the next line.
            line = ""
            try:
                line = _decode(raw, path, lineno).strip()
                record = json.loads(line) if line else None
            except SchemaError as err:
                record = err
            except json.JSONDecodeError as exc:
                hint = " (a .json file must hold one JSON list)" if path.suffix == ".json" else ""
                record = SchemaError(f"{path}:{lineno}: invalid JSON ({exc.msg}, column {exc.colno}){hint}")
            if isinstance(record, SchemaError) or line:
                yield f"{path}:{lineno}", f"{path.stem}:{lineno}", record


def _is_json_list(path: Path) -> bool:
    with path.open("rb") as f:
        for raw in f:
            stripped = raw.removeprefix(codecs.BOM_UTF8).strip()
            if stripped:
                return stripped.startswith(b"[")
    return False


def _decode(raw: bytes, path: Path, first_line: int) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = first_line + raw[: exc.start].count(b"\n")
        raise SchemaError(f"{path}:{line}: not UTF-8 text (byte {exc.start})") from None


def _detect(record: dict[str, Any], where: str) -> str:
    if "messages" in record:
        return "messages"
    if "conversations" in record:
        return "llava"
    raise SchemaError(f"{where}: no 'messages' or 'conversations' key; keys are {sorted(record)}")


def _messages(record: dict[str, Any], where: str) -> tuple[list[Turn], dict[str, list[str]]]:
    messages = _required_list(record, "messages", where)
    turns, inline = [], {kind: [] for kind in MEDIA_KINDS}
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise SchemaError(f"{where}: message {i} must be an object with 'role' and 'content', got {_type(message)}")
        role, content = message.get("role"), message.get("content")
        if not isinstance(role, str):
            raise SchemaError(f"{where}: message {i} 'role' must be a string, got {_type(role)}")
        if isinstance(content, list):
            content = _join_parts(content, inline, f"{where}: message {i}")
        elif not isinstance(content, str):
            got = _type(content)
            raise SchemaError(f"{where}: message {i} 'content' must be a string or a list of parts, got {got}")
        if message.get("tool_calls"):
            content = _with_tool_calls(content, message["tool_calls"], f"{where}: message {i}")
        turns.append(Turn(role, content))
    files = {}
    for kind in MEDIA_KINDS:
        key, listed = media_paths(record, kind, "messages", where)
        if inline[kind] and listed:
            raise SchemaError(f"{where}: {kind} paths given both inside the content and in '{key}'; use one")
        files[kind] = inline[kind] or listed
    return turns, files


def _with_tool_calls(content: str, calls: Any, where: str) -> str:
    """An OpenAI/TRL `tool_calls` list rendered after the content, one `<tool_call>` block per call."""
    if not isinstance(calls, list):
        raise SchemaError(f"{where}: 'tool_calls' must be a list, got {_type(calls)}")
    blocks = []
    for j, call in enumerate(calls):
        fn = call.get("function", call) if isinstance(call, dict) else None
        args = fn.get("arguments", {}) if isinstance(fn, dict) else None
        if isinstance(args, str):  # OpenAI sends the arguments as a JSON string
            try:
                args = json.loads(args)
            except json.JSONDecodeError as exc:
                raise SchemaError(f"{where} tool call {j}: arguments are not valid JSON ({exc.msg})") from None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not isinstance(args, dict):
            raise SchemaError(f"{where} tool call {j}: expected {{'function': {{'name': str, 'arguments': object}}}}")
        blocks.append(render_tool_call(fn["name"], args))
    return "\n".join([content, *blocks] if content else blocks)


def _join_parts(parts: list[Any], inline: dict[str, list[str]], where: str) -> str:
    """Content parts -> text with a tag per media part; inline media paths go to `inline` in order."""
    pieces = []
    for j, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise SchemaError(f"{where} part {j}: 'text' must be a string, got {_type(part.get('text'))}")
            pieces.append(part["text"])
        elif kind in MEDIA_KINDS:
            pieces.append(MEDIA_TAGS[kind])
            # A media part without a path is a placeholder for the record's top-level list (HF style).
            path = part.get(kind, part.get("path", part.get("url")))
            if path is not None:
                if not isinstance(path, str):
                    raise SchemaError(f"{where} part {j}: {kind} path must be a string, got {_type(path)}")
                inline[kind].append(path)
        else:
            got = f"type {kind!r}" if isinstance(part, dict) else _type(part)
            raise SchemaError(f"{where} part {j}: {got}; expected an object of type text, image, audio or video")
    return "".join(pieces)


def _llava(record: dict[str, Any], where: str) -> tuple[list[Turn], dict[str, list[str]]]:
    turns = []
    for i, message in enumerate(_required_list(record, "conversations", where)):
        if not isinstance(message, dict):
            raise SchemaError(f"{where}: turn {i} must be an object with 'from' and 'value', got {_type(message)}")
        speaker, value = message.get("from"), message.get("value")
        role = LLAVA_ROLES.get(speaker.lower()) if isinstance(speaker, str) else None
        if role is None:
            raise SchemaError(f"{where}: turn {i} is from {speaker!r}; expected one of {sorted(LLAVA_ROLES)}")
        if not isinstance(value, str):
            raise SchemaError(f"{where}: turn {i} 'value' must be a string, got {_type(value)}")
        turns.append(Turn(role, value))
    files = {kind: media_paths(record, kind, "llava", where)[1] for kind in MEDIA_KINDS}
    if files["video"] and not files["image"] and _count(turns, "video") == 0:
        if _count(turns, "image") == len(files["video"]):
            # LLaVA-Video data marks a video with <image>, which LLaVA-NeXT's loader expects.
            turns = [Turn(t.role, t.content.replace(MEDIA_TAGS["image"], MEDIA_TAGS["video"])) for t in turns]
    return turns, files


def _with_system(turns: list[Turn], system: Any, where: str) -> list[Turn]:
    if system is None:
        return turns
    if not isinstance(system, str):
        raise SchemaError(f"{where}: 'system' must be a string, got {_type(system)}")
    if turns and turns[0].role == "system":
        raise SchemaError(f"{where}: both a 'system' key and a system turn")
    return [Turn("system", system), *turns]


def _with_missing_tags(turns: list[Turn], files: dict[str, list[str]], sep: str) -> list[Turn]:
    prefix = "".join((MEDIA_TAGS[k] + sep) * len(files[k]) for k in MEDIA_KINDS if files[k] and not _count(turns, k))
    first_user = next((i for i, t in enumerate(turns) if t.role == "user"), None)
    if not prefix or first_user is None:
        return turns  # nothing to add, or validation reports the mismatch
    turns = list(turns)
    turns[first_user] = Turn("user", prefix + turns[first_user].content)
    return turns


def _media_in_tag_order(turns: list[Turn], files: dict[str, list[str]], base_dir: Path) -> list[MediaRef]:
    """Pair each tag with the next file of its kind; leftovers go last, for validation to report."""
    queues = {kind: list(paths) for kind, paths in files.items()}
    media = []
    for turn in turns:
        for match in _TAG_RE.finditer(turn.content):
            kind = match.group()[1:-1]
            if queues[kind]:
                media.append(MediaRef(kind, queues[kind].pop(0)))
    media += [MediaRef(kind, path) for kind in MEDIA_KINDS for path in queues[kind]]
    return [MediaRef(m.kind, _resolve(m.path, base_dir)) for m in media]


def _resolve(path: str, base_dir: Path) -> str:
    if not path or "://" in path or os.path.isabs(path):
        return path  # empty paths fail validation; URLs are kept for the loader to reject by name
    return str(base_dir / path)


def _required_list(record: dict[str, Any], key: str, where: str) -> list[Any]:
    if key not in record:
        raise SchemaError(f"{where}: missing {key!r} key; keys are {sorted(record)}")
    if not isinstance(record[key], list):
        raise SchemaError(f"{where}: {key!r} must be a list, got {_type(record[key])}")
    return record[key]


def _count(turns: list[Turn], kind: str) -> int:
    return sum(t.content.count(MEDIA_TAGS[kind]) for t in turns)


def _type(value: Any) -> str:
    return type(value).__name__

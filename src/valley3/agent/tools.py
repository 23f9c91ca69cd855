"""Tools a model may call (name, JSON schema, function), Hermes-format call parsing, and a registry that runs calls."""

from __future__ import annotations

import functools
import inspect
import json
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jsonschema
from transformers.utils import get_json_schema

from valley3.data.schema import MEDIA_TAGS
from valley3.data.templates import SpecialTokens, tools_system_prompt

# The tool turn a failed call gets instead of a result. The model reads it and may try again; the loop never
# raises. `ToolResult.error` names the kind, so rewards and logs can count failures by kind.
MALFORMED = ('Error: the tool call is not valid JSON ({detail}). '
             'Write <tool_call>{{"name": ..., "arguments": {{...}}}}</tool_call>.')
UNKNOWN_TOOL = "Error: there is no tool named {name!r}. Available tools: {names}."
BAD_ARGUMENTS = "Error: invalid arguments for {name}: {detail}."
TIMEOUT = "Error: {name} did not answer within {seconds:g} s."
FAILED = "Error: {name} failed: {detail}."
ERROR_KINDS = ("malformed", "unknown_tool", "bad_arguments", "timeout", "failed")


@dataclass
class ToolResult:
    """What a tool turn shows the model: text, with one `<image>` tag in it per entry of `images`."""

    text: str
    images: list[str] = field(default_factory=list)  # image files; they enter the next turn as image inputs
    error: str | None = None  # one of ERROR_KINDS when the call failed (then `text` is the error message)


@dataclass
class ToolCall:
    """One parsed `<tool_call>` block; `error` holds the MALFORMED message when its JSON is unusable."""

    name: str
    arguments: dict[str, Any]
    raw: str
    error: str | None = None


@dataclass
class ToolContext:
    """What a tool may see of the conversation besides its arguments."""

    images: list[str] = field(default_factory=list)  # the conversation's images so far, in order


@dataclass
class Tool:
    """A callable tool.

    Args:
        name: the name the model calls it by.
        description: one line telling the model what it does.
        parameters: JSON schema (an object schema) of its arguments; calls are validated against it.
        fn: the function, called with the arguments as keywords (and `context=ToolContext` when its signature
            has a `context` parameter). It returns a str, a ToolResult, or anything JSON-serialisable.
        timeout: seconds a call may take before the model gets the TIMEOUT message.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., Any]
    timeout: float = 10.0

    @classmethod
    def from_function(cls, fn: Callable[..., Any], timeout: float = 10.0) -> Tool:
        """A tool whose schema comes from `fn`'s type hints and Google-style docstring (as TRL's `tools=`)."""
        spec = get_json_schema(_without_context(fn))["function"]
        return cls(spec["name"], spec.get("description", ""), spec["parameters"], fn, timeout)

    def schema(self) -> dict[str, Any]:
        """The OpenAI function schema listed in the system prompt."""
        return {"type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}


def _without_context(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` as the schema reader should see it: without the `context` parameter the registry fills in."""
    signature = inspect.signature(fn)
    if "context" not in signature.parameters:
        return fn
    shim = functools.wraps(fn)(lambda **kwargs: fn(**kwargs))  # __wrapped__ keeps fn's globals for type hints
    shim.__annotations__ = {k: v for k, v in fn.__annotations__.items() if k != "context"}
    shim.__signature__ = signature.replace(parameters=[p for p in signature.parameters.values() if p.name != "context"])
    return shim


def parse_tool_calls(text: str, tokens: SpecialTokens | None = None) -> list[ToolCall]:
    """Every `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` block of `text`, in order.

    A block that is not a JSON object with a string "name" and an object "arguments" (missing arguments count as
    {}), or an opening tag that is never closed, yields a ToolCall with `error` set; nothing raises.
    """
    t = tokens or SpecialTokens()
    start, end = re.escape(t.tool_call_start), re.escape(t.tool_call_end)
    calls = []
    for match in re.finditer(f"{start}(.*?)(?:{end}|$)", text, flags=re.S):
        raw = match.group(1)
        if not match.group(0).endswith(t.tool_call_end):
            calls.append(ToolCall("", {}, raw, MALFORMED.format(detail=f"no closing {t.tool_call_end}")))
            continue
        try:
            body = json.loads(raw)
        except json.JSONDecodeError as exc:
            calls.append(ToolCall("", {}, raw, MALFORMED.format(detail=f"{exc.msg} at character {exc.pos}")))
            continue
        problem = _shape_problem(body)
        if problem:
            calls.append(ToolCall("", {}, raw, MALFORMED.format(detail=problem)))
        else:
            calls.append(ToolCall(body["name"], body.get("arguments") or {}, raw))
    return calls


def _shape_problem(body: Any) -> str | None:
    if not isinstance(body, dict):
        return f"expected an object, got {type(body).__name__}"
    if not isinstance(body.get("name"), str):
        return 'no string "name"'
    if not isinstance(body.get("arguments") or {}, dict):
        return '"arguments" must be an object'
    return None


class ToolRegistry:
    """The tools a model may call; `run` answers a parsed call with a result or a documented error message.

    Args:
        tools: the tools (names must be unique).
    """

    def __init__(self, tools: Sequence[Tool]):
        self.tools = {}
        for tool in tools:
            if tool.name in self.tools:
                raise ValueError(f"two tools are named {tool.name!r}")
            jsonschema.Draft202012Validator.check_schema(tool.parameters)
            self.tools[tool.name] = tool

    def system_prompt(self, system: str, tokens: SpecialTokens | None = None) -> str:
        """`system` with every tool's schema declared, in the format the calls are parsed in."""
        return tools_system_prompt(system, [tool.schema() for tool in self.tools.values()], tokens)

    def run(self, call: ToolCall, context: ToolContext | None = None) -> ToolResult:
        """Run one call with its tool's timeout; every failure becomes an error ToolResult, never an exception."""
        if call.error:
            return ToolResult(call.error, error="malformed")
        tool = self.tools.get(call.name)
        if tool is None:
            return ToolResult(UNKNOWN_TOOL.format(name=call.name, names=", ".join(self.tools)), error="unknown_tool")
        problems = sorted(jsonschema.Draft202012Validator(tool.parameters).iter_errors(call.arguments), key=str)
        if problems:
            where = "/".join(map(str, problems[0].absolute_path))
            detail = f"{where}: {problems[0].message}" if where else problems[0].message
            return ToolResult(BAD_ARGUMENTS.format(name=tool.name, detail=detail), error="bad_arguments")
        kwargs = dict(call.arguments)
        if "context" in inspect.signature(tool.fn).parameters:
            kwargs["context"] = context or ToolContext()
        return _with_timeout(tool, kwargs)


def _with_timeout(tool: Tool, kwargs: dict[str, Any]) -> ToolResult:
    """Call the tool on a daemon thread and wait up to its timeout. A Python thread cannot be killed, so a tool
    that hangs keeps its thread until it returns; the conversation goes on without it."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = tool.fn(**kwargs)
        except Exception as exc:  # the model sees what went wrong, the loop goes on
            box["error"] = f"{type(exc).__name__}: {exc}"

    thread = threading.Thread(target=target, name=f"tool-{tool.name}", daemon=True)
    thread.start()
    thread.join(tool.timeout)
    if thread.is_alive():
        return ToolResult(TIMEOUT.format(name=tool.name, seconds=tool.timeout), error="timeout")
    if "error" in box:
        return ToolResult(FAILED.format(name=tool.name, detail=box["error"]), error="failed")
    return _as_result(tool.name, box.get("value"))


def _as_result(name: str, value: Any) -> ToolResult:
    if isinstance(value, ToolResult):
        result = value
    elif isinstance(value, str):
        result = ToolResult(value)
    else:
        try:
            result = ToolResult(json.dumps(value, ensure_ascii=False))
        except (TypeError, ValueError) as exc:
            return ToolResult(FAILED.format(name=name, detail=f"result is not JSON-serialisable ({exc})"), error="failed")
    tags = {kind: result.text.count(tag) for kind, tag in MEDIA_TAGS.items()}
    if tags["image"] != len(result.images) or tags["audio"] or tags["video"]:
        # A stray tag would shift every later image onto the wrong placeholder run.
        detail = f"its text has {tags['image']} <image> tag(s) for {len(result.images)} image(s)"
        if tags["audio"] or tags["video"]:
            detail = "its text has <audio>/<video> tags; tools return text and images only"
        return ToolResult(FAILED.format(name=name, detail=detail), error="failed")
    return result

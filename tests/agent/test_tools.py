"""Tool protocol: Hermes-format parsing, schema checks, timeouts and errors as tool messages, template rendering."""

from __future__ import annotations

import json
import time

import pytest

from valley3.agent.tools import (
    BAD_ARGUMENTS,
    FAILED,
    TIMEOUT,
    UNKNOWN_TOOL,
    Tool,
    ToolContext,
    ToolRegistry,
    ToolResult,
    parse_tool_calls,
)
from transformers import AutoTokenizer

from valley3.assets import tiny_tokenizer_dir
from valley3.data.formats import parse_record
from valley3.data.schema import Turn
from valley3.data.templates import ChatTemplate, render_tool_call


def lookup(item_id: str, fields: list[str] | None = None) -> dict:
    """Look up a catalog item.

    Args:
        item_id: the item's id.
        fields: which fields to return.
    """
    return {"id": item_id, "price": 9.99, "fields": fields}


def show(item_id: str, context: ToolContext) -> ToolResult:
    """Show an item's photo.

    Args:
        item_id: the item's id.
    """
    return ToolResult(f"{item_id}: <image>", images=[context.images[0]])


def slow(seconds: float) -> str:
    """Sleep.

    Args:
        seconds: how long.
    """
    time.sleep(seconds)
    return "done"


def broken(x: int) -> str:
    """Always fails.

    Args:
        x: anything.
    """
    raise KeyError("no such row")


@pytest.fixture
def registry():
    tools = [Tool.from_function(f) for f in (lookup, show, broken)]
    return ToolRegistry([*tools, Tool.from_function(slow, timeout=0.2)])


def test_parse_hermes_calls_in_order():
    text = ('<thinking>need two</thinking>' + render_tool_call("lookup", {"item_id": "p1"})
            + "\n" + render_tool_call("show", {"item_id": "p2"}))
    calls = parse_tool_calls(text)
    assert [(c.name, c.arguments, c.error) for c in calls] == [("lookup", {"item_id": "p1"}, None),
                                                               ("show", {"item_id": "p2"}, None)]
    assert parse_tool_calls('<tool_call>{"name": "lookup"}</tool_call>')[0].arguments == {}
    assert parse_tool_calls("no call here") == []


@pytest.mark.parametrize("body, detail", [
    ('{"name": "lookup", "arguments": {"item_id": "p1"}', "Expecting ',' delimiter"),
    ('["lookup"]', "expected an object, got list"),
    ('{"arguments": {}}', 'no string "name"'),
    ('{"name": "lookup", "arguments": "p1"}', '"arguments" must be an object'),
])
def test_malformed_calls_become_error_messages(registry, body, detail):
    call = parse_tool_calls(f"<tool_call>{body}</tool_call>")[0]
    result = registry.run(call)
    assert result.error == "malformed" and detail in result.text
    assert result.text.startswith("Error: the tool call is not valid JSON")


def test_unclosed_call_is_malformed(registry):
    call = parse_tool_calls('<tool_call>{"name": "lookup", "arguments": {"item_id": "p1"}}')[0]
    assert registry.run(call).error == "malformed" and "no closing </tool_call>" in call.error


def test_unknown_tool_and_bad_arguments(registry):
    result = registry.run(parse_tool_calls(render_tool_call("buy", {}))[0])
    assert result.error == "unknown_tool"
    assert result.text == UNKNOWN_TOOL.format(name="buy", names="lookup, show, broken, slow")
    result = registry.run(parse_tool_calls(render_tool_call("lookup", {"item_id": 3}))[0])
    assert result.error == "bad_arguments"
    assert result.text == BAD_ARGUMENTS.format(name="lookup", detail="item_id: 3 is not of type 'string'")
    result = registry.run(parse_tool_calls(render_tool_call("lookup", {}))[0])
    assert result.error == "bad_arguments" and "'item_id' is a required property" in result.text


def test_results_timeout_and_exceptions(registry):
    ok = registry.run(parse_tool_calls(render_tool_call("lookup", {"item_id": "p1", "fields": ["price"]}))[0])
    assert ok.error is None and json.loads(ok.text) == {"id": "p1", "price": 9.99, "fields": ["price"]}
    start = time.monotonic()
    late = registry.run(parse_tool_calls(render_tool_call("slow", {"seconds": 5}))[0])
    assert time.monotonic() - start < 2
    assert late.error == "timeout" and late.text == TIMEOUT.format(name="slow", seconds=0.2)
    failed = registry.run(parse_tool_calls(render_tool_call("broken", {"x": 1}))[0])
    assert failed.error == "failed" and failed.text == FAILED.format(name="broken", detail="KeyError: 'no such row'")


def test_tool_images_come_from_context_and_tags_are_checked(registry):
    result = registry.run(parse_tool_calls(render_tool_call("show", {"item_id": "p1"}))[0], ToolContext(["a.png"]))
    assert (result.text, result.images, result.error) == ("p1: <image>", ["a.png"], None)
    liar = ToolRegistry([Tool("liar", "", {"type": "object"}, lambda: ToolResult("<image><image>", ["a.png"]))])
    assert liar.run(parse_tool_calls(render_tool_call("liar", {}))[0]).error == "failed"


def test_system_prompt_lists_every_schema(registry):
    text = registry.system_prompt("You shop.")
    listed = text.split("<tools>\n")[1].split("\n</tools>")[0].splitlines()
    assert [json.loads(line)["function"]["name"] for line in listed] == ["lookup", "show", "broken", "slow"]
    assert text.startswith("You shop.\n\n# Tools")


def test_template_renders_tool_turns_as_qwen():
    turns = [Turn("user", "hi"), Turn("assistant", render_tool_call("a", {}) ), Turn("tool", "r1"),
             Turn("tool", "r2"), Turn("assistant", "ok")]
    segs = ChatTemplate(default_system="").segments(turns)
    text = "".join(s.text for s in segs)
    assert text == ("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<tool_call>\n"
                    '{"name": "a", "arguments": {}}\n</tool_call><|im_end|>\n'
                    "<|im_start|>user\n<tool_response>\nr1\n</tool_response>\n<tool_response>\nr2\n"
                    "</tool_response><|im_end|>\n<|im_start|>assistant\nok<|im_end|>\n")
    assert not any(s.trained for s in segs if "tool_response" in s.text)
    # The exported Jinja template (tokenizer.apply_chat_template) renders tool turns the same way.
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir())
    messages = [{"role": t.role, "content": t.content} for t in turns]
    for system in ("", "Be brief."):
        template = ChatTemplate(default_system=system)
        jinja = tokenizer.apply_chat_template(messages, chat_template=template.jinja(), tokenize=False,
                                              add_generation_prompt=True)
        assert jinja == template.text(turns, add_generation_prompt=True)


def test_messages_with_openai_tool_calls(tmp_path):
    record = {"messages": [
        {"role": "user", "content": "price?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": "lookup", "arguments": '{"item_id": "p1"}'}}]},
        {"role": "tool", "content": "9.99"}, {"role": "assistant", "content": "$9.99"}]}
    sample = parse_record(record, "x.jsonl:1", tmp_path)
    assert sample.turns[1].content == render_tool_call("lookup", {"item_id": "p1"})
    record["messages"][1]["tool_calls"][0]["function"]["arguments"] = "{bad"
    with pytest.raises(ValueError, match="x.jsonl:1 .* tool call 0: arguments are not valid JSON"):
        parse_record(record, "x.jsonl:1", tmp_path)

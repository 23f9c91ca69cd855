"""Chat template (ChatML, as Qwen uses) and the special tokens it and the media placeholders need."""

from __future__ import annotations

import json
from dataclasses import astuple, dataclass
from typing import Any

from valley3.data.schema import Turn


@dataclass(frozen=True)
class SpecialTokens:
    """Token strings of the template; defaults match Qwen3(-VL/-Omni) tokenizers."""

    im_start: str = "<|im_start|>"
    im_end: str = "<|im_end|>"
    pad: str = "<|endoftext|>"
    vision_start: str = "<|vision_start|>"
    vision_end: str = "<|vision_end|>"
    image: str = "<|image_pad|>"
    video: str = "<|video_pad|>"
    audio_start: str = "<|audio_start|>"
    audio_end: str = "<|audio_end|>"
    audio: str = "<|audio_pad|>"
    think_start: str = "<thinking>"
    think_end: str = "</thinking>"
    tool_call_start: str = "<tool_call>"
    tool_call_end: str = "</tool_call>"

    def all(self) -> list[str]:
        return list(astuple(self))

    def placeholder(self, kind: str) -> str:
        """The token repeated once per feature of a media item of `kind`."""
        return {"image": self.image, "video": self.video, "audio": self.audio}[kind]

    def brackets(self, kind: str) -> tuple[str, str]:
        """The tokens that open and close a media item's placeholder run."""
        if kind == "audio":
            return self.audio_start, self.audio_end
        return self.vision_start, self.vision_end


# Tool results come back inside a user turn, one tagged block per result, as Qwen2.5/Qwen3 render a "tool"
# message; the tags are plain text (not special tokens), as in those tokenizers' chat templates.
TOOL_RESPONSE_START = "<tool_response>"
TOOL_RESPONSE_END = "</tool_response>"


def render_tool_call(name: str, arguments: dict[str, Any], tokens: SpecialTokens | None = None) -> str:
    """One call in the Hermes/Qwen format: `<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`."""
    t = tokens or SpecialTokens()
    body = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return f"{t.tool_call_start}\n{body}\n{t.tool_call_end}"


def tools_system_prompt(system: str, tools: list[dict[str, Any]], tokens: SpecialTokens | None = None) -> str:
    """`system` followed by the tool declarations (OpenAI function schemas, one JSON per line in `<tools>`)."""
    t = tokens or SpecialTokens()
    listed = "\n".join(json.dumps(tool, ensure_ascii=False) for tool in tools)
    example = render_tool_call("<name>", {"<argument>": "<value>"}, t)
    return (f"{system}\n\n# Tools\n\nThese functions can be called; their signatures are listed in <tools></tools>:\n"
            f"<tools>\n{listed}\n</tools>\n\nTo call one, write a JSON object with its name and arguments inside "
            f"{t.tool_call_start}{t.tool_call_end} tags, then stop and wait for the result:\n{example}")


@dataclass(frozen=True)
class Segment:
    text: str
    trained: bool  # True where the tokens carry labels (assistant replies)


class ChatTemplate:
    """Renders turns as ChatML segments; only assistant content and its end token are trained.

    Args:
        tokens: the special tokens.
        default_system: system prompt used when a sample has none ("" for none at all).
    """

    def __init__(self, tokens: SpecialTokens | None = None, default_system: str = "You are a helpful assistant."):
        self.tokens = tokens or SpecialTokens()
        self.default_system = default_system

    def segments(self, turns: list[Turn], add_generation_prompt: bool = False) -> list[Segment]:
        t = self.tokens
        if turns[0].role != "system" and self.default_system:
            turns = [Turn("system", self.default_system), *turns]
        out: list[Segment] = []
        for i, turn in enumerate(turns):
            if turn.role == "tool":
                out.append(self.tool_segment(turns, i))
                continue
            out.append(Segment(f"{t.im_start}{turn.role}\n", False))
            if turn.role == "assistant":
                out.append(Segment(f"{turn.content}{t.im_end}", True))
                out.append(Segment("\n", False))
            else:
                out.append(Segment(f"{turn.content}{t.im_end}\n", False))
        if add_generation_prompt:
            out.append(Segment(f"{t.im_start}assistant\n", False))
        return out

    def tool_segment(self, turns: list[Turn], i: int) -> Segment:
        """Tool turn `i` as Qwen renders it: consecutive tool turns share one user turn, each result tagged.

        Never trained: a tool's output is the environment's, not the model's.
        """
        t, first = self.tokens, i == 0 or turns[i - 1].role != "tool"
        last = i == len(turns) - 1 or turns[i + 1].role != "tool"
        text = f"\n{TOOL_RESPONSE_START}\n{turns[i].content}\n{TOOL_RESPONSE_END}"
        return Segment((f"{t.im_start}user" if first else "") + text + (f"{t.im_end}\n" if last else ""), False)

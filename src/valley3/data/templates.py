"""Chat template (ChatML, as Qwen uses) and the special tokens it and the media placeholders need."""

from __future__ import annotations

import json
import re
from dataclasses import astuple, dataclass
from typing import Any

from valley3.data.schema import Turn
from valley3.reasoning.effort import EffortLevels, effort_levels


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

    def in_text(self) -> set[str]:
        """Markup that data text itself carries (reasoning and tool-call spans): never a control token to escape."""
        return {self.think_start, self.think_end, self.tool_call_start, self.tool_call_end}

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
    data: bool = False  # a turn's own text, not template markup: control tokens in it are rejected or escaped


class ChatTemplate:
    """Renders turns as ChatML segments; only assistant content and its end token are trained.

    A reasoning sample names its effort level (`effort`): its system turn becomes the base system prompt followed
    by the level set's effort block, the same bytes in SFT, RL and inference.

    Args:
        tokens: the special tokens.
        default_system: system prompt used when a sample has none ("" for none at all).
        efforts: the reasoning-effort level set (`valley3.reasoning.effort_levels` spec; default the release's
            minimal/medium/high).
        train_thinking: False leaves the text inside `<thinking>...</thinking>` out of the loss (the markers and
            the answer stay trained); the token ids are the same either way.
    """

    def __init__(self, tokens: SpecialTokens | None = None, default_system: str = "You are a helpful assistant.",
                 efforts: str | dict[str, Any] | EffortLevels | None = None, train_thinking: bool = True):
        self.tokens = tokens or SpecialTokens()
        self.default_system = default_system
        self.efforts = effort_levels(efforts)
        self.train_thinking = train_thinking

    def segments(self, turns: list[Turn], add_generation_prompt: bool = False, effort: str | None = None) -> list[Segment]:
        t = self.tokens
        if effort is not None:
            turns = self.with_effort(turns, effort)
        elif turns[0].role != "system" and self.default_system:
            turns = [Turn("system", self.default_system), *turns]
        out: list[Segment] = []
        for i, turn in enumerate(turns):
            if turn.role == "tool":
                out += self.tool_segments(turns, i)
                continue
            out.append(Segment(f"{t.im_start}{turn.role}\n", False))
            # The content is a segment of its own; tokenizers never merge across a special token, so the ids equal
            # those of content and end token rendered together. Assistant content is cut at the thinking markers
            # so the thinking can go untrained (`train_thinking`).
            trained = turn.role == "assistant"
            pieces = self._assistant(turn.content) if trained else [Segment(turn.content, False)]
            out += [Segment(piece.text, piece.trained, data=True) for piece in pieces]
            out.append(Segment(t.im_end, trained))
            out.append(Segment("\n", False))
        if add_generation_prompt:
            out.append(Segment(f"{t.im_start}assistant\n", False))
        return out

    def tool_segments(self, turns: list[Turn], i: int) -> list[Segment]:
        """Tool turn `i` as Qwen renders it: consecutive tool turns share one user turn, each result tagged. Never
        trained: a tool's output is the environment's words, not the model's."""
        t, first = self.tokens, i == 0 or turns[i - 1].role != "tool"
        last = i == len(turns) - 1 or turns[i + 1].role != "tool"
        out = [Segment(f"{t.im_start}user", False)] if first else []
        out += [Segment(f"\n{TOOL_RESPONSE_START}\n", False), Segment(turns[i].content, False, data=True),
                Segment(f"\n{TOOL_RESPONSE_END}", False)]
        return out + ([Segment(t.im_end, False), Segment("\n", False)] if last else [])

    def jinja(self) -> str:
        """The same rendering as a Jinja chat template (for `tokenizer.apply_chat_template`), as Qwen-Omni's processors
        expect it: a content item {"type": "image"|"video"|"audio"} becomes its bracketed placeholder
        (<|vision_start|><|image_pad|><|vision_end|>, ...), which the processor expands; a string content may carry
        valley3's <image>/<video>/<audio> tags instead."""
        t, lit = self.tokens, _literal
        media = {kind: "".join(self.brackets_around(kind)) for kind in ("image", "video", "audio")}
        content = "message['content']" + "".join(f" | replace({lit(f'<{k}>')}, media[{lit(k)}])" for k in media)
        lines = [
            "{%- set media = " + "{" + ", ".join(f"{lit(k)}: {lit(v)}" for k, v in media.items()) + "} -%}",
            "{%- if messages and messages[0]['role'] != 'system' and " + lit(self.default_system) + " -%}",
            "{{- " + lit(f"{t.im_start}system\n{self.default_system}{t.im_end}\n") + " -}}",
            "{%- endif -%}",
            "{%- for message in messages -%}",
            "{%- set tool = message['role'] == 'tool' -%}",
            "{%- set tool_first = tool and (loop.first or loop.previtem['role'] != 'tool') -%}",
            "{%- set tool_last = tool and (loop.last or loop.nextitem['role'] != 'tool') -%}",
            "{%- if not tool -%}{{- " + lit(t.im_start) + " + message['role'] + '\\n' -}}",
            "{%- elif tool_first -%}{{- " + lit(f"{t.im_start}user") + " -}}{%- endif -%}",
            "{%- if tool -%}{{- " + lit(f"\n{TOOL_RESPONSE_START}\n") + " -}}{%- endif -%}",
            "{%- if message['content'] is string -%}{{- " + content + " -}}",
            "{%- else -%}{%- for item in message['content'] -%}",
            "{%- if item['type'] == 'text' -%}{{- item['text'] -}}",
            "{%- elif item['type'] in media -%}{{- media[item['type']] -}}",
            "{%- else -%}{{- raise_exception('unsupported content type: ' + item['type']) -}}",
            "{%- endif -%}{%- endfor -%}{%- endif -%}",
            "{%- if tool -%}{{- " + lit(f"\n{TOOL_RESPONSE_END}") + " -}}{%- endif -%}",
            "{%- if not tool or tool_last -%}{{- " + lit(f"{t.im_end}\n") + " -}}{%- endif -%}",
            "{%- endfor -%}",
            "{%- if add_generation_prompt -%}{{- " + lit(f"{t.im_start}assistant\n") + " -}}{%- endif -%}",
        ]
        return "\n".join(lines)

    def brackets_around(self, kind: str) -> tuple[str, str, str]:
        """(start, placeholder, end) of one media item before expansion."""
        start, end = self.tokens.brackets(kind)
        return start, self.tokens.placeholder(kind), end

    def text(self, turns: list[Turn], add_generation_prompt: bool = False, effort: str | None = None) -> str:
        """The rendered conversation as one string (media tags not yet expanded)."""
        return "".join(s.text for s in self.segments(turns, add_generation_prompt, effort))

    def with_effort(self, turns: list[Turn], effort: str) -> list[Turn]:
        """`turns` with the system prompt (the sample's, else the default) followed by `effort`'s block."""
        if not isinstance(effort, str):
            raise ValueError(f"effort must be a level name (one of {self.efforts.names}), got {effort!r}")
        system = turns[0].role == "system"
        base = turns[0].content if system else self.default_system
        if self.efforts.mentions_effort(base):
            raise ValueError(f"the system prompt already carries an effort line and effort={effort!r} adds another")
        prompt = self.efforts.system_prompt(effort, base, self.tokens.think_start, self.tokens.think_end)
        return [Turn("system", prompt), *(turns[1:] if system else turns)]

    def _assistant(self, text: str) -> list[Segment]:
        """Assistant text as trained segments, cut at the thinking markers so the thinking can go untrained."""
        t = self.tokens
        if t.think_start not in text and t.think_end not in text:
            return [Segment(text, True)]
        out, inside = [], False
        # Cutting at special tokens leaves the ids unchanged: a tokenizer splits them out first anyway.
        for piece in re.split(f"({re.escape(t.think_start)}|{re.escape(t.think_end)})", text):
            if piece in (t.think_start, t.think_end):
                inside = piece == t.think_start
                out.append(Segment(piece, True))
            elif piece:
                out.append(Segment(piece, self.train_thinking or not inside))
        return out


def _literal(text: str) -> str:
    """A Jinja string literal of `text`."""
    return json.dumps(text, ensure_ascii=False)

"""Chat template (ChatML, as Qwen uses) and the special tokens it and the media placeholders need."""

from __future__ import annotations

import json
from dataclasses import astuple, dataclass

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


@dataclass(frozen=True)
class Segment:
    text: str
    trained: bool  # True where the tokens carry labels (assistant replies)
    data: bool = False  # a turn's own text, not template markup: control tokens in it are rejected or escaped


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
        for turn in turns:
            out.append(Segment(f"{t.im_start}{turn.role}\n", False))
            # The content is a segment of its own; tokenizers never merge across a special token, so the ids equal
            # those of content and end token rendered together.
            trained = turn.role == "assistant"
            out.append(Segment(turn.content, trained, data=True))
            out.append(Segment(t.im_end, trained))
            out.append(Segment("\n", False))
        if add_generation_prompt:
            out.append(Segment(f"{t.im_start}assistant\n", False))
        return out

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
            "{{- " + lit(t.im_start) + " + message['role'] + '\\n' -}}",
            "{%- if message['content'] is string -%}{{- " + content + " -}}",
            "{%- else -%}{%- for item in message['content'] -%}",
            "{%- if item['type'] == 'text' -%}{{- item['text'] -}}",
            "{%- elif item['type'] in media -%}{{- media[item['type']] -}}",
            "{%- else -%}{{- raise_exception('unsupported content type: ' + item['type']) -}}",
            "{%- endif -%}{%- endfor -%}{%- endif -%}",
            "{{- " + lit(f"{t.im_end}\n") + " -}}",
            "{%- endfor -%}",
            "{%- if add_generation_prompt -%}{{- " + lit(f"{t.im_start}assistant\n") + " -}}{%- endif -%}",
        ]
        return "\n".join(lines)

    def brackets_around(self, kind: str) -> tuple[str, str, str]:
        """(start, placeholder, end) of one media item before expansion."""
        start, end = self.tokens.brackets(kind)
        return start, self.tokens.placeholder(kind), end


def _literal(text: str) -> str:
    """A Jinja string literal of `text`."""
    return json.dumps(text, ensure_ascii=False)

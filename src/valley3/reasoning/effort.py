"""Reasoning-effort levels: their names, their prompt strings, and the effort block of the system prompt."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

# The Valley3 release's thinking checkpoint (bytedance/Valley, valley3/valley3_think_inference_examples_transformers.py)
# puts the effort after the base system prompt as a "Reasoning effort: <level>" line, then a policy (reason inside
# <thinking></thinking>, answer in the asked format after it) and a list of the levels, minimal / medium / high,
# where minimal writes an empty thinking block. The wording below is valley3's own; to chat with the released
# weights, give their exact strings as a custom level set (`effort_levels({...})`).
_POLICY = (
    "Reasoning policy:\n"
    "- Think inside {open} and {close} before answering, as much as the reasoning effort asks.\n"
    "- After {close}, answer exactly as the user asks, in the format the user asks for."
)
_NAME = re.compile(r"[A-Za-z0-9_\-]+")


@dataclass(frozen=True)
class EffortLevel:
    """One effort level.

    Args:
        name: what the prompt and `--effort` call it ("high").
        description: its line in the prompt's list of levels; `{open}`/`{close}` stand for the thinking markers.
        thinks: False when the level's thinking block is empty (the release's "minimal").
        max_thinking_tokens: the default thinking budget of the level at inference (None: no cap).
    """

    name: str
    description: str
    thinks: bool = True
    max_thinking_tokens: int | None = None


@dataclass(frozen=True)
class EffortLevels:
    """An ordered set of effort levels (least effort first) and the strings of the effort block.

    Args:
        levels: the levels, least effort first.
        line: the line naming the chosen level; `{name}` is replaced by it (gpt-oss writes "Reasoning: {name}").
        policy: text after that line; `{open}`/`{close}` stand for the thinking markers ("" for none).
        listing: header of the list of every level with its description ("" leaves the list out).
        default: the level used when a reasoning prompt names none (default: the middle one).
    """

    levels: tuple[EffortLevel, ...]
    line: str = "Reasoning effort: {name}"
    policy: str = _POLICY
    listing: str = "Reasoning effort levels:"
    default: str | None = None

    def __post_init__(self) -> None:
        names = [level.name for level in self.levels]
        if not names:
            raise ValueError("an effort level set needs at least one level")
        bad = [n for n in names if not isinstance(n, str) or not _NAME.fullmatch(n)]
        if bad or len(set(names)) != len(names):
            raise ValueError(f"effort level names must be unique words (letters, digits, '_', '-'), got {names}")
        if "{name}" not in self.line:
            raise ValueError(f"the effort line {self.line!r} must contain '{{name}}'")
        if self.default is None:
            object.__setattr__(self, "default", names[len(names) // 2])
        self.level(self.default)

    @property
    def names(self) -> list[str]:
        return [level.name for level in self.levels]

    def level(self, name: str) -> EffortLevel:
        """The level called `name`; an unknown name is an error listing the known ones."""
        for level in self.levels:
            if level.name == name:
                return level
        raise ValueError(f"unknown reasoning effort {name!r}; the levels are {self.names}")

    def block(self, name: str, open: str = "<thinking>", close: str = "</thinking>") -> str:
        """The effort block of the system prompt for level `name` (no trailing newline)."""
        self.level(name)
        parts = [self.line.format(name=name)]
        if self.policy:
            parts.append(self.policy.format(open=open, close=close))
        if self.listing:
            parts.append(self.listing)
            parts += [f"- {lv.name}: {lv.description.format(open=open, close=close)}" for lv in self.levels]
        return "\n".join(parts)

    def system_prompt(self, name: str, base: str = "", open: str = "<thinking>", close: str = "</thinking>") -> str:
        """`base` (the system prompt without effort), a newline, then the effort block; `base` may be ""."""
        block = self.block(name, open, close)
        return f"{base}\n{block}" if base else block

    def mentions_effort(self, text: str) -> bool:
        """True when `text` already carries an effort line of this set (a prompt must carry only one)."""
        head = self.line.split("{name}")[0]
        return bool(head.strip()) and any(line.startswith(head) for line in text.splitlines())


RELEASE = EffortLevels(
    levels=(
        EffortLevel("minimal", "Do not reason: leave the thinking block empty, then answer.", thinks=False),
        EffortLevel("medium", "Reason step by step and check the constraints that matter before answering."),
        EffortLevel("high", "Reason thoroughly: weigh other readings, alternatives and edge cases, and verify the "
                    "answer before giving it."),
    ),
    default="medium",
)
FIVE = EffortLevels(
    levels=(
        EffortLevel("none", "Do not reason: leave the thinking block empty, then answer.", thinks=False),
        EffortLevel("minimal", "Note only the one fact the answer rests on."),
        EffortLevel("low", "Reason briefly, in a few short steps."),
        EffortLevel("medium", "Reason step by step and check the constraints that matter before answering."),
        EffortLevel("high", "Reason thoroughly: weigh other readings, alternatives and edge cases, and verify the "
                    "answer before giving it."),
    ),
    default="medium",
)
# The release's levels with only the "Reasoning effort: <level>" line: a short prompt for small models and demos.
COMPACT = EffortLevels(levels=RELEASE.levels, policy="", listing="", default="medium")
PRESETS: dict[str, EffortLevels] = {"release": RELEASE, "five": FIVE, "compact": COMPACT}


def effort_levels(spec: str | Mapping[str, Any] | EffortLevels | None = None) -> EffortLevels:
    """A level set from a preset name ("release": minimal/medium/high, the default; "five": none/minimal/low/
    medium/high; "compact": the release's levels with only the effort line), a dict of `EffortLevels` fields whose `levels` are dicts of `EffortLevel` fields (YAML), or a set."""
    if spec is None:
        return RELEASE
    if isinstance(spec, EffortLevels):
        return spec
    if isinstance(spec, str):
        if spec not in PRESETS:
            raise ValueError(f"unknown effort level preset {spec!r}; the presets are {sorted(PRESETS)}")
        return PRESETS[spec]
    known = {f.name for f in fields(EffortLevels)}
    unknown = set(spec) - known
    if unknown or "levels" not in spec:
        raise ValueError(f"an effort level set takes {sorted(known)} (levels required), got {sorted(spec)}")
    levels = tuple(lv if isinstance(lv, EffortLevel) else EffortLevel(**lv) for lv in spec["levels"])
    return EffortLevels(**{**spec, "levels": levels})

"""Controllable reasoning: effort levels, `<thinking>` answers (format, parse, token counts), budget forcing."""

from valley3.reasoning.effort import COMPACT, FIVE, PRESETS, RELEASE, EffortLevel, EffortLevels, effort_levels
from valley3.reasoning.parse import (
    MALFORMED,
    SEPARATOR,
    THINK_CLOSE,
    THINK_OPEN,
    ThinkingParse,
    count_thinking_tokens,
    format_reasoning,
    parse_thinking,
)

__all__ = [
    "COMPACT", "FIVE", "MALFORMED", "PRESETS", "RELEASE", "SEPARATOR", "THINK_CLOSE", "THINK_OPEN", "EffortLevel",
    "EffortLevels", "ThinkingParse", "count_thinking_tokens", "effort_levels", "format_reasoning", "parse_thinking",
]

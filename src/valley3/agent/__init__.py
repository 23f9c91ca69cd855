"""Agentic search: tools and their call protocol, the offline catalog search engine, multi-turn rollouts."""

from valley3.agent.tools import (
    BAD_ARGUMENTS,
    ERROR_KINDS,
    FAILED,
    MALFORMED,
    TIMEOUT,
    UNKNOWN_TOOL,
    Tool,
    ToolCall,
    ToolContext,
    ToolRegistry,
    ToolResult,
    parse_tool_calls,
)

__all__ = [
    "BAD_ARGUMENTS", "ERROR_KINDS", "FAILED", "MALFORMED", "TIMEOUT", "UNKNOWN_TOOL", "Tool", "ToolCall",
    "ToolContext", "ToolRegistry", "ToolResult", "parse_tool_calls",
]

"""The search engine as tools a model calls: image_search (a conversation image) and text_search (a query)."""

from __future__ import annotations

from typing import Any, Protocol

from valley3.agent.search.engine import Hit
from valley3.agent.tools import Tool, ToolContext, ToolResult

_HIDDEN = ("id", "title", "image", "text", "split", "contents")
NO_IMAGE = "Error: there is no image {index} in the conversation (it has {count})."
NO_RESULTS = "No results."


class Searcher(Protocol):
    """`SearchEngine` in-process, or `SearchClient` over HTTP."""

    def search(self, text: str | None = None, image: Any = None, mode: str = "auto", k: int = 5) -> list[Hit]: ...


def format_hits(hits: list[Hit], fields: list[str] | None = None, images: int = 0) -> ToolResult:
    """One line per hit ("1. title | id: … | field: value"), the first `images` hits' photos after their lines."""
    if not hits:
        return ToolResult(NO_RESULTS)
    lines, paths = [], []
    for rank, hit in enumerate(hits, start=1):
        doc = hit.document
        shown = fields if fields is not None else [k for k in doc if k not in _HIDDEN]
        parts = [f"{rank}. {doc['title']}", f"id: {hit.id}", *(f"{k}: {doc[k]}" for k in shown if k in doc)]
        line = " | ".join(parts)
        if rank <= images:
            line += " <image>"
            paths.append(doc["image"])
        lines.append(line)
    return ToolResult("\n".join(lines), images=paths)


def search_tools(searcher: Searcher, k: int = 3, fields: list[str] | None = None, images: int = 0,
                 text_mode: str = "t2t", timeout: float = 10.0) -> list[Tool]:
    """`image_search` (image->image over the catalog photos) and `text_search` (`text_mode`, default BM25).

    Args:
        searcher: the engine, in-process or over HTTP.
        k: results per call.
        fields: item fields shown per result (default: every field but id, title, image, text, split).
        images: how many of the top results show their photo (it enters the next turn as an image input).
        text_mode: the engine mode of text_search ("t2t", "t2i", "hybrid" or "auto").
        timeout: seconds per call.
    """

    def image_search(image: int = 1, context: ToolContext | None = None) -> ToolResult:
        photos = context.images if context else []
        if not 1 <= image <= len(photos):
            return ToolResult(NO_IMAGE.format(index=image, count=len(photos)), error="failed")
        return format_hits(searcher.search(image=photos[image - 1], mode="i2i", k=k), fields, images)

    def text_search(query: str) -> ToolResult:
        return format_hits(searcher.search(query, mode=text_mode, k=k), fields, images)

    image_schema = {"type": "object", "properties": {"image": {
        "type": "integer", "minimum": 1, "description": "which image of the conversation to search with (1 = first)"}}}
    text_schema = {"type": "object", "properties": {"query": {"type": "string", "description": "what to look for"}},
                   "required": ["query"]}
    return [Tool("image_search", "Find catalog products that look like an image of the conversation.", image_schema,
                 image_search, timeout),
            Tool("text_search", "Find catalog products by words of their title or description.", text_schema,
                 text_search, timeout)]

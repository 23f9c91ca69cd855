"""Product catalogs for the search engine: the JSONL format, its validation, and a synthetic catalog generator."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from valley3.data.demo import BRANDS, CATEGORIES, COLOURS, LINES
from valley3.data.schema import SchemaError, read_records

# The fields a search result's text leaves out: they name or locate the item rather than describe it.
_NOT_SHOWN = ("id", "title", "image", "text", "split")
# Chinese names for the synthetic titles, so text search is exercised on text without spaces.
_ZH_COLOURS = {"red": "红色", "blue": "蓝色", "green": "绿色", "yellow": "黄色", "black": "黑色", "white": "白色",
               "orange": "橙色", "purple": "紫色"}
_ZH_CATEGORIES = {"shoe": "鞋", "bag": "包", "shirt": "衬衫", "mug": "杯子", "lamp": "台灯", "watch": "手表",
                  "hat": "帽子", "bottle": "水瓶"}


class CatalogError(ValueError):
    """A catalog line that cannot be indexed; the message starts with "file:line"."""


def read_catalog(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a catalog: JSONL, one product per line with a unique string "id", a "title", an "image" (a path,
    relative to the catalog's folder or absolute), an optional "text" (description) and any other fields, which
    are kept and shown in results. Image paths come back absolute.

    Raises:
        CatalogError: invalid JSON, a missing or ill-typed field, a duplicate id or a missing image file,
            naming the line.
    """
    path = Path(path)
    items, seen = [], {}
    try:
        records = list(read_records(path))
    except SchemaError as exc:
        raise CatalogError(str(exc)) from None
    for where, item in records:
        for key in ("id", "title", "image"):
            if not isinstance(item.get(key), str) or not item[key]:
                raise CatalogError(f"{where}: needs a non-empty string {key!r}")
        if item["id"] in seen:
            raise CatalogError(f"{where}: id {item['id']!r} already used at {seen[item['id']]}")
        seen[item["id"]] = where
        image = Path(item["image"]) if os.path.isabs(item["image"]) else path.parent / item["image"]
        if not image.is_file():
            raise CatalogError(f"{where}: image {image} does not exist")
        items.append({**item, "image": str(image.absolute())})
    return items


def document(item: dict[str, Any]) -> dict[str, Any]:
    """A result document: the item plus Search-R1's "contents" ('"title"\\n' then the text), so clients written
    for Search-R1/verl's retriever read it unchanged."""
    body = item.get("text") or "; ".join(f"{k}: {v}" for k, v in item.items() if k not in _NOT_SHOWN)
    return {**item, "contents": f'"{item["title"]}"\n{body}'}


def write_synthetic_catalog(out: str | os.PathLike, n: int, seed: int = 0, image_size: int = 48) -> Path:
    """Write `n` synthetic products (catalog.jsonl + images/) into `out` and return the catalog path.

    Each image is a random arrangement of coloured boxes and ellipses on a random background, so no two items
    share pixels; titles mix English and Chinese words from the demo's vocabulary. Deterministic from `seed`.
    """
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        colour, category = rng.choice(sorted(COLOURS)), rng.choice(sorted(CATEGORIES))
        brand, line, material = rng.choice(BRANDS), rng.choice(LINES), rng.choice(CATEGORIES[category])
        title = f"{brand} {line} {colour.title()} {material.title()} {category.title()} {i}"
        item = {"id": f"s{i:06d}", "title": title, "text": f"{_ZH_COLOURS[colour]}{_ZH_CATEGORIES[category]} {title}",
                "image": f"images/s{i:06d}.png", "price": round(rng.uniform(1, 500), 2)}
        _draw(rng, out / item["image"], image_size)
        rows.append(item)
    path = out / "catalog.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    return path


def _draw(rng: random.Random, path: Path, size: int) -> None:
    colour = lambda: tuple(rng.randrange(256) for _ in range(3))  # noqa: E731
    image = Image.new("RGB", (size, size), colour())
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x0, y0 = rng.randrange(size - 8), rng.randrange(size - 8)
        box = (x0, y0, rng.randrange(x0 + 4, size), rng.randrange(y0 + 4, size))
        (draw.rectangle if rng.random() < 0.5 else draw.ellipse)(box, fill=colour())
    image.save(path)

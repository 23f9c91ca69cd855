"""The agentic part of the demo data: a searchable catalog with facts the pictures do not show, its index, and
tool-use trajectories made by running the real search tools (`valley3 data demo` calls `write_agentic_demo`)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from valley3.agent.search.catalog import write_synthetic_catalog
from valley3.agent.search.engine import SearchEngine
from valley3.agent.search.tools import search_tools
from valley3.agent.tools import ToolContext, ToolRegistry, parse_tool_calls
from valley3.data.templates import render_tool_call

SELLERS = ("Northwind Goods", "Blue Harbor", "Maple Market", "Sunrise Traders", "Cedar Lane", "Golden Gate",
           "Riverside Outlet", "Pine Hill")
CITIES = ("Lyon", "Osaka", "Denver", "Porto", "Tianjin", "Leeds", "Austin", "Bergen")
# Short on purpose: the full JSON tool declarations (`ToolRegistry.system_prompt`) cost ~590 tiny-tokenizer tokens
# per sample, too many for CPU training; a real run declares its tools in full.
SYSTEM = "You are a shopping assistant. Answer briefly. Tools: image_search(image), text_search(query)."
# (question, catalog field): facts kept in the catalog, never drawn in the picture.
SEARCH_QUESTIONS = (("<image>Which shop sells this product?", "seller"),
                    ("<image>Where does this product ship from?", "ships_from"))
SEARCH = "<thinking>That is not in the picture; search the catalog with it.</thinking>\n"
FOUND = "<thinking>The first result is this product.</thinking>"
# One result per search: a 2-layer demo model learns to copy a fact from one result line within minutes of CPU;
# real runs show several (`valley3 agent eval --k`).
TOOL_SETTINGS = dict(k=1, fields=["seller", "ships_from"], images=1)


def search_catalog(products: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """Products (image paths relative to the catalog) as search catalog rows, each with a seller and a city it
    ships from, drawn at random: nothing in a product's picture or title tells them."""
    rng = random.Random(f"{seed}/agentic/catalog")
    rows = []
    for p in products:
        seller, city = rng.choice(SELLERS), rng.choice(CITIES)
        rows.append({"id": p["id"], "title": p["title"], "image": p["image"], "seller": seller, "ships_from": city,
                     "price": p["price"], "split": p["split"], "text": f"{p['title']}. Sold by {seller}, ships from {city}."})
    return rows


def _trajectory(registry: ToolRegistry, item: dict[str, Any], question: str, field: str) -> dict[str, Any]:
    """Messages of one search trajectory: call image_search on the photo, read the first result, answer."""
    reply = SEARCH + render_tool_call("image_search", {"image": 1})
    [call] = parse_tool_calls(reply)
    result = registry.run(call, ToolContext([item["image"]]))
    if result.error or f"| id: {item['id']} |" not in result.text.splitlines()[0]:
        raise RuntimeError(f"demo product {item['id']}: image search of its own photo did not rank it first")
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question},
                {"role": "assistant", "content": reply}, {"role": "tool", "content": result.text},
                {"role": "assistant", "content": f"{FOUND}{item[field]}."}]
    return {"messages": messages, "images": [item["image"], *result.images]}


def _direct(product: dict[str, Any], image: str) -> list[dict[str, Any]]:
    """Questions the picture answers (colour, kind of product): answered without a tool call."""
    records = []
    for j, (question, answer) in enumerate([("<image>What colour is this product?", product["colour"].title()),
                                            ("<image>What kind of product is this?", f"A {product['category']}")]):
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question},
                    {"role": "assistant", "content": f"<thinking>The picture shows it.</thinking>{answer}."}]
        records.append({"id": f"{product['id']}-direct{j}", "kind": "direct", "messages": messages, "images": [image]})
    return records


def _products(out: Path, extra: int, seed: int) -> list[dict[str, Any]]:
    """The demo's products, then `extra` synthetic ones (training only), image paths relative to `out/search`."""
    products = [json.loads(line) for line in (out / "catalog.jsonl").read_text(encoding="utf-8").splitlines()]
    products = [{**p, "image": f"../{p['image']}"} for p in products]
    if extra:
        synthetic = write_synthetic_catalog(out / "search" / "extra", extra, seed=seed, image_size=64)
        for line in synthetic.read_text(encoding="utf-8").splitlines():
            p = json.loads(line)
            products.append({**p, "image": f"extra/{p['image']}", "split": "train"})
    return products


def write_agentic_demo(out: str | Path, seed: int = 0, extra_products: int = 400) -> dict[str, Path]:
    """Write `out/search/catalog.jsonl`, build its index in `out/search/index`, and write
    `out/agentic_{train,val}.jsonl`: per product, one trajectory per search question (seller, shipping city), and
    per demo product one direct question. Train trajectories are for agentic SFT; the val file's search questions
    are held out (their products are val products) and their answers are the references for `valley3 agent eval`.

    Args:
        out: the demo folder (`valley3.data.demo.make_demo(out)` must have run); image paths are relative to it.
        seed: everything written is a deterministic function of it.
        extra_products: synthetic catalog products added to the training questions only, so that a model cannot
            pass by remembering each training product's seller and must read the search result.
    """
    out = Path(out)
    (out / "search").mkdir(exist_ok=True)
    products = _products(out, extra_products, seed)
    catalog = out / "search" / "catalog.jsonl"
    rows = search_catalog(products, seed)
    catalog.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    engine = SearchEngine.build(catalog, out / "search" / "index", seed=seed, progress=False)
    registry = ToolRegistry(search_tools(engine, **TOOL_SETTINGS))
    by_id = {item["id"]: item for item in engine.items}
    paths = {"search_catalog": catalog, "search_index": out / "search" / "index"}
    for split in ("train", "val"):
        records = []
        for p in (p for p in products if p["split"] == split):
            for j, (question, field) in enumerate(SEARCH_QUESTIONS):
                record = _trajectory(registry, by_id[p["id"]], question, field)
                records.append({"id": f"{p['id']}-search{j}", "kind": "search", **record})
            if "colour" in p:  # a demo product (not a synthetic one): its picture shows colour and kind
                records += _direct(p, by_id[p["id"]]["image"])
        for r in records:  # paths relative to `out`, like every other demo file
            r["images"] = [str(Path(i).resolve().relative_to(out.resolve())) for i in r["images"]]
        paths[f"agentic_{split}"] = out / f"agentic_{split}.jsonl"
        paths[f"agentic_{split}"].write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                                             encoding="utf-8")
    return paths

"""The agentic demo data: a catalog with facts no picture shows, and trajectories made by the real search tools."""

from __future__ import annotations

import json

from valley3.agent.demo import SEARCH_QUESTIONS, write_agentic_demo
from valley3.agent.search import SearchEngine
from valley3.data.demo import make_demo
from valley3.data.formats import read_samples


def test_agentic_demo_files(tmp_path):
    make_demo(tmp_path, n_products=12, seed=2, speech="synthetic")
    paths = write_agentic_demo(tmp_path, seed=2, extra_products=10)
    catalog = [json.loads(line) for line in paths["search_catalog"].read_text().splitlines()]
    assert len(catalog) == 22 and all(row["seller"] not in row["title"] for row in catalog)
    engine = SearchEngine(paths["search_index"])
    assert engine.ids == [row["id"] for row in catalog]
    by_id = {row["id"]: row for row in catalog}
    for split in ("train", "val"):
        samples = read_samples(paths[f"agentic_{split}"])
        products = {s.id.split("-")[0] for s in samples}
        assert all(by_id[p]["split"] == split for p in products)  # held-out questions are about held-out products
        search = [s for s in samples if s.meta["kind"] == "search"]
        assert len(search) == len(SEARCH_QUESTIONS) * len(products)
        for s in search:
            product = by_id[s.id.split("-")[0]]
            tool = next(t.content for t in s.turns if t.role == "tool")
            assert tool.splitlines()[0].split(" | ")[1] == f"id: {product['id']}"  # its own photo ranks first
            assert s.turns[-1].content.endswith(f"{product['seller']}.") or s.turns[-1].content.endswith(
                f"{product['ships_from']}.")
            assert [m.kind for m in s.media] == ["image", "image"]  # the user's photo, the result's photo
        direct = [s for s in samples if s.meta["kind"] == "direct"]
        assert len(direct) == 2 * sum(p.startswith("p") for p in products) and not any(t.role == "tool" for s in direct for t in s.turns)
    again = tmp_path / "again"
    make_demo(again, n_products=12, seed=2, speech="synthetic")
    write_agentic_demo(again, seed=2, extra_products=10)
    assert (again / "agentic_train.jsonl").read_text() == paths["agentic_train"].read_text()  # deterministic

"""The offline search engine: tokenizer, catalog errors, determinism, fusion, self-retrieval, CLI, HTTP == in-process."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import numpy as np
import pytest

from valley3.agent.search import CatalogError, SearchEngine, read_catalog, tokenize, write_synthetic_catalog
from valley3.agent.search.server import SearchClient, serving
from valley3.cli import main as cli_main


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> SearchEngine:
    root = tmp_path_factory.mktemp("search")
    return SearchEngine.build(write_synthetic_catalog(root / "catalog", 300, seed=1), root / "index", progress=False)


def test_tokenizer_cuts_chinese_into_bigrams():
    assert tokenize("红色皮鞋 Red-shoe 鞋 42") == ["红色", "色皮", "皮鞋", "red", "shoe", "鞋", "42"]


def test_catalog_errors_name_the_line(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    good = {"id": "a", "title": "A", "image": "a.png"}
    cases = [("{oops", "invalid JSON"), ("[1, 2]", "expected a JSON object"),
             (json.dumps({"id": "a", "image": "a.png"}), "needs a non-empty string 'title'"),
             (json.dumps({**good, "id": "b", "image": "missing.png"}), "missing.png does not exist"),
             (json.dumps(good), "id 'a' already used at .*c.jsonl:1")]
    for line, message in cases:
        path = tmp_path / "c.jsonl"
        path.write_text(json.dumps(good) + "\n" + line + "\n")
        with pytest.raises(CatalogError, match=f"c.jsonl:2: .*{message}"):
            read_catalog(path)


def test_image_to_image_returns_the_item_itself(engine):
    for item in engine.items[:60]:
        hits = engine.search(image=item["image"], mode="i2i", k=3)
        assert hits[0].id == item["id"] and hits[0].score == pytest.approx(1.0, abs=1e-5)
        assert hits[0].score > hits[1].score


def test_queries_are_deterministic_across_calls_and_reloads(engine, tmp_path):
    reloaded = SearchEngine(Path(engine.encoder.path).parent)
    queries = [("红色鞋", "t2t"), ("Acme Sport Red Leather Shoe", "t2t"), ("Lumo blue bag", "t2i"),
               ("Orvik green mug 蓝色", "hybrid")]
    for text, mode in queries:
        first = [(h.id, h.score) for h in engine.search(text, mode=mode, k=10)]
        assert first and first == [(h.id, h.score) for h in engine.search(text, mode=mode, k=10)]
        assert first == [(h.id, h.score) for h in reloaded.search(text, mode=mode, k=10)]


def test_text_search_finds_the_words(engine):
    item = engine.items[17]
    assert engine.search(item["title"], mode="t2t", k=1)[0].id == item["id"]  # the title ends in a unique number
    zh = item["text"].split()[0]  # e.g. 红色鞋: colour + category
    for hit in engine.search(zh, mode="t2t", k=5):
        assert hit.document["text"].startswith(zh)
    assert engine.search("zzzz qqqq", mode="t2t") == []


def test_hybrid_is_reciprocal_rank_fusion(engine):
    text = "Velmo Pro yellow 黄色帽子"
    t2t = [h.id for h in engine.search(text, mode="t2t", k=engine.depth)]
    t2i = [h.id for h in engine.search(text, mode="t2i", k=engine.depth)]
    want = {i: sum(1 / (60 + ranks.index(i) + 1) for ranks in (t2t, t2i) if i in ranks) for i in {*t2t, *t2i}}
    best = sorted(want.items(), key=lambda kv: (-kv[1], engine.ids.index(kv[0])))[:5]
    got = engine.search(text, mode="hybrid", k=5)
    assert [(h.id, round(h.score, 12)) for h in got] == [(i, round(s, 12)) for i, s in best]
    with pytest.raises(ValueError, match="mode 'i2i' needs an image"):
        engine.search(text, mode="i2i")


def test_documents_carry_search_r1_contents(engine):
    hit = engine.search(engine.items[3]["title"], mode="t2t", k=1)[0]
    title, body = hit.document["contents"].split("\n", 1)
    assert title == f'"{engine.items[3]["title"]}"' and body == engine.items[3]["text"]


def test_http_answers_equal_in_process(engine):
    image = engine.items[5]["image"]
    queries = [dict(image=image, mode="i2i"), dict(text="红色鞋 Acme", mode="t2t"), dict(text="Lumo bag", mode="t2i"),
               dict(text="Pavo Mini hat", mode="hybrid"), dict(text="Tessa lamp", image=image, mode="auto")]
    with serving(engine) as url:
        assert url.startswith("http://127.0.0.1:")
        client = SearchClient(url)
        for query in queries:
            local = engine.search(**query, k=7)
            remote = client.search(**query, k=7)
            assert [(h.id, h.score, h.document) for h in remote] == [(h.id, h.score, h.document) for h in local]
        # A Search-R1/verl client sends only queries, topk and return_scores.
        plain = httpx.post(f"{url}/retrieve", json={"queries": ["Acme shoe", "Lumo bag"], "topk": 2}).json()
        assert [[d["id"] for d in row] for row in plain["result"]] == [
            [h.id for h in engine.search(q, k=2)] for q in ("Acme shoe", "Lumo bag")]
        scored = httpx.post(f"{url}/retrieve", json={"queries": ["Acme"], "return_scores": True}).json()["result"][0]
        assert len(scored) == 3 and set(scored[0]) == {"document", "score"} and "contents" in scored[0]["document"]
        bad = httpx.post(f"{url}/retrieve", json={"queries": [""], "images": [base64.b64encode(b"nope").decode()]})
        assert bad.status_code == 422 and "unreadable image" in bad.text
        with pytest.raises(ValueError, match="needs a text"):
            client.search(image=image, mode="t2t")


def test_cli_build_and_query(tmp_path, capsys):
    catalog = write_synthetic_catalog(tmp_path / "catalog", 40, seed=2)
    cli_main(["search", "build", "--catalog", str(catalog), "--out", str(tmp_path / "index")])
    assert "indexed 40 items" in capsys.readouterr().out
    image = tmp_path / "catalog" / "images" / "s000009.png"
    cli_main(["search", "query", "--index", str(tmp_path / "index"), "--image", str(image), "-k", "2"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["rank"] for r in rows] == [1, 2] and rows[0]["id"] == "s000009"


@pytest.mark.slow
def test_ten_thousand_items_image_to_image_self_retrieval(tmp_path):
    """At 10k items each item's own image file, encoded again through the query path, is its top hit (>= 99%).

    With random encoder weights this checks the index (aligned rows and ids, identical build and query
    embeddings, random features that keep 10k images apart), not retrieval quality.
    """
    engine = SearchEngine.build(write_synthetic_catalog(tmp_path / "c", 10_000, seed=0), tmp_path / "i", progress=False)
    vectors = engine.encoder.embed_images([item["image"] for item in engine.items])
    _, top = engine.dense.search(vectors, 1)
    assert np.mean(top[:, 0] == np.arange(10_000)) >= 0.99
    for item in engine.items[::500]:  # and through SearchEngine.search, one query at a time
        assert engine.search(image=item["image"], mode="i2i", k=1)[0].id == item["id"]

"""Search engine benchmark: build time, query latency (p50/p99) per mode, and image->image self-retrieval at 10k items."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from valley3.agent.search import SearchEngine, write_synthetic_catalog

ABOUT = """\
    python benchmarks/search.py              # 10,000 items, ~3 min on 2 shared CPU cores; exits 1 if I2I < 99%

Writes a synthetic catalog (random boxes and ellipses per image, English + Chinese titles), builds an index with
the tiny random SigLIP (`valley3 search build`'s default encoder), then:
- build time: embedding every image, the faiss and BM25 indexes, the index files (writing the catalog is timed apart);
- query latency of `SearchEngine.search` for each mode on --queries random items (one query at a time, after
  warm-up): i2i with the item's image file (load + encode + exact search), t2t / t2i / hybrid with its title;
- image->image self-retrieval: the share of ALL items whose own image file, encoded again through the query path
  (batched for speed: the same load, preprocessing and model), is the top hit of the exact index.
With random encoder weights, self-retrieval tests the index (rows and ids aligned, build and query paths giving
the same embedding, ties broken deterministically) and that the random features keep 10k images apart; it says
nothing about retrieval quality, which needs a trained encoder.
One torch thread: on a shared machine more threads make latencies depend on the neighbours.
"""


def _latency(fn, n: int) -> dict[str, float]:
    times = []
    for i in range(n):
        start = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {"p50_ms": statistics.median(times), "p99_ms": times[min(len(times) - 1, int(0.99 * len(times)))]}


def main() -> int:
    parser = argparse.ArgumentParser(description=ABOUT, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=300, help="timed queries per mode")
    parser.add_argument("--out", help="work folder (default: a temporary one)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out or tmp)
        start = time.perf_counter()
        catalog = write_synthetic_catalog(root / "catalog", args.items, seed=0)
        write_s = time.perf_counter() - start
        start = time.perf_counter()
        engine = SearchEngine.build(catalog, root / "index", progress=False)
        build_s = time.perf_counter() - start
        rng = np.random.default_rng(0)
        picks = rng.choice(len(engine.items), size=args.queries, replace=False).tolist()
        items = [engine.items[i] for i in picks]
        for i in range(5):  # warm-up
            engine.search(image=items[i]["image"], mode="i2i", k=10)
        latency = {"i2i": _latency(lambda i: engine.search(image=items[i]["image"], mode="i2i", k=10), len(items))}
        for mode in ("t2t", "t2i", "hybrid"):
            latency[mode] = _latency(lambda i, m=mode: engine.search(items[i]["title"], mode=m, k=10), len(items))
        vectors = engine.encoder.embed_images([item["image"] for item in engine.items])
        _, top = engine.dense.search(vectors, 2)
        self_rate = float(np.mean(top[:, 0] == np.arange(len(engine.items))))
        single = sum(engine.search(image=it["image"], mode="i2i", k=1)[0].id == it["id"] for it in items) / len(items)
    report = {"items": args.items, "catalog_write_s": round(write_s, 1), "build_s": round(build_s, 1),
              "i2i_self_top1": self_rate, "i2i_self_top1_single_queries": single,
              "latency_ms": {m: {k: round(v, 2) for k, v in d.items()} for m, d in latency.items()}}
    print(json.dumps(report, indent=1))
    print("\n| mode | p50 (ms) | p99 (ms) |\n|---|---:|---:|")
    for mode, d in report["latency_ms"].items():
        print(f"| {mode} | {d['p50_ms']} | {d['p99_ms']} |")
    return 0 if self_rate >= 0.99 and single >= 0.99 else 1


if __name__ == "__main__":
    sys.exit(main())

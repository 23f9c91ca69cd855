"""SearchEngine: a product catalog indexed for image->image, text->image (faiss) and text->text (BM25) search."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from PIL import Image
from tqdm import tqdm

from valley3.agent.search.catalog import document, read_catalog
from valley3.agent.search.encoder import TINY, CatalogEncoder, save_tiny_encoder
from valley3.agent.search.lexical import LexicalIndex

MODES = ("auto", "i2i", "t2i", "t2t", "hybrid")
FORMAT_VERSION = 1


@dataclass
class Hit:
    """One result: the catalog item's id, its score under the query's mode, and its document."""

    id: str
    score: float
    document: dict[str, Any] = field(repr=False)  # the catalog record (absolute image path) + Search-R1 "contents"


class SearchEngine:
    """Exact search over a built index folder (`SearchEngine.build`, or `valley3 search build`).

    Modes: `i2i` (an image against item images), `t2i` (a text against item images, in the encoder's shared
    space), `t2t` (BM25 over item texts), `hybrid` (reciprocal rank fusion of t2t and t2i), and `auto`, which fuses
    every list the query allows (i2i for an image; t2t and t2i for a text). The same query gives the same ids
    and scores every time: scores tie-break on the catalog row.

    Args:
        folder: the index folder.
        device: where the encoder runs.
        rrf_k: the constant of reciprocal rank fusion, score = sum 1 / (rrf_k + rank) (60 in Cormack et al., 2009).
        depth: how many results each list contributes to a fusion.
    """

    def __init__(self, folder: str | os.PathLike, device: str = "cpu", rrf_k: int = 60, depth: int = 100):
        folder = Path(folder)
        meta_path = folder / "meta.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{folder} is not a search index (no meta.json); build one with valley3 search build")
        self.meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if self.meta.get("format") != FORMAT_VERSION:
            raise ValueError(f"{folder}: index format {self.meta.get('format')}, this valley3 reads {FORMAT_VERSION}")
        with open(folder / "items.jsonl", encoding="utf-8") as f:
            self.items = [json.loads(line) for line in f]
        self.ids = [item["id"] for item in self.items]
        self.dense = faiss.read_index(str(folder / "image.faiss"))
        self.lexical = LexicalIndex.load(folder / "text", len(self.items))
        encoder_dir = self.meta["encoder"] if Path(self.meta["encoder"]).is_absolute() else folder / self.meta["encoder"]
        self.encoder = CatalogEncoder(encoder_dir, device=device)
        self.rrf_k, self.depth = rrf_k, depth

    @classmethod
    def build(cls, catalog: str | os.PathLike, out: str | os.PathLike, encoder: str = TINY, seed: int = 0,
              batch_size: int = 64, text_fields: Sequence[str] = ("title", "text"), progress: bool = True,
              device: str = "cpu") -> SearchEngine:
        """Index `catalog` (JSONL, see `catalog.read_catalog`) into the folder `out` and return its engine.

        Args:
            catalog: the catalog file.
            out: the index folder (replaced if it exists).
            encoder: a local SigLIP/CLIP checkpoint folder, or "tiny-siglip" for a random tiny one saved into
                the index (tests, demo).
            seed: initialisation seed of the tiny encoder.
            batch_size: images per encoder pass.
            text_fields: the item fields BM25 indexes (missing fields are skipped).
            progress: show a progress bar while embedding images.
            device: where the encoder runs.
        """
        start = time.perf_counter()
        items = read_catalog(catalog)
        out = Path(out)
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        encoder_ref = "encoder" if encoder == TINY else str(Path(encoder).absolute())
        if encoder == TINY:
            save_tiny_encoder(out / "encoder", seed)
        model = CatalogEncoder(out / encoder_ref, batch_size=batch_size, device=device)
        paths = [item["image"] for item in items]
        chunks = range(0, len(paths), batch_size)
        rows = [model.embed_images(paths[i:i + batch_size])
                for i in tqdm(chunks, desc="embedding images", unit="batch", disable=not progress)]
        vectors = np.concatenate(rows) if rows else np.zeros((0, model.dim), np.float32)
        dense = faiss.IndexFlatIP(model.dim)  # exact inner product = cosine on L2-normalised rows
        dense.add(vectors)
        faiss.write_index(dense, str(out / "image.faiss"))
        texts = [" ".join(str(item[f]) for f in text_fields if item.get(f)) for item in items]
        LexicalIndex(texts).save(out / "text")
        with open(out / "items.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(item, ensure_ascii=False) + "\n" for item in items)
        meta = {"format": FORMAT_VERSION, "items": len(items), "dim": model.dim, "encoder": encoder_ref,
                "catalog": str(Path(catalog).absolute()), "text_fields": list(text_fields),
                "build_seconds": round(time.perf_counter() - start, 3)}
        (out / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        return cls(out, device=device)

    def search(self, text: str | None = None, image: str | os.PathLike | Image.Image | None = None,
               mode: str = "auto", k: int = 5) -> list[Hit]:
        """The k best items for a text and/or an image query (a file path or a PIL image)."""
        lists = self._lists(text, image, mode, k)
        rows, scores = lists[0] if len(lists) == 1 else self._fuse(lists, k)
        return [Hit(self.ids[r], float(s), document(self.items[r])) for r, s in zip(rows[:k], scores[:k])]

    def _lists(self, text, image, mode: str, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}; expected one of {MODES}")
        text = text or None
        need_image, need_text = mode == "i2i", mode in ("t2i", "t2t", "hybrid")
        if (need_image and image is None) or (need_text and text is None) or (text is None and image is None):
            raise ValueError(f"mode {mode!r} needs {'an image' if need_image else 'a text'} query")
        depth = k if mode in ("i2i", "t2i", "t2t") else max(k, self.depth)
        lists = []
        if image is not None and mode in ("auto", "i2i"):
            lists.append(self._dense(self.encoder.embed_images([image]), depth))
        if text is not None and mode in ("auto", "t2t", "hybrid"):
            lists.append(self.lexical.search(text, depth))
        if text is not None and mode in ("auto", "t2i", "hybrid"):
            lists.append(self._dense(self.encoder.embed_texts([text]), depth))
        return lists

    def _dense(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores, rows = self.dense.search(query, min(k, self.dense.ntotal))
        rows, scores = rows[0], scores[0]
        keep = rows >= 0
        order = np.lexsort((rows[keep], -scores[keep]))  # faiss does not promise an order among equal scores
        return rows[keep][order].astype(np.int64), scores[keep][order]

    def _fuse(self, lists: list[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
        fused: dict[int, float] = {}
        for rows, _ in lists:
            for rank, row in enumerate(rows.tolist(), start=1):
                fused[row] = fused.get(row, 0.0) + 1.0 / (self.rrf_k + rank)
        best = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        return np.array([r for r, _ in best], dtype=np.int64), np.array([s for _, s in best], dtype=np.float64)

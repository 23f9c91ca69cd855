"""Lexical text->text retrieval: BM25 (bm25s) over words, with Chinese text cut into character bigrams."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

import bm25s
import numpy as np

# CJK ideographs (with extension A and compatibility ideographs), kana and Hangul: scripts written without spaces,
# which a word regex would swallow whole.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_PIECES = re.compile(f"[{_CJK}]+|[^\\W{_CJK}]+")


def tokenize(text: str) -> list[str]:
    """Lower-cased words; each run of CJK characters becomes its overlapping character bigrams (a lone character
    stays a unigram), as Lucene's CJK analyzer does: "红色皮鞋 Red shoe" -> 红色 色皮 皮鞋 red shoe."""
    tokens = []
    for piece in _PIECES.findall(text.lower()):
        if "\u3040" <= piece[0] and re.fullmatch(f"[{_CJK}]+", piece):
            tokens += [piece] if len(piece) == 1 else [piece[i:i + 2] for i in range(len(piece) - 1)]
        else:
            tokens.append(piece)
    return tokens


class LexicalIndex:
    """BM25 over a fixed list of documents; `search` gives document rows, best first, ties by row.

    Args:
        texts: one text per document (row i is document i).
        k1: BM25 term-frequency saturation.
        b: BM25 length normalisation.
    """

    def __init__(self, texts: Sequence[str] | None = None, k1: float = 1.5, b: float = 0.75):
        self.bm25 = bm25s.BM25(k1=k1, b=b)
        self.size = 0
        if texts is not None:
            corpus = [tokenize(t) for t in texts]
            # bm25s cannot index a document without tokens; an empty text gets a token no query produces.
            self.bm25.index([doc or ["\x00"] for doc in corpus], show_progress=False)
            self.size = len(corpus)

    def search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows and BM25 scores of the k best documents that share a term with `query`."""
        vocab = self.bm25.vocab_dict
        terms = [t for t in tokenize(query) if t in vocab]
        if not terms or self.size == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        scores = self.bm25.get_scores(terms)
        hits = np.flatnonzero(scores > 0)
        order = np.lexsort((hits, -scores[hits]))[:k]  # best score first, then the lower row: deterministic
        return hits[order].astype(np.int64), scores[hits[order]].astype(np.float32)

    def save(self, folder: str | os.PathLike) -> None:
        self.bm25.save(str(folder), show_progress=False)  # numpy arrays and JSON; nothing pickled

    @classmethod
    def load(cls, folder: str | os.PathLike, size: int) -> LexicalIndex:
        index = cls()
        index.bm25 = bm25s.BM25.load(str(folder), show_progress=False)
        index.size = size
        return index

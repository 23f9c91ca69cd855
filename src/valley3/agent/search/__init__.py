"""The offline catalog search engine: dense image/text retrieval (faiss), BM25 text retrieval, rank fusion, HTTP."""

from valley3.agent.search.catalog import CatalogError, document, read_catalog, write_synthetic_catalog
from valley3.agent.search.encoder import TINY, CatalogEncoder, save_tiny_encoder
from valley3.agent.search.engine import MODES, Hit, SearchEngine
from valley3.agent.search.lexical import LexicalIndex, tokenize

__all__ = [
    "MODES", "TINY", "CatalogEncoder", "CatalogError", "Hit", "LexicalIndex", "SearchEngine", "document",
    "read_catalog", "save_tiny_encoder", "tokenize", "write_synthetic_catalog",
]

"""Small files shipped inside the package (tiny tokenizer); imports nothing from valley3."""

from __future__ import annotations

from pathlib import Path


def tiny_tokenizer_dir() -> str:
    """Path of the shipped byte-level BPE tokenizer folder, loadable offline with `AutoTokenizer.from_pretrained`.

    Made by `python -m valley3.data.tokenizer src/valley3/assets/tiny_tokenizer`.
    """
    return str(Path(__file__).resolve().parent / "tiny_tokenizer")

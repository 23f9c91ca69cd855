"""Tests for the tiny byte-level BPE tokenizer and its shipped asset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from valley3.assets import tiny_tokenizer_dir
from valley3.data.templates import SpecialTokens
from valley3.data.tokenizer import build_tokenizer

TEXTS = [
    "Acme red leather shoe, twenty five dollars",
    "héllo wörld — ünïcödé, 日本語のテキスト, 한국어",
    "emoji 🙂👍🏽, math ∑∫√, tab\tand\nnewline",
    "  leading spaces, trailing  ",
    "\u0000 nul, \u200b zero width, combining e\u0301",
    "<image>What colour is this product?",
]


@pytest.fixture(scope="module")
def shipped():
    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir())


def _model_json(folder) -> dict:
    data = json.loads((Path(folder) / "tokenizer.json").read_text(encoding="utf-8"))
    return {"vocab": data["model"]["vocab"], "merges": data["model"]["merges"],
            "added": [(t["id"], t["content"], t["special"]) for t in data["added_tokens"]]}


def test_asset_is_small_and_bounded(shipped):
    size = sum(p.stat().st_size for p in Path(tiny_tokenizer_dir()).iterdir())
    assert size < 100_000
    assert 256 + len(SpecialTokens().all()) < len(shipped) <= 1024


def test_every_special_token_is_one_id(shipped):
    ids = []
    for token in SpecialTokens().all():
        encoded = shipped.encode(token, add_special_tokens=False)
        assert len(encoded) == 1, (token, encoded)
        ids.append(encoded[0])
        assert encoded[0] in shipped.all_special_ids
    assert len(set(ids)) == len(ids)
    # Inside running text too, so the processor can count placeholders by id.
    text = f"a{SpecialTokens().image * 3}b"
    assert shipped.encode(text).count(shipped.convert_tokens_to_ids(SpecialTokens().image)) == 3


def test_pad_and_eos(shipped):
    tokens = SpecialTokens()
    assert shipped.pad_token == tokens.pad and shipped.eos_token == tokens.im_end
    assert shipped.pad_token_id != shipped.eos_token_id


@pytest.mark.parametrize("text", TEXTS)
def test_round_trip(shipped, text):
    ids = shipped.encode(text, add_special_tokens=False)
    assert shipped.decode(ids) == text


def test_round_trip_with_specials(shipped):
    t = SpecialTokens()
    text = f"{t.im_start}user\n{t.vision_start}{t.image}{t.image}{t.vision_end}Ünïcode 🙂{t.im_end}\n"
    ids = shipped.encode(text, add_special_tokens=False)
    assert shipped.decode(ids) == text
    assert shipped.decode(ids, skip_special_tokens=True) == "user\nÜnïcode 🙂\n"


def test_demo_text_is_compact(shipped):
    # The corpus is the demo's own text, so its words are single tokens.
    for word in ["assistant", " colour", " Acme", " leather", "Shoe"]:
        assert len(shipped.encode(word, add_special_tokens=False)) == 1, word


def test_rebuild_matches_shipped_asset(tmp_path):
    build_tokenizer(tmp_path)
    assert _model_json(tmp_path) == _model_json(tiny_tokenizer_dir()), (
        "stale asset: run `python -m valley3.data.tokenizer src/valley3/assets/tiny_tokenizer`")


def test_custom_corpus_is_deterministic_and_bounded(tmp_path):
    corpus = ["the quick brown fox jumps over the lazy dog", "pack my box with five dozen liquor jugs"] * 20
    first = build_tokenizer(tmp_path / "a", corpus=corpus, vocab_size=300)
    build_tokenizer(tmp_path / "b", corpus=corpus, vocab_size=300)
    assert (tmp_path / "a" / "tokenizer.json").read_bytes() == (tmp_path / "b" / "tokenizer.json").read_bytes()
    assert len(first) <= 300
    assert all(first.decode(first.encode(text)) == text for text in TEXTS)
    with pytest.raises(ValueError, match="vocab_size"):
        build_tokenizer(tmp_path / "c", corpus=corpus, vocab_size=200)


def test_loads_with_hub_offline():
    # A fresh process, because huggingface_hub reads HF_HUB_OFFLINE at import time.
    code = ("from transformers import AutoTokenizer; from valley3.assets import tiny_tokenizer_dir; "
            "t = AutoTokenizer.from_pretrained(tiny_tokenizer_dir()); print(len(t), t.decode(t.encode('ok 🙂')))")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split(maxsplit=1)[1].strip() == "ok 🙂"

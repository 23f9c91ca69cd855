"""Tests for the synthetic demo dataset generator."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import soundfile as sf
from PIL import Image

import valley3.data.demo as demo
from valley3.data.schema import MediaRef, Sample, Turn

N = 24
SPLIT_FILES = [f"{m}_{s}" for m in ("text", "image", "audio", "omni", "asr", "general") for s in ("train", "val")]
HAS_ESPEAK = shutil.which("espeak-ng") is not None


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _files(root: Path, *patterns: str) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for pat in patterns for p in sorted(root.glob(pat))}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    return root, demo.make_demo(root, n_products=N, seed=3, speech="synthetic")


def test_same_seed_gives_identical_files(synthetic, tmp_path):
    root, _ = synthetic
    demo.make_demo(tmp_path, n_products=N, seed=3, speech="synthetic")
    first, second = _files(root, "*.jsonl", "images/*.png", "audio/*.wav"), _files(tmp_path, "*.jsonl",
                                                                                    "images/*.png", "audio/*.wav")
    assert len(first) == 2 * N + len(SPLIT_FILES) + 1 + 2  # + reasoning_{train,val}
    assert first == second


@pytest.mark.skipif(not HAS_ESPEAK, reason="espeak-ng not on PATH")
def test_same_seed_gives_identical_text_and_images_with_espeak(tmp_path):
    for name in ("a", "b"):
        demo.make_demo(tmp_path / name, n_products=8, seed=1, speech="espeak")
    assert _files(tmp_path / "a", "*.jsonl", "images/*.png") == _files(tmp_path / "b", "*.jsonl", "images/*.png")


def test_other_seed_gives_other_data(synthetic, tmp_path):
    root, _ = synthetic
    demo.make_demo(tmp_path, n_products=N, seed=4, speech="synthetic")
    assert (root / "catalog.jsonl").read_bytes() != (tmp_path / "catalog.jsonl").read_bytes()
    assert (root / "images/p0000.png").read_bytes() != (tmp_path / "images/p0000.png").read_bytes()


def test_returned_paths_exist(synthetic):
    root, paths = synthetic
    assert set(SPLIT_FILES) | {"catalog", "images", "audio", "readme"} <= set(paths)
    assert all(p.exists() and p.parent == root for p in paths.values())
    assert "catalog.jsonl" in paths["readme"].read_text()


def test_conversations_fit_the_schema(synthetic):
    root, paths = synthetic
    ids = set()
    for name in SPLIT_FILES:
        rows = _read(paths[name])
        assert rows, name
        for line, row in enumerate(rows, 1):
            assert set(row) == {"id", "messages", "images", "audios"}
            media = [MediaRef("image", p) for p in row["images"]] + [MediaRef("audio", p) for p in row["audios"]]
            turns = [Turn(m["role"], m["content"]) for m in row["messages"]]
            Sample(row["id"], turns, media, source=f"{name}:{line}").validate()
            assert all((root / m.path).is_file() for m in media), row
            if name.startswith("omni"):
                assert row["id"] not in ids, row["id"]
                ids.add(row["id"])
    omni = _read(paths["omni_train"])
    assert any(r["images"] and r["audios"] for r in omni)
    assert any(sum(m["role"] == "assistant" for m in r["messages"]) >= 2 for r in omni)
    assert not any(r["images"] or r["audios"] for r in _read(paths["text_train"]))


def test_omni_is_the_union_of_the_modality_files(synthetic):
    _, paths = synthetic
    for split in ("train", "val"):
        parts = [r["id"] for m in ("text", "image", "audio") for r in _read(paths[f"{m}_{split}"])]
        omni = [r["id"] for r in _read(paths[f"omni_{split}"])]
        assert set(parts) < set(omni)


def test_answers_match_the_catalog(synthetic):
    _, paths = synthetic
    catalog = {p["id"]: p for p in _read(paths["catalog"])}
    checked = 0
    for row in _read(paths["omni_train"]):
        product = catalog[row["id"].split("-")[0]]
        msgs = [m for m in row["messages"] if m["role"] != "system"]
        for user, answer in zip(msgs[::2], msgs[1::2]):
            if user["content"].endswith("What colour is this product?"):
                assert answer["content"] == f"{product['colour'].title()}."
                checked += 1
            elif "Answer with the letter." in user["content"]:
                letter = answer["content"][0]
                option = next(x for x in user["content"].splitlines() if x.startswith(f"{letter}. "))
                assert option[3:] in (product["colour"], product["category"])
                checked += 1
    assert checked >= 3


def test_images(synthetic):
    root, paths = synthetic
    for product in _read(paths["catalog"]):
        with Image.open(root / product["image"]) as img:
            assert img.size == (64, 64) and img.mode == "RGB"
        assert isinstance(product["price"], float) and round(product["price"], 2) == product["price"]


def test_synthetic_wavs_are_16k_mono(synthetic):
    root, paths = synthetic
    for product in _read(paths["catalog"]):
        assert product["speech"] == "synthetic"
        info = sf.info(root / product["audio"])
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert 0.5 < info.duration < 4.0
        wave, _ = sf.read(root / product["audio"])
        assert abs(wave).max() > 0.1


@pytest.mark.skipif(not HAS_ESPEAK, reason="espeak-ng not on PATH")
def test_espeak_clips_are_short_16k_mono(tmp_path):
    paths = demo.make_demo(tmp_path, n_products=6, seed=0, speech="espeak")
    for product in _read(paths["catalog"]):
        assert product["speech"] == "espeak-ng"
        info = sf.info(tmp_path / product["audio"])
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert 1.0 < info.duration < 4.0


def test_auto_falls_back_to_synthetic_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setattr(demo.shutil, "which", lambda name: None)
    with pytest.warns(RuntimeWarning, match="espeak-ng"):
        paths = demo.make_demo(tmp_path, n_products=4, speech="auto")
    assert {p["speech"] for p in _read(paths["catalog"])} == {"synthetic"}
    with pytest.raises(RuntimeError, match="espeak-ng"):
        demo.make_demo(tmp_path, n_products=4, speech="espeak")
    with pytest.raises(ValueError, match="speech"):
        demo.make_demo(tmp_path, n_products=4, speech="tts")


def test_val_products_are_disjoint_from_train(synthetic):
    root, paths = synthetic
    catalog = _read(paths["catalog"])
    split = {p["id"]: p["split"] for p in catalog}
    assert {"train", "val"} == set(split.values())
    for name in [f for f in SPLIT_FILES if not f.startswith("general")]:  # general QA names no product
        want = name.rsplit("_", 1)[1]
        for row in _read(paths[name]):
            products = {row["id"].split("-")[0]} | {Path(p).stem for p in row["images"] + row["audios"]}
            assert {split[p] for p in products} == {want}, (name, row["id"])


def test_stage_sources_pair_each_train_product_once(synthetic):
    _, paths = synthetic
    catalog = [p for p in _read(paths["catalog"]) if p["split"] == "train"]
    asr = _read(paths["asr_train"])
    assert [row["audios"] for row in asr] == [[p["audio"]] for p in catalog]
    assert all(row["messages"][0]["content"].startswith("<audio>") for row in asr)
    general = _read(paths["general_train"])
    assert len(general) == len(catalog) and not any(row["images"] or row["audios"] for row in general)
    for row in general:  # the answers are right
        q, a = row["messages"][0]["content"], row["messages"][1]["content"]
        x, y = map(int, [w.strip("?,") for w in q.split() if w.strip("?,").isdigit()])
        assert a == (f"{x + y}." if "plus" in q else f"{max(x, y)}." if x != y else "They are equal.")

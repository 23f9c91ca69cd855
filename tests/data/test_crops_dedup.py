"""Item-intelligence crops (smallest enclosing square) and perceptual-hash dedup, on fixtures made here."""

from __future__ import annotations

import io
import itertools
import json

import numpy as np
import pytest
from PIL import Image

from tests.conftest import tool_summary
from valley3.cli import main
from valley3.data.curation.crops import CropError, enclosing_square
from valley3.data.curation.dedup import dedup_hashes, phash


def _covers(square, boxes) -> bool:
    return all(square.x0 <= b[0] and square.y0 <= b[1] and square.x1 >= b[2] and square.y1 >= b[3] for b in boxes)


CASES = [  # (boxes, width, height)
    ([[10, 10, 30, 20]], 100, 80),  # inside, wider than tall
    ([[0, 0, 5, 40]], 100, 80),  # touching the top-left corner
    ([[90, 70, 100, 80]], 100, 80),  # touching the bottom-right corner
    ([[5, 5, 10, 10], [60, 50, 70, 75]], 100, 80),  # two boxes far apart
    ([[0, 30, 100, 40]], 100, 80),  # full width: no square fits -> clipped to the image
    ([[3.2, 4.7, 9.1, 7.9]], 20, 20),  # fractional coordinates
]


@pytest.mark.parametrize("boxes, width, height", CASES)
def test_square_covers_every_box_inside_the_image_and_is_the_smallest(boxes, width, height):
    square = enclosing_square(boxes, width, height)
    assert _covers(square, boxes)
    assert 0 <= square.x0 and 0 <= square.y0 and square.x1 <= width and square.y1 <= height
    side = max(square.width, square.height)
    # Brute force over every integer square that fits: none smaller covers the boxes.
    smaller = [
        (x, y, s) for s in range(1, int(side)) for x, y in itertools.product(range(width - s + 1), range(height - s + 1))
        if _covers(type(square)(x, y, x + s, y + s), boxes)
    ]
    assert smaller == []
    if side <= min(width, height):
        assert square.width == square.height


def test_bad_boxes_are_named():
    with pytest.raises(CropError, match="no regions"):
        enclosing_square([], 10, 10)
    with pytest.raises(CropError, match="no area"):
        enclosing_square([[5, 5, 5, 9]], 10, 10)
    with pytest.raises(CropError, match="outside"):
        enclosing_square([[5, 5, 11, 9]], 10, 10)


def _photo(seed: int, size=(96, 80)) -> Image.Image:
    """A smooth random picture (low frequencies dominate, as in photos, so pHash is meaningful)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (6, 6, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)


def _reencode(image: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


@pytest.fixture
def listing(tmp_path):
    """Item a: an original, an exact copy, a resized copy, a re-encoded copy, and a distinct picture;
    item b: a copy of item a's original (a duplicate only across the dataset) and a distinct one."""
    original = _photo(1)
    images = {
        "a_orig": original, "a_copy": original.copy(), "a_small": original.resize((48, 40)),
        "a_jpeg": _reencode(original, 40), "a_other": _photo(2), "b_same": original.copy(), "b_other": _photo(3),
    }
    lines = []
    for name, image in images.items():
        image.save(tmp_path / f"{name}.png")
        lines.append(json.dumps({"id": name, "item": name[0], "image": f"{name}.png"}))
    (tmp_path / "images.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_dedup_removes_exact_and_near_copies_within_an_item_and_keeps_distinct_ones(listing, capsys):
    main(["data", "dedup", "--data", str(listing / "images.jsonl"), "--out", str(listing / "out")])
    kept = [json.loads(line)["id"] for line in (listing / "out/kept.jsonl").read_text().splitlines()]
    assert kept == ["a_orig", "a_other", "b_same", "b_other"]
    summary = tool_summary(listing / "out", "dedup")
    assert (summary["before"], summary["after"], summary["removed"]) == (7, 4, {"duplicate": 3, "over_cap": 0})
    dropped = [json.loads(line) for line in (listing / "out/dropped.jsonl").read_text().splitlines()]
    assert {d["record"]["id"]: d["duplicate_of"].endswith(":1") for d in dropped} == dict.fromkeys(
        ["a_copy", "a_small", "a_jpeg"], True)


def test_dedup_across_the_dataset_and_the_per_item_cap(listing):
    summary = main_dedup(listing, "dataset")
    assert summary["after"] == 3  # b_same joins a's copies
    capped = main_dedup(listing, "item", "--max-per-item", "1")
    assert capped["removed"] == {"duplicate": 3, "over_cap": 2} and capped["after"] == 2


def main_dedup(root, scope, *extra):
    out = root / f"out_{scope}_{len(extra)}"
    main(["data", "dedup", "--data", str(root / "images.jsonl"), "--out", str(out), "--scope", scope, *extra])
    return json.loads((out / "summary.json").read_text())


def test_hash_distance_of_near_copies_is_small_and_of_distinct_pictures_large(listing):
    h = {name: phash(listing / f"{name}.png") for name in ("a_orig", "a_small", "a_jpeg", "a_other", "b_other")}
    near = dedup_hashes([h["a_orig"], h["a_small"], h["a_jpeg"]], threshold=4)
    assert near.kept == [0]
    far = dedup_hashes([h["a_orig"], h["a_other"], h["b_other"]], threshold=4)
    assert far.kept == [0, 1, 2]
    assert dedup_hashes([h["a_orig"], h["a_orig"]], threshold=0).kept == [0]


def test_crops_command_writes_square_crops_and_counts_skips(tmp_path):
    Image.new("RGB", (120, 90), (10, 200, 40)).save(tmp_path / "p.png")
    rows = [
        {"id": "ok", "image": "p.png", "boxes": [[10, 20, 40, 30], [50, 25, 60, 70]]},
        {"id": "edge", "image": "p.png", "boxes": [[100, 0, 120, 10]]},
        {"id": "inverted", "image": "p.png", "boxes": [[40, 40, 30, 50]]},
        {"id": "missing", "image": "nope.png", "boxes": [[0, 0, 1, 1]]},
    ]
    (tmp_path / "l.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    main(["data", "crops", "--data", str(tmp_path / "l.jsonl"), "--out", str(tmp_path / "out")])
    out = [json.loads(line) for line in (tmp_path / "out/crops.jsonl").read_text().splitlines()]
    assert [r["id"] for r in out] == ["ok", "edge"]
    assert out[0]["crop"] == [10, 20, 60, 70] and Image.open(out[0]["image"]).size == (50, 50)
    assert out[1]["crop"] == [100, 0, 120, 20]
    summary = tool_summary(tmp_path / "out", "crops")
    assert summary["skipped"] == {"bad_boxes": 1, "unreadable_image": 1} and summary["after"] == 2


def test_crops_from_a_detector_built_by_name(tmp_path):
    Image.new("RGB", (64, 48), (200, 200, 200)).save(tmp_path / "p.png")
    (tmp_path / "l.jsonl").write_text(json.dumps({"id": "x", "image": "p.png"}) + "\n")
    out = tmp_path / "out"
    main(["data", "crops", "--data", str(tmp_path / "l.jsonl"), "--out", str(out),
          "--detector", "fasterrcnn_mobilenet_v3_large_320_fpn", "--min-score", "0"])
    summary = json.loads((out / "summary.json").read_text())
    # A random detector finds boxes or none: either way the image is accounted for, never lost.
    assert summary["after"] + sum(summary["skipped"].values()) == 1

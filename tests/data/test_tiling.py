"""Tests for InternVL-style dynamic tiling: the chosen grid, the tiles and thumbnail, the no-tiling policy."""

from __future__ import annotations

import random
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from valley3.data.media import TileGrid, num_tiles, should_tile, tile_grid, tile_image


def _best_grid(width, height, tile, max_tiles):
    """The rule stated independently: all grids at the least distance |cols/rows - w/h| are tied; the
    largest of them whose pixels the image more than half fills wins, else the smallest."""
    grids = [(r, c) for r in range(1, max_tiles + 1) for c in range(1, max_tiles + 1) if r * c <= max_tiles]
    diff = {g: abs(Fraction(g[1], g[0]) - Fraction(width, height)) for g in grids}
    ties = sorted((g for g in grids if diff[g] == min(diff.values())), key=lambda g: g[0] * g[1])
    filled = [g for g in ties[1:] if width * height > 0.5 * tile * tile * g[0] * g[1]]
    return filled[-1] if filled else ties[0]


def _internvl(width, height, tile, max_tiles):
    """InternVL2's `find_closest_aspect_ratio` as released (float distances; ratios are (cols, rows))."""
    ratios = sorted(
        {(i, j) for i in range(1, max_tiles + 1) for j in range(1, max_tiles + 1) if i * j <= max_tiles},
        key=lambda x: x[0] * x[1],
    )
    best_diff, best = float("inf"), (1, 1)
    for ratio in ratios:
        diff = abs(width / height - ratio[0] / ratio[1])
        if diff < best_diff:
            best_diff, best = diff, ratio
        elif diff == best_diff and width * height > 0.5 * tile * tile * ratio[0] * ratio[1]:
            best = ratio
    return best[1], best[0]


# (width, height, tile) -> the grid as (rows, cols), for the aspect ratios the issue names.
CASES = {
    (448, 448, 448): (1, 1),  # 1:1, one tile's worth: no upscaling to 4 tiles
    (700, 700, 448): (2, 2),  # 1:1, more than 2 tiles' area
    (1344, 1344, 448): (3, 3),  # 1:1, more than 4.5 tiles' area
    (600, 400, 448): (2, 3),  # 3:2 is exactly a 2 x 3 grid, whatever the size
    (1536, 1024, 384): (2, 3),
    (384, 3072, 384): (8, 1),  # 1:8
    (3072, 384, 384): (1, 8),  # 8:1
    (60, 480, 448): (8, 1),  # 1:8 small: the exact ratio still wins
    (896, 448, 448): (1, 2),  # 2:1 with two tiles' area: 2 x 4 would be less than half filled
    (2000, 1000, 448): (2, 4),  # 2:1 big: the tie goes to the larger grid
    (200, 4000, 384): (9, 1),  # 1:20: the most elongated grid there is
    (4000, 200, 384): (1, 9),
}


@pytest.mark.parametrize("size, expected", CASES.items(), ids=[f"{w}x{h}@{t}" for w, h, t in CASES])
def test_grid_follows_the_best_ratio_rule(size, expected):
    width, height, tile = size
    assert tile_grid(width, height, tile) == TileGrid(*expected) == _best_grid(width, height, tile, 9)


def test_grid_agrees_with_internvl_wherever_floats_do_not_decide_a_tie():
    rng = random.Random(0)
    for _ in range(3000):
        width, height = rng.randint(1, 4000), rng.randint(1, 4000)
        tile, max_tiles = rng.choice([224, 384, 448]), rng.choice([1, 4, 6, 9, 12])
        ours = tuple(tile_grid(width, height, tile, max_tiles))
        assert ours == _best_grid(width, height, tile, max_tiles)
        ratios = {Fraction(c, r) for r in range(1, 13) for c in range(1, 13) if r * c <= max_tiles}
        diff = {q: abs(Fraction(width, height) - q) for q in ratios}
        # Where two different ratios are exactly as close, one above and one below, InternVL's float rounding
        # picks between them; ratios that are equal (1:1, 2:2, 3:3) tie in floats too and follow the rule.
        if sum(d == min(diff.values()) for d in diff.values()) == 1:
            assert ours == _internvl(width, height, tile, max_tiles), (width, height, tile, max_tiles)


def test_grid_respects_max_and_min_tiles_and_rejects_bad_sizes():
    assert tile_grid(4000, 4000, 384, max_tiles=4) == (2, 2)
    assert tile_grid(4000, 400, 384, max_tiles=1) == (1, 1)
    assert tile_grid(100, 100, 384, max_tiles=9, min_tiles=4) == (2, 2)
    for bad in ((0, 10, 384, 9), (10, 10, 0, 9), (10, 10, 384, 0)):
        with pytest.raises(ValueError):
            tile_grid(*bad)


def _gradient(width, height):
    x = np.linspace(0, 255, width)[None, :, None]
    y = np.linspace(0, 255, height)[:, None, None]
    return Image.fromarray(
        np.concatenate(
            [
                np.broadcast_to(x, (height, width, 1)),
                np.broadcast_to(y, (height, width, 1)),
                np.full((height, width, 1), 90.0),
            ],
            axis=2,
        ).astype(np.uint8)
    )


@pytest.mark.parametrize("width, height", [(96, 96), (96, 64), (32, 256), (256, 32), (64, 32), (16, 320)])
def test_tiles_reassemble_the_resized_image_and_the_thumbnail_is_last(width, height):
    tile, image = 32, _gradient(width, height)
    rows, cols = tile_grid(width, height, tile)
    tiles = tile_image(image, tile)
    assert len(tiles) == rows * cols + (rows * cols > 1) == num_tiles(width, height, tile)
    assert all(t.size == (tile, tile) for t in tiles)
    canvas = Image.new("RGB", (cols * tile, rows * tile))
    for k, piece in enumerate(tiles[: rows * cols]):  # row by row, left to right
        canvas.paste(piece, ((k % cols) * tile, (k // cols) * tile))
    assert np.array_equal(np.asarray(canvas), np.asarray(image.resize((cols * tile, rows * tile), Image.BICUBIC)))
    if rows * cols > 1:
        assert np.array_equal(np.asarray(tiles[-1]), np.asarray(image.resize((tile, tile), Image.BICUBIC)))
    assert (
        len(tile_image(image, tile, thumbnail=False)) == rows * cols == num_tiles(width, height, tile, thumbnail=False)
    )


def test_extreme_aspect_ratios_are_stretched_only_as_far_as_the_grid_implies():
    tile = 32
    for width, height in [(32, 256), (256, 32), (16, 320), (320, 16)]:
        rows, cols = tile_grid(width, height, tile)
        stretch = Fraction(cols, rows) / Fraction(width, height)
        # 1:8 and 8:1 have a grid of their own, so no stretch at all; 1:20 fits 1:9 at best.
        assert stretch == (
            1 if max(width, height) == 8 * min(width, height) else Fraction(20, 9) ** (1 if height > width else -1)
        )
    assert [t.size for t in tile_image(_gradient(16, 320), tile)] == [(tile, tile)] * 10


def test_valley2_policy_tiles_only_a_lone_image():
    assert should_tile(1) is True
    assert should_tile(2) is False
    assert should_tile(1, is_video_frame=True) is False
    assert should_tile(0, is_video_frame=True) is False

"""Reduced-scale JPEG decoding: within its stated pixel tolerance of a full decode, upright, and actually smaller."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from valley3.data.media import load_image, tile_grid
from valley3.data.media_runs import image_pixels
from valley3.data.processor import ImageSpec

from .zoo import image

MEAN, MAX = 1.0, 32  # load_image's documented tolerance, in levels of 255


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    """A 12 MP JPEG stored on its side (EXIF orientation 6), as phones write them: upright it is 3000 x 4000."""
    return image(tmp_path_factory.mktemp("jpeg") / "phone.jpg", 4000, 3000, orientation=6, quality=90)


@pytest.mark.parametrize("size", [(384, 384), (224, 224), (1008, 1344), (700, 500)])
def test_a_reduced_decode_resized_stays_within_the_tolerance_of_a_full_one(photo, size):
    full, reduced = load_image(photo), load_image(photo, reduce_to=size)
    assert full.size == (3000, 4000) and reduced.size[0] * 2 <= 3000  # upright, and decoded at 1/2 or less
    assert reduced.size[0] >= size[0] and reduced.size[1] >= size[1]  # never below what the resize needs
    a, b = (np.asarray(im.resize(size, Image.Resampling.BICUBIC)).astype(int) for im in (full, reduced))
    diff = np.abs(a - b)
    assert diff.mean() <= MEAN and diff.max() <= MAX


def test_the_processor_decodes_large_jpegs_reduced_but_sizes_them_from_the_full_image(photo):
    square = ImageSpec(384, (0.5,) * 3, (0.5,) * 3, lambda h, w: 1)
    native = ImageSpec(28, (0.5,) * 3, (0.5,) * 3, lambda h, w: 1,
                       input_size=lambda h, w: (h // 4 // 28 * 28, w // 4 // 28 * 28))
    assert image_pixels(square, photo, tile=False)[0].shape == (3, 384, 384)
    # The target follows the full 3000 x 4000 size, not the reduced decode's.
    assert image_pixels(native, photo, tile=False)[0].shape == (3, 1000 // 28 * 28, 750 // 28 * 28)
    tiles = image_pixels(ImageSpec(384, (0.5,) * 3, (0.5,) * 3, lambda h, w: 1, max_tiles=6), photo, tile=True)
    assert len(tiles) == tile_grid(3000, 4000, 384, 6).tiles + 1 == 7  # the full image's 2 x 3 grid, a thumbnail

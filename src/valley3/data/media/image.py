"""Image loading with a full decode, resizing into normalised pixel tensors, and InternVL-style dynamic tiling."""

from __future__ import annotations

import os
from collections.abc import Sequence
from fractions import Fraction
from typing import NamedTuple

import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps

from valley3.data.media import MediaError, require_file

# What PIL raises on bad data: OSError for unidentified or truncated files, SyntaxError for broken PNG
# chunks, the rest for malformed headers and oversized images.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


def load_image(path: str | os.PathLike, reduce_to: tuple[int, int] | None = None) -> Image.Image:
    """Read an image fully into memory as RGB, upright per its EXIF orientation, transparency composited onto white.

    With `reduce_to`, a JPEG is decoded at the smallest of libjpeg's 1/8, 1/4, 1/2 and full scales that still
    covers that upright (width, height) (PIL's `draft`), so a 12 MP photo bound for a 384 px encoder is never
    decoded at full size; the EXIF turn is applied after. Scaling in the DCT domain differs a little from a full
    decode: resized to the final size, a photo-like 4000x3000 JPEG (gradients, hard-edged blocks, noise) is within
    a mean absolute difference of 1 and a maximum of 32 levels of 255 (the maximum on hard edges) of the full
    decode resized the same way, the tolerance `tests/data/test_reduced_decode.py` asserts. Other formats are
    always decoded at full size.

    Args:
        path: the image file (any format PIL reads).
        reduce_to: the least upright (width, height) the caller resizes to; None decodes every pixel.

    Raises:
        MediaError: the file is missing, zero-length, truncated or not a readable image.
    """
    path = require_file(path)
    try:
        with Image.open(path) as image:
            if reduce_to is not None and image.format == "JPEG":
                width, height = reduce_to
                if image.getexif().get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8):  # stored on its side
                    width, height = height, width
                image.draft(image.mode, (width, height))
            # Image.open only reads the header; without a full decode here, a truncated file would fail
            # later inside a dataloader worker, far from its path.
            image.load()
            return _to_rgb(ImageOps.exif_transpose(image))  # phone photos store their orientation in EXIF
    except _DECODE_ERRORS as exc:
        raise MediaError(path, f"cannot decode image ({exc})") from exc


def to_pixels(
    image: Image.Image,
    size: int | tuple[int, int],
    mean: Sequence[float],
    std: Sequence[float],
) -> torch.Tensor:
    """Resize (bicubic, no crop, aspect ratio not kept) and normalise an image into a [3, H, W] float tensor.

    This is SigLIP's processor convention and matches transformers' `SiglipImageProcessorPil`.

    Args:
        image: an RGB image, e.g. from `load_image` (other modes are converted).
        size: the output side, or (height, width).
        mean: per-channel mean subtracted after scaling pixels to [0, 1].
        std: per-channel standard deviation divided by after that.
    """
    height, width = (size, size) if isinstance(size, int) else size
    if image.mode != "RGB":
        image = _to_rgb(image)
    # PIL's resize returns a copy when the size already matches, so equal sizes cost nothing extra.
    resized = image.resize((width, height), Image.Resampling.BICUBIC)
    pixels = torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
    return ((pixels - mean_t) / std_t).contiguous()


class TileGrid(NamedTuple):
    """A grid of `rows` x `cols` square tiles; the image is resized to (cols * tile, rows * tile) pixels."""

    rows: int
    cols: int

    @property
    def tiles(self) -> int:
        return self.rows * self.cols


def should_tile(num_images_in_sample: int, is_video_frame: bool = False) -> bool:
    """Valley2's policy: only the single image of a one-image sample is tiled; multi-image and video are not.

    Args:
        num_images_in_sample: how many images the sample holds (video frames not counted).
        is_video_frame: whether the picture is a frame of a video.
    """
    return num_images_in_sample == 1 and not is_video_frame


def tile_grid(width: int, height: int, tile: int, max_tiles: int = 9, min_tiles: int = 1) -> TileGrid:
    """The grid InternVL2's `dynamic_preprocess` picks for a width x height image, without touching pixels.

    Grids with min_tiles <= rows * cols <= max_tiles are visited by tile count; the one whose cols / rows
    is closest to width / height wins. A later (so not smaller) grid at exactly the same distance replaces
    it when the image is big enough to fill it: width * height > tile**2 * rows * cols / 2. So a 3:2
    image gets 3x2 tiles; a 1:1 image gets 1x1, then 2x2 above 2 tiles' area, then 3x3 above 4.5 tiles'
    area. Distances are compared as exact fractions, where InternVL compares floats, so a tie is never a
    rounding accident. Aspect ratios beyond the grids (1:20 with 9 tiles) get the most elongated grid.

    Args:
        width: image width in pixels.
        height: image height in pixels.
        tile: the side of a tile in pixels (the vision encoder's input size).
        max_tiles: the most tiles, thumbnail not counted.
        min_tiles: the fewest tiles.
    """
    if width < 1 or height < 1 or tile < 1 or not 1 <= min_tiles <= max_tiles:
        raise ValueError(f"tile_grid({width}, {height}, tile={tile}, max_tiles={max_tiles}, min_tiles={min_tiles})")
    aspect, area = Fraction(width, height), width * height
    grids = sorted(
        (TileGrid(r, c) for r in range(1, max_tiles + 1) for c in range(1, max_tiles // r + 1) if r * c >= min_tiles),
        key=lambda g: (g.tiles, g.cols),
    )
    best, best_diff = grids[0], abs(aspect - Fraction(grids[0].cols, grids[0].rows))
    for grid in grids[1:]:
        diff = abs(aspect - Fraction(grid.cols, grid.rows))
        if diff < best_diff or (diff == best_diff and 2 * area > tile * tile * grid.tiles):
            best, best_diff = grid, diff
    return best


def num_tiles(width: int, height: int, tile: int, max_tiles: int = 9, thumbnail: bool = True) -> int:
    """How many tile images `tile_image` returns for a width x height image (the thumbnail included).

    Args:
        width: image width in pixels.
        height: image height in pixels.
        tile: the side of a tile in pixels.
        max_tiles: the most tiles, thumbnail not counted.
        thumbnail: whether a thumbnail is added when there is more than one tile.
    """
    n = tile_grid(width, height, tile, max_tiles).tiles
    return n + (1 if thumbnail and n > 1 else 0)


def tile_image(image: Image.Image, tile: int, max_tiles: int = 9, thumbnail: bool = True,
               grid: TileGrid | None = None) -> list[Image.Image]:
    """Cut an image into its `tile_grid` tiles, row by row, plus a whole-image thumbnail when tiles > 1.

    The image is resized (bicubic) to the grid's exact size first, so it is stretched only as far as the
    grid's aspect ratio differs from its own; the thumbnail is the whole image resized to tile x tile.

    Args:
        image: the image (e.g. from `load_image`).
        tile: the side of each tile in pixels.
        max_tiles: the most tiles, thumbnail not counted.
        thumbnail: whether to append the thumbnail when there is more than one tile.
        grid: the grid to cut (default: `tile_grid` of the image's size), e.g. the full-size image's grid for
            an image decoded at reduced scale.
    """
    rows, cols = grid or tile_grid(image.width, image.height, tile, max_tiles)
    resized = image.resize((cols * tile, rows * tile), Image.Resampling.BICUBIC)
    tiles = [
        resized.crop((c * tile, r * tile, (c + 1) * tile, (r + 1) * tile)) for r in range(rows) for c in range(cols)
    ]
    if thumbnail and len(tiles) > 1:
        tiles.append(image.resize((tile, tile), Image.Resampling.BICUBIC))
    return tiles


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent product shots are shown on white; dropping alpha instead would expose whatever colour
        # the transparent pixels happen to hold (often black). Qwen-VL's loader does the same.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")

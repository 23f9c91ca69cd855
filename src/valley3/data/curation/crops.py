"""Item-intelligence crops (eBay study): the smallest square enclosing every region of interest, inside the image."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple


class Box(NamedTuple):
    """A region in pixels: left, top, right, bottom (right/bottom exclusive, as PIL's crop takes them)."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0


class CropError(ValueError):
    """Boxes that cannot be cropped: none given, inverted, or outside the image."""


def union(boxes: Sequence[Sequence[float]]) -> Box:
    """The tightest box around every box."""
    if not boxes:
        raise CropError("no regions of interest")
    parsed = [Box(*map(float, box)) for box in boxes]
    for box in parsed:
        if box.width <= 0 or box.height <= 0:
            raise CropError(f"box {tuple(box)} has no area (expected x0 < x1 and y0 < y1)")
    return Box(min(b.x0 for b in parsed), min(b.y0 for b in parsed), max(b.x1 for b in parsed), max(b.y1 for b in parsed))


def enclosing_square(boxes: Sequence[Sequence[float]], width: int, height: int) -> Box:
    """The smallest axis-aligned square that covers every box and lies inside a `width` x `height` image.

    The square's side is the larger side of the boxes' union; it is centred on the union where the image
    allows and shifted inward where the union sits near a border (never cropping a box). When the side
    exceeds the image's shorter side no square fits, and the crop keeps the union's extent along the short
    axis clipped to the image (a rectangle): the closest-to-square crop that still covers every box.
    Integer pixel coordinates: the union is widened to whole pixels first.

    Args:
        boxes: regions as (x0, y0, x1, y1) in pixels.
        width: image width in pixels.
        height: image height in pixels.

    Raises:
        CropError: no boxes, a box without area, or a box outside the image.
    """
    box = union(boxes)
    if box.x0 < 0 or box.y0 < 0 or box.x1 > width or box.y1 > height:
        raise CropError(f"regions {tuple(box)} reach outside the {width}x{height} image")
    x0, y0 = int(box.x0), int(box.y0)  # floor: coordinates are non-negative here
    x1, y1 = -int(-box.x1 // 1), -int(-box.y1 // 1)  # ceil
    side = max(x1 - x0, y1 - y0)
    left, right = _place(x0, x1, side, width)
    top, bottom = _place(y0, y1, side, height)
    return Box(left, top, right, bottom)


def _place(lo: int, hi: int, side: int, limit: int) -> tuple[int, int]:
    """An interval of length `side` (at most `limit`) containing [lo, hi], centred on it where possible."""
    side = min(side, limit)
    start = lo - (side - (hi - lo)) // 2
    start = max(0, min(start, limit - side))
    return start, start + side

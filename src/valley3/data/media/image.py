"""Image loading with a full decode, and resizing into normalised pixel tensors (SigLIP convention)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from valley3.data.media import MediaError, require_file

# What PIL raises on bad data: OSError for unidentified or truncated files, SyntaxError for broken PNG
# chunks, the rest for malformed headers and oversized images.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


def load_image(path: str | os.PathLike) -> Image.Image:
    """Read an image fully into memory as RGB, compositing any transparency onto white.

    Args:
        path: the image file (any format PIL reads).

    Raises:
        MediaError: the file is missing, zero-length, truncated or not a readable image.
    """
    path = require_file(path)
    try:
        with Image.open(path) as image:
            # Image.open only reads the header; without a full decode here, a truncated file would fail
            # later inside a dataloader worker, far from its path.
            image.load()
            return _to_rgb(image)
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


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent product shots are shown on white; dropping alpha instead would expose whatever colour
        # the transparent pixels happen to hold (often black). Qwen-VL's loader does the same.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")

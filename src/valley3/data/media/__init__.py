"""Media loading: one error type for unreadable files, and the image, video and audio loaders."""

from __future__ import annotations

import os
from pathlib import Path


class MediaError(Exception):
    """A media file that cannot be used (missing, empty, corrupt); the caller skips its sample.

    Args:
        path: the file.
        reason: what is wrong with it, for the warning that names the skipped sample.
    """

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def require_file(path: str | os.PathLike) -> Path:
    """Return `path` as a Path, or raise MediaError if it is missing, not a file, or empty.

    Args:
        path: the media file.
    """
    path = Path(path)
    if not path.exists():
        raise MediaError(path, "no such file")
    if not path.is_file():
        raise MediaError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise MediaError(path, "zero-length file")
    return path


# Loaders import MediaError from this module, so they come after it.
from valley3.data.media.audio import load_audio, log_mel, num_frames  # noqa: E402
from valley3.data.media.image import (  # noqa: E402
    TileGrid,
    load_image,
    num_tiles,
    should_tile,
    tile_grid,
    tile_image,
    to_pixels,
)
from valley3.data.media.video import Video, load_video, load_video_audio, sample_indices  # noqa: E402

__all__ = [
    "MediaError",
    "TileGrid",
    "Video",
    "load_audio",
    "load_image",
    "load_video",
    "load_video_audio",
    "log_mel",
    "num_frames",
    "num_tiles",
    "require_file",
    "sample_indices",
    "should_tile",
    "tile_grid",
    "tile_image",
    "to_pixels",
]

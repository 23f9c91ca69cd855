"""Perceptual-hash deduplication of images, within an item and across a dataset (eBay study's crop dedup)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import imagehash
import numpy as np

from valley3.data.media.image import load_image

# popcount of every byte value, to count differing bits of 64-bit hashes without a Python loop
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def phash(path: str | os.PathLike) -> int:
    """The 64-bit DCT perceptual hash of an image (EXIF orientation applied), as an int."""
    bits = imagehash.phash(load_image(path)).hash.flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def hamming(a: np.ndarray, b: int) -> np.ndarray:
    """Differing bits between every 64-bit hash in `a` and the hash `b`."""
    xor = (a ^ np.uint64(b)).view(np.uint8).reshape(-1, 8)
    return _POPCOUNT[xor].sum(axis=1)


@dataclass
class DedupResult:
    """Which items survive, and for each dropped one the kept item it duplicates."""

    kept: list[int] = field(default_factory=list)
    duplicate_of: dict[int, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {"before": len(self.kept) + len(self.duplicate_of), "after": len(self.kept),
                "removed": len(self.duplicate_of)}


def dedup_hashes(hashes: Sequence[int], threshold: int = 4, max_kept: int | None = None) -> DedupResult:
    """Keep each hash unless it lies within `threshold` bits of an earlier kept one (first come, first kept).

    Args:
        hashes: 64-bit perceptual hashes in priority order (earlier ones win).
        threshold: the largest Hamming distance that still counts as the same picture (0 = exact hashes).
        max_kept: keep at most this many distinct pictures (the study keeps at most 9 per item); the rest
            are dropped as over the cap (recorded as duplicate_of = -1).
    """
    result = DedupResult()
    kept = np.zeros(len(hashes), dtype=np.uint64)
    for i, h in enumerate(hashes):
        n = len(result.kept)
        if n:
            distances = hamming(kept[:n], h)
            nearest = int(distances.argmin())
            if distances[nearest] <= threshold:
                result.duplicate_of[i] = result.kept[nearest]
                continue
        if max_kept is not None and n >= max_kept:
            result.duplicate_of[i] = -1
            continue
        kept[n] = np.uint64(h)
        result.kept.append(i)
    return result

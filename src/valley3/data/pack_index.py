"""The offline packer's pack index: built in one pass per (data, settings, seed), saved, then reused."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader, Dataset

from valley3.data.packing import Cost, PackBudget, PackStats, cost_of, fit_example, offline_packs

_INDEX_VERSION = 1


class _Measure(Dataset):
    """Per sample: its cost after the over-long policy, or why it has none (runs in DataLoader workers)."""

    def __init__(self, dataset: Dataset, budget: PackBudget, media_ids: Sequence[int], audio_frame_rate: float):
        self.dataset, self.budget, self.media_ids, self.rate = dataset, budget, media_ids, audio_frame_rate

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[str, Cost | None]:
        example = self.dataset[index]
        if example is None:
            return "unreadable", None
        example, status = fit_example(example, self.budget, self.media_ids)
        if example is None:
            return status, None
        cost = cost_of(example, self.rate)
        return (status, cost) if self.budget.admits(cost) else ("skipped", None)


def _identity(item: Any) -> Any:
    return item


def index_key(*parts: Any) -> str:
    """A stable digest of everything a pack index depends on (data, processor, budget, seed)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def pack_index(
    dataset: Dataset,
    budget: PackBudget,
    seed: int,
    key: str,
    cache_dir: str | os.PathLike,
    media_ids: Sequence[int] = (),
    audio_frame_rate: float = 100.0,
    window: int = 4096,
    num_workers: int = 0,
) -> tuple[list[list[int]], PackStats, bool]:
    """The offline pack index for `key`: loaded if saved before, else built (one pass over `dataset`) and saved.

    Returns the packs (lists of dataset indices), their stats, and whether this call built them. The file is
    written atomically, so ranks that build at once (same data, same seed, hence the same packs) never clash.
    """
    path = Path(cache_dir) / f"packs-{key[:24]}.json"
    if path.exists():
        saved = json.loads(path.read_text())
        if saved.get("key") == key and saved.get("version") == _INDEX_VERSION:
            return saved["packs"], PackStats(**saved["stats"]), False
    costs, stats = measure(dataset, budget, media_ids, audio_frame_rate, num_workers)
    packs = offline_packs(costs, budget, seed, window)
    stats.packs, stats.samples = len(packs), sum(map(len, packs))
    stats.tokens = sum(costs[i].tokens for pack in packs for i in pack)
    _write(path, {"version": _INDEX_VERSION, "key": key, "seed": seed, "stats": dataclasses.asdict(stats), "packs": packs})
    return packs, stats, True


def measure(dataset: Dataset, budget: PackBudget, media_ids: Sequence[int] = (), audio_frame_rate: float = 100.0,
            num_workers: int = 0) -> tuple[list[Cost | None], PackStats]:
    """One pass over `dataset`: each sample's cost after the over-long policy (None: left out), and the counts."""
    stats, costs = PackStats(), []
    measurer = _Measure(dataset, budget, media_ids, audio_frame_rate)
    for status, cost in DataLoader(measurer, batch_size=None, num_workers=num_workers, collate_fn=_identity):
        costs.append(cost)
        if status != "kept":
            setattr(stats, status, getattr(stats, status) + 1)
    return costs, stats


def cost_index(dataset: Dataset, budget: PackBudget, key: str, cache_dir: str | os.PathLike,
               media_ids: Sequence[int] = (), audio_frame_rate: float = 100.0,
               num_workers: int = 0) -> tuple[list[Cost | None], PackStats]:
    """`measure`'s result for `key`, saved once and reused: a mixture packs each epoch's own order from it."""
    path = Path(cache_dir) / f"costs-{key[:24]}.json"
    if path.exists():
        saved = json.loads(path.read_text())
        if saved.get("key") == key and saved.get("version") == _INDEX_VERSION:
            return [Cost(**c) if c else None for c in saved["costs"]], PackStats(**saved["stats"])
    costs, stats = measure(dataset, budget, media_ids, audio_frame_rate, num_workers)
    _write(path, {"version": _INDEX_VERSION, "key": key, "stats": dataclasses.asdict(stats),
                  "costs": [dataclasses.asdict(c) if c else None for c in costs]})
    return costs, stats


def _write(path: Path, record: dict[str, Any]) -> None:
    """Atomic, so ranks that build the same file at once never clash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as tmp:
        json.dump(record, tmp)
    os.replace(tmp.name, path)

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
from valley3.threads import worker_init

_INDEX_VERSION = 2
CHUNK = 64  # samples per task sent to a worker: fewer, larger messages between processes


class _Measure(Dataset):
    """Per chunk of sample indices: each one's cost after the over-long policy, or why it has none, and the media
    items it decoded (runs in DataLoader workers). Samples are measured from metadata when the dataset can
    (`measure(index)`, e.g. `SampleDataset`), else decoded."""

    def __init__(self, dataset: Dataset, budget: PackBudget, media_ids: Sequence[int], audio_frame_rate: float,
                 metadata: bool = True):
        self.dataset, self.budget, self.media_ids, self.rate = dataset, budget, media_ids, audio_frame_rate
        self.metadata = metadata and hasattr(dataset, "measure")

    def __len__(self) -> int:
        return -(-len(self.dataset) // CHUNK)

    def __getitem__(self, chunk: int) -> list[tuple[str, Cost | None, int]]:
        stop = min(len(self.dataset), (chunk + 1) * CHUNK)
        return [self._one(index) for index in range(chunk * CHUNK, stop)]

    def _one(self, index: int) -> tuple[str, Cost | None, int]:
        example, decoded = self.dataset.measure(index) if self.metadata else (self.dataset[index], 0)
        if example is None:
            return "unreadable", None, decoded
        example, status = fit_example(example, self.budget, self.media_ids)
        if example is None:
            return status, None, decoded
        cost = cost_of(example, self.rate)
        return (status, cost, decoded) if self.budget.admits(cost) else ("skipped", None, decoded)


def _identity(item: Any) -> Any:
    return item


def samples_digest(samples: Sequence) -> str:
    """A digest of what decides samples' costs, not of where they lie: ids, turns, and each media file's kind,
    name, size and modification time. The same data read from another working folder or moved with its times
    kept (cp -a, rsync -t) finds its index; a changed or re-copied file makes a new one."""
    digest, files = hashlib.sha256(), {}
    for sample in samples:
        media = []
        for ref in sample.media:
            if ref.path not in files:
                try:
                    stat = os.stat(ref.path)
                    files[ref.path] = [Path(ref.path).name, stat.st_size, stat.st_mtime_ns]
                except OSError:  # missing: the pass counts it unreadable; its arrival changes the key
                    files[ref.path] = [Path(ref.path).name, None, None]
            media.append([ref.kind, *files[ref.path]])
        digest.update(json.dumps([sample.id, [[t.role, t.content] for t in sample.turns], media]).encode())
    return digest.hexdigest()


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
    metadata: bool = True,
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
    costs, stats = measure(dataset, budget, media_ids, audio_frame_rate, num_workers, metadata)
    packs = offline_packs(costs, budget, seed, window)
    stats.packs, stats.samples = len(packs), sum(map(len, packs))
    stats.tokens = sum(costs[i].tokens for pack in packs for i in pack)
    _write(path, {"version": _INDEX_VERSION, "key": key, "seed": seed, "stats": dataclasses.asdict(stats), "packs": packs})
    return packs, stats, True


def measure(dataset: Dataset, budget: PackBudget, media_ids: Sequence[int] = (), audio_frame_rate: float = 100.0,
            num_workers: int = 0, metadata: bool = True) -> tuple[list[Cost | None], PackStats]:
    """One pass over `dataset` in `num_workers` processes: each sample's cost after the over-long policy (None:
    left out), and the counts. With `metadata`, media sizes and lengths come from headers where the dataset can
    read them (`SampleDataset.measure`); the media items that still needed a decode are counted in `decoded`."""
    stats, costs = PackStats(), []
    measurer = _Measure(dataset, budget, media_ids, audio_frame_rate, metadata)
    loader = DataLoader(measurer, batch_size=None, num_workers=num_workers, collate_fn=_identity,
                        worker_init_fn=worker_init if num_workers else None)
    for chunk in loader:
        for status, cost, decoded in chunk:
            costs.append(cost)
            stats.decoded += decoded
            if status != "kept":
                setattr(stats, status, getattr(stats, status) + 1)
    return costs, stats


def cost_index(dataset: Dataset, budget: PackBudget, key: str, cache_dir: str | os.PathLike,
               media_ids: Sequence[int] = (), audio_frame_rate: float = 100.0,
               num_workers: int = 0, metadata: bool = True) -> tuple[list[Cost | None], PackStats]:
    """`measure`'s result for `key`, saved once and reused: a mixture packs each epoch's own order from it."""
    path = Path(cache_dir) / f"costs-{key[:24]}.json"
    if path.exists():
        saved = json.loads(path.read_text())
        if saved.get("key") == key and saved.get("version") == _INDEX_VERSION:
            return [Cost(**c) if c else None for c in saved["costs"]], PackStats(**saved["stats"])
    costs, stats = measure(dataset, budget, media_ids, audio_frame_rate, num_workers, metadata)
    _write(path, {"version": _INDEX_VERSION, "key": key, "stats": dataclasses.asdict(stats),
                  "costs": [dataclasses.asdict(c) if c else None for c in costs]})
    return costs, stats


def _write(path: Path, record: dict[str, Any]) -> None:
    """Atomic, so ranks that build the same file at once never clash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as tmp:
        json.dump(record, tmp)
    os.replace(tmp.name, path)

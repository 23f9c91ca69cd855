"""Training loaders over packs: an offline pack index (built once per data, settings and seed) or online packing."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from valley3.data.mixture import Mixture
from valley3.data.pack_index import cost_index, index_key, pack_index, samples_digest
from valley3.data.packing import OnlinePacker, PackBudget, PackingCollator, packs_in_order
from valley3.data.sampler import ResumableLoader, ShardSampler
from valley3.threads import available_cores, loader_workers

MODES = ("offline", "online")
COSTS = ("metadata", "decode")


@dataclass
class PackingConfig:
    """How a DataModule packs its training split (`packing: true` takes every default).

    Args:
        max_tokens: tokens per pack.
        max_images: images per pack, each tile of a tiled image counted (None: no limit).
        max_video_frames: video frames per pack (None: no limit).
        max_audio_seconds: seconds of audio per pack (None: no limit).
        over_long: "truncate" or "skip" a sample longer than `max_tokens` (counted either way).
        mode: "offline": a pack index built in one pass and reused across epochs, runs and ranks;
            "online": a seeded stream packed in buffers, with no pass up front.
        packs_per_batch: packs per training step (rows of the batch).
        window: offline: samples packed together (first-fit-decreasing over each window of a seeded order).
        buffer_size: online: samples buffered before packing.
        cache_dir: where pack indexes live (default $VALLEY3_CACHE/packs, else ~/.cache/valley3/packs).
        costs: how the offline pass measures samples: "metadata" (media sizes and lengths from headers and
            container metadata, decoding only what they cannot tell; the same costs) or "decode" (every item).
    """

    max_tokens: int = 4096
    max_images: int | None = None
    max_video_frames: int | None = None
    max_audio_seconds: float | None = None
    over_long: str = "truncate"
    mode: str = "offline"
    packs_per_batch: int = 1
    window: int = 4096
    buffer_size: int = 256
    cache_dir: str | None = None
    costs: str = "metadata"

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"packing mode must be one of {MODES}, got {self.mode!r}")
        if self.costs not in COSTS:
            raise ValueError(f"packing costs must be one of {COSTS}, got {self.costs!r}")
        self.budget = PackBudget(self.max_tokens, self.max_images, self.max_video_frames, self.max_audio_seconds,
                                 self.over_long)

    @classmethod
    def parse(cls, value: bool | dict[str, Any] | PackingConfig | None) -> PackingConfig | None:
        """None/False: no packing; True: defaults; a dict: these settings."""
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if isinstance(value, cls):
            return value
        unknown = set(value) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown packing setting(s) {sorted(unknown)}; known: {[f.name for f in dataclasses.fields(cls)]}")
        return cls(**value)


def cost_workers() -> int:
    """Processes for the offline cost pass: one per available core (none on one core)."""
    cores = available_cores()
    return cores if cores > 1 else 0


def default_cache_dir() -> Path:
    return Path(os.environ.get("VALLEY3_CACHE", Path.home() / ".cache" / "valley3")) / "packs"


class PackDataset(Dataset):
    """A pack (a list of dataset indices, as `PackSampler` yields it) -> its examples (None: unreadable media)."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, pack: list[int]) -> list:
        return [self.dataset[i] for i in pack]


class PackSampler(ShardSampler):
    """Yields this rank's packs of each epoch; `epoch_packs(epoch)` gives every rank's packs in order.

    Lightning reads a loader's length once, so every epoch has epoch 0's pack count (split equally over ranks):
    a later epoch with more packs loses its last ones, one with fewer repeats its first ones (`fitted()` counts).

    Args:
        epoch_packs: epoch -> the packs of that epoch (the same on every rank).
        seed: recorded in the state, so a resume with another seed is refused.
        rank: this process's rank.
        world_size: number of processes.
    """

    def __init__(self, epoch_packs: Callable[[int], list[list[int]]], seed: int = 0, rank: int = 0,
                 world_size: int = 1):
        super().__init__(seed, rank, world_size)
        self._epoch_packs, self._cached = epoch_packs, {}
        self._total = len(self.epoch_order(0))

    def epoch_order(self, epoch: int) -> list[list[int]]:
        if epoch not in self._cached:
            self._cached = {epoch: self._epoch_packs(epoch)}  # one epoch kept: packs of a big mixture are large
        return self._cached[epoch]

    def total(self) -> int:
        return self._total


class OnlinePackDataset(IterableDataset):
    """A mixture's order per epoch, split over workers, packed as it streams (one rank only: ranks would pack
    different numbers of packs and step unequally, which hangs DDP).

    Args:
        dataset: examples by index (None for a skipped sample).
        packer: the online packer (copied per iteration, so its counters are per epoch and worker).
        mixture: gives each epoch's order of dataset indices.
        seed: with the epoch, fixes the order.
        packs_per_batch: packs per batch, to turn the batches a resumed run has consumed into packs to skip.
    """

    def __init__(self, dataset: Dataset, packer: OnlinePacker, mixture: Mixture, seed: int = 0,
                 packs_per_batch: int = 1):
        self.dataset, self.packer, self.mixture, self.seed, self.epoch = dataset, packer, mixture, seed, 0
        self.packs_per_batch, self.skip_batches = packs_per_batch, 0

    def resume(self, epoch: int, batches: int) -> None:
        """Start at `epoch` past its first `batches` batches (the stream is replayed up to there, not trained on)."""
        self.epoch, self.skip_batches = epoch, batches

    def __iter__(self):
        order = self.mixture.epoch_indices(self.seed, self.epoch).tolist()
        self.epoch += 1
        worker = get_worker_info()
        wid, workers = (worker.id, worker.num_workers) if worker else (0, 1)
        # The DataLoader takes batches from its workers in turn: batch j came from worker j % workers.
        skip = self.packs_per_batch * max(0, -(-(self.skip_batches - wid) // workers))
        self.skip_batches = 0
        packer = OnlinePacker(self.packer.budget, self.packer.media_ids, self.packer.buffer_size,
                              self.packer.min_fill, self.packer.rate)
        yield from itertools.islice(packer(self.dataset[i] for i in order[wid::workers]), skip, None)


def _processor_digest(processor) -> dict[str, Any]:
    """What decides a sample's length: tokenizer, template, media settings and token counts, max_len."""
    digest: dict[str, Any] = {"tokenizer": _tokenizer_digest(processor.tokenizer), "template": repr(processor.template),
                              "max_len": processor.max_len, "video": dataclasses.asdict(processor.video),
                              "video_audio": processor.video_audio}
    image, audio = processor.image, processor.audio
    for kind, spec in (("image", image), ("audio", audio)):
        if spec is not None:
            fields = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}
            digest[kind] = {name: v for name, v in fields.items() if not callable(v)}
    # Sizes and token counts come from the model (encoder and connector), which the settings above do not show;
    # a non-square probe tells a native-resolution encoder from a fixed one.
    if image is not None:
        digest["image"]["tokens"] = [image.num_tokens(image.size, image.size), image.resize(300, 500),
                                     image.num_tokens(*image.resize(300, 500))]
    if audio is not None:
        digest["audio"]["tokens"] = audio.num_tokens(3000)
    return digest


def _tokenizer_digest(tokenizer) -> list:
    """The tokenizer's content (vocabulary, merges, added tokens), not the folder it was loaded from."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    content = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    return [len(tokenizer), hashlib.sha256(content.encode()).hexdigest()]


def packed_loader(dataset, config: PackingConfig, processor, mixture: Mixture, seed: int = 0, num_workers: int = 0,
                  rank: int = 0, world_size: int = 1, fixed_index: bool = True) -> DataLoader:
    """The training DataLoader over packs of `dataset` (a SampleDataset over `mixture.samples`), offline or online.

    Offline with `fixed_index` (plain files): one cached pack index, its packs reshuffled each epoch. Offline over a
    configured mixture: sample costs are measured once (cached) and each epoch's draws are packed in the sampler's
    order (a curriculum holds window by window). Both deal packs to ranks in turn, cutting the remainder.
    """
    media_ids = sorted(processor.token_ids.values())
    audio = processor.audio
    rate = audio.sampling_rate / audio.hop_length if audio is not None else 100.0
    collate = PackingCollator(processor.pad_id, config.budget, media_ids)
    common = {"batch_size": config.packs_per_batch, "collate_fn": collate, **loader_workers(num_workers)}
    if config.mode == "online":
        if world_size > 1:
            raise ValueError(f"online packing gives ranks unequal numbers of packs (DDP would hang) and cannot run on "
                             f"{world_size} ranks; use packing mode: offline")
        packer = OnlinePacker(config.budget, media_ids, config.buffer_size, audio_frame_rate=rate)
        return ResumableLoader(OnlinePackDataset(dataset, packer, mixture, seed, config.packs_per_batch), **common)
    parts = (samples_digest(dataset.samples), _processor_digest(processor), dataclasses.asdict(config.budget),
             config.costs)
    cache_dir = config.cache_dir or default_cache_dir()
    # The pass runs before training, so it takes every core this process may use.
    measure = {"num_workers": cost_workers(), "metadata": config.costs == "metadata"}
    if fixed_index:
        packs, stats, _ = pack_index(dataset, config.budget, seed, index_key(*parts, config.window, seed), cache_dir,
                                     media_ids, rate, config.window, **measure)
        epoch_packs = partial(_reshuffled, packs, seed)
    else:
        costs, stats = cost_index(dataset, config.budget, index_key(*parts), cache_dir, media_ids, rate, **measure)
        epoch_packs = partial(_mixture_packs, costs, mixture, config, seed)
    if stats.decoded:
        warnings.warn(f"packing: {stats.decoded} media item(s) had no usable metadata and were decoded to be "
                      f"measured", stacklevel=2)
    if stats.truncated or stats.skipped:
        warnings.warn(f"packing: {stats.truncated} over-long sample(s) truncated, {stats.skipped} skipped "
                      f"(over_long={config.over_long!r}, max_tokens={config.max_tokens})", stacklevel=2)
    sampler = PackSampler(epoch_packs, seed, rank, world_size)
    cut = sampler.fitted(0)[0]
    if cut:
        warnings.warn(f"packing: {cut} pack(s) of each epoch's {sampler.total()} left out so that {world_size} ranks "
                      f"take the same number of steps", stacklevel=2)
    return ResumableLoader(PackDataset(dataset), sampler=sampler, **common)


def _reshuffled(packs: list[list[int]], seed: int, epoch: int) -> list[list[int]]:
    return [packs[i] for i in np.random.default_rng([seed, epoch]).permutation(len(packs))]


def _mixture_packs(costs, mixture: Mixture, config: PackingConfig, seed: int, epoch: int) -> list[list[int]]:
    packs = packs_in_order(costs, mixture.epoch_indices(seed, epoch), config.budget, config.window)
    if mixture.quality is None:  # no curriculum: spread each window's long-first packs over the epoch
        packs = _reshuffled(packs, seed, epoch)
    return packs

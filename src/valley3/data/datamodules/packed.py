"""Training loaders over packs: an offline pack index (built once per data, settings and seed) or online packing."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from valley3.data.pack_index import index_key, pack_index
from valley3.data.packing import OnlinePacker, PackBudget, PackingCollator

MODES = ("offline", "online")


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

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"packing mode must be one of {MODES}, got {self.mode!r}")
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


def default_cache_dir() -> Path:
    return Path(os.environ.get("VALLEY3_CACHE", Path.home() / ".cache" / "valley3")) / "packs"


class PackDataset(Dataset):
    """Pack i of an index -> its examples (None where a sample's media has become unreadable)."""

    def __init__(self, dataset: Dataset, packs: list[list[int]]):
        self.dataset, self.packs = dataset, packs

    def __len__(self) -> int:
        return len(self.packs)

    def __getitem__(self, index: int) -> list:
        return [self.dataset[i] for i in self.packs[index]]


class OnlinePackDataset(IterableDataset):
    """A seeded shuffle per epoch, split over ranks and workers, packed as it streams.

    Args:
        dataset: examples by index (None for a skipped sample).
        packer: the online packer (copied per iteration, so its counters are per epoch and worker).
        seed: shuffle seed; epoch e uses seed + e.
    """

    def __init__(self, dataset: Dataset, packer: OnlinePacker, seed: int = 0):
        self.dataset, self.packer, self.seed, self.epoch = dataset, packer, seed, 0

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.dataset), generator=generator).tolist()
        self.epoch += 1
        dist = torch.distributed
        rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_available() and dist.is_initialized() else (0, 1)
        worker = get_worker_info()
        wid, workers = (worker.id, worker.num_workers) if worker else (0, 1)
        packer = OnlinePacker(self.packer.budget, self.packer.media_ids, self.packer.buffer_size,
                              self.packer.min_fill, self.packer.rate)
        yield from packer(self.dataset[i] for i in order[rank * workers + wid :: world * workers])


def _processor_digest(processor) -> dict[str, Any]:
    """What decides a sample's length: tokenizer, template, media settings and token counts, max_len."""
    digest: dict[str, Any] = {"tokenizer": [getattr(processor.tokenizer, "name_or_path", ""), len(processor.tokenizer)],
                              "template": repr(processor.template), "max_len": processor.max_len,
                              "video": dataclasses.asdict(processor.video), "video_audio": processor.video_audio}
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


def packed_loader(dataset, config: PackingConfig, processor, seed: int = 0, num_workers: int = 0) -> DataLoader:
    """The training DataLoader over packs of `dataset` (a SampleDataset), offline or online."""
    media_ids = sorted(processor.token_ids.values())
    audio = processor.audio
    rate = audio.sampling_rate / audio.hop_length if audio is not None else 100.0
    collate = PackingCollator(processor.pad_id, config.budget, media_ids)
    common = {"batch_size": config.packs_per_batch, "num_workers": num_workers, "collate_fn": collate,
              "persistent_workers": num_workers > 0}
    if config.mode == "online":
        packer = OnlinePacker(config.budget, media_ids, config.buffer_size, audio_frame_rate=rate)
        return DataLoader(OnlinePackDataset(dataset, packer, seed), **common)
    samples = hashlib.sha256(json.dumps([dataclasses.asdict(s) for s in dataset.samples], default=str).encode())
    key = index_key(samples.hexdigest(), _processor_digest(processor), dataclasses.asdict(config.budget),
                    config.window, seed)
    packs, stats, _ = pack_index(dataset, config.budget, seed, key, config.cache_dir or default_cache_dir(),
                                 media_ids, rate, config.window, num_workers)
    if stats.truncated or stats.skipped:
        warnings.warn(f"packing: {stats.truncated} over-long sample(s) truncated, {stats.skipped} skipped "
                      f"(over_long={config.over_long!r}, max_tokens={config.max_tokens})", stacklevel=2)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(PackDataset(dataset, packs), shuffle=True, generator=generator, **common)

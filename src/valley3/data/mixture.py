"""Weighted mixtures of data sources: LLaVA-OneVision sampling strategies, replay, curriculum, a resumable sampler."""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from valley3.data.formats import read_samples
from valley3.data.sampler import ShardSampler
from valley3.data.schema import Sample

STRATEGY_FORMS = ("all", "first:N", "first:P%", "end:N", "end:P%", "random:N", "random:P%")
_STRATEGY_RE = re.compile(r"(?P<mode>first|end|random):(?P<num>\d+(?:\.\d+)?)(?P<pct>%?)")
TokenLength = Callable[[Sample], float] | str


def parse_strategy(strategy: str, source: str = "<source>") -> tuple[str, float | None, bool]:
    """`"first:10%"` -> ("first", 10.0, True); `"all"` -> ("all", None, False); errors name `source`."""
    text = strategy.strip() if isinstance(strategy, str) else strategy
    if text == "all":
        return "all", None, False
    match = _STRATEGY_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f"source {source!r}: bad sampling strategy {strategy!r}; accepted forms: {', '.join(STRATEGY_FORMS)}"
        )
    num, pct = float(match["num"]), bool(match["pct"])
    if pct and not 0 < num <= 100:
        raise ValueError(f"source {source!r}: strategy {strategy!r} needs a percentage in (0, 100]")
    if not pct and (num != int(num) or num < 1):
        raise ValueError(f"source {source!r}: strategy {strategy!r} needs a whole count N >= 1")
    return match["mode"], num, pct


def select(n: int, strategy: str, seed: int = 0, source: str = "<source>") -> list[int]:
    """Indices of a source of `n` samples that a strategy keeps (percentages round up, as LLaVA-OneVision does)."""
    mode, num, pct = parse_strategy(strategy, source)
    if mode == "all":
        return list(range(n))
    # round() first so 10% of 1000 is 100, not 101 from 100.00000000000001
    k = math.ceil(round(num * n / 100, 9)) if pct else int(num)
    if k > n:
        raise ValueError(f"source {source!r}: strategy {strategy!r} asks for {k} samples but the source has {n}")
    if mode == "first":
        return list(range(k))
    if mode == "end":
        return list(range(n - k, n))
    rng = np.random.default_rng([seed, zlib.crc32(source.encode())])  # by name: reordering sources changes nothing
    return sorted(rng.permutation(n)[:k].tolist())


@dataclass
class Source:
    """One data source of a mixture, as a data YAML entry gives it.

    Args:
        path: a JSONL / JSON-list data file (read with `read_samples`); give this or `samples`.
        samples: samples already in memory; give this or `path`.
        weight: relative share of the mix among the non-replay sources (sample or token share, per `by`).
        strategy: which part of the source is used: "all", "first:N", "first:P%", "end:N", "end:P%",
            "random:N" or "random:P%" (random picks are seeded, the same every epoch).
        replay: a fixed share of the whole mix in [0, 1) for an earlier stage's data (e.g. 0.1); `weight`
            is then ignored and the other sources share the rest.
        name: used in errors and stats; defaults to the file name.
        format: data file format for `read_samples` ("auto", "messages", "llava").
    """

    path: str | None = None
    samples: Sequence[Sample] | None = None
    weight: float = 1.0
    strategy: str = "all"
    replay: float | None = None
    name: str | None = None
    format: str = "auto"

    def __post_init__(self) -> None:
        self.name = self.name or (Path(self.path).name if self.path else "<memory>")
        if (self.path is None) == (self.samples is None):
            raise ValueError(f"source {self.name!r}: give exactly one of 'path' or 'samples'")
        if not self.weight > 0:
            raise ValueError(f"source {self.name!r}: weight must be > 0, got {self.weight}")
        if self.replay is not None and not 0 <= self.replay < 1:
            raise ValueError(f"source {self.name!r}: replay is a share of the mix in [0, 1), got {self.replay}")
        parse_strategy(self.strategy, self.name)

    def load(self) -> list[Sample]:
        return list(self.samples) if self.samples is not None else read_samples(self.path, self.format)


class Mixture:
    """The selected samples of every source, concatenated, plus each source's share of an epoch of draws.

    Args:
        sources: `Source`s, or dicts with its fields (as a data YAML lists them).
        by: "samples" (shares count samples) or "tokens" (shares count tokens, via `token_length`).
        token_length: a callable Sample -> length, or the name of a `meta` field holding it; needed for "tokens".
        num_samples: draws per epoch (all ranks together); default the number of selected samples. A source
            whose share exceeds its size is repeated (each sample floor/ceil times), a smaller one subsampled.
        curriculum: name of a `meta` quality field; when given, each epoch is ordered by it, highest last.
        seed: seeds the "random:" strategies.
    """

    def __init__(
        self,
        sources: Sequence[Source | dict[str, Any]],
        by: str = "samples",
        token_length: TokenLength | None = None,
        num_samples: int | None = None,
        curriculum: str | None = None,
        seed: int = 0,
    ):
        if by not in ("samples", "tokens"):
            raise ValueError(f"by must be 'samples' or 'tokens', got {by!r}")
        if by == "tokens" and token_length is None:
            raise ValueError("by='tokens' needs token_length: a callable Sample -> length or a meta field name")
        self.sources = [_as_source(s, i) for i, s in enumerate(sources)]
        if not self.sources:
            raise ValueError("a mixture needs at least one source")
        self.samples: list[Sample] = []
        self.offsets, self.sizes = [], []
        for src in self.sources:
            loaded = src.load()
            kept = [loaded[i] for i in select(len(loaded), src.strategy, seed, src.name)]
            if not kept:
                raise ValueError(f"source {src.name!r}: no samples left after strategy {src.strategy!r}")
            self.offsets.append(len(self.samples))
            self.sizes.append(len(kept))
            self.samples.extend(kept)
        self.shares = _shares(self.sources)
        lengths = [1.0] * len(self.sources)
        if by == "tokens":
            lengths = [
                float(np.mean([_length(s, token_length, src.name) for s in self.pool(i)]))
                for i, src in enumerate(self.sources)
            ]
        self.num_samples = num_samples if num_samples is not None else len(self.samples)
        # A token share w at mean length L needs a sample share proportional to w / L.
        self.counts = _apportion(self.num_samples, [w / length for w, length in zip(self.shares, lengths)])
        self.quality = None
        if curriculum is not None:
            self.quality = np.array([_meta(s, curriculum) for s in self.samples], dtype=np.float64)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Sample:
        return self.samples[index]

    def pool(self, i: int) -> list[Sample]:
        return self.samples[self.offsets[i] : self.offsets[i] + self.sizes[i]]

    def source_of(self, index: int) -> int:
        """Which source a concatenated index belongs to."""
        return int(np.searchsorted(self.offsets, index, side="right")) - 1

    def epoch_indices(self, seed: int, epoch: int) -> np.ndarray:
        """All draws of one epoch (every rank's), as indices into `samples`; a pure function of (seed, epoch)."""
        rng = np.random.default_rng([seed, epoch])
        parts = []
        for offset, size, count in zip(self.offsets, self.sizes, self.counts):
            reps = -(-count // size)
            draws = np.concatenate([rng.permutation(size) for _ in range(reps)])[:count] if count else []
            parts.append(offset + np.asarray(draws, dtype=np.int64))
        order = rng.permutation(np.concatenate(parts))
        if self.quality is not None:
            order = order[np.argsort(self.quality[order], kind="stable")]  # ties keep their shuffled order
        return order


class MixtureSampler(ShardSampler):
    """Yields this rank's shard of a mixture's epoch; resumable mid-epoch through `state_dict`.

    Ranks take every `world_size`-th draw (so a curriculum's order holds on each rank); the last
    `num_samples % world_size` draws are dropped so shards are disjoint and equally long.

    Args:
        mixture: the `Mixture` whose `samples` the yielded indices point into.
        seed: with the epoch, fixes the order; every rank must use the same seed.
        rank: this process's rank.
        world_size: number of processes sharing the mixture.
    """

    def __init__(self, mixture: Mixture, seed: int = 0, rank: int = 0, world_size: int = 1):
        super().__init__(seed, rank, world_size)
        self.mixture = mixture

    def epoch_order(self, epoch: int) -> np.ndarray:
        return self.mixture.epoch_indices(self.seed, epoch)

    def total(self) -> int:
        return self.mixture.num_samples


def build_mixture(sources: Sequence[Source | dict[str, Any]], **kwargs: Any) -> Mixture:
    """A `Mixture` from a data YAML's list of sources, e.g. `[{path: a.jsonl, weight: 2, strategy: "first:10%"}]`."""
    return Mixture(sources, **kwargs)


def _as_source(spec: Source | dict[str, Any], i: int) -> Source:
    if isinstance(spec, Source):
        return spec
    if not isinstance(spec, dict):
        raise TypeError(f"source {i}: expected a Source or a mapping, got {type(spec).__name__}")
    unknown = set(spec) - {f.name for f in fields(Source)}
    if unknown:
        name = spec.get("name") or spec.get("path") or f"#{i}"
        raise ValueError(
            f"source {name!r}: unknown key(s) {sorted(unknown)}; known: {[f.name for f in fields(Source)]}"
        )
    return Source(**spec)


def _shares(sources: list[Source]) -> list[float]:
    """Each source's share of the mix: replay sources their fixed share, the rest the remainder by weight."""
    replay = sum(s.replay for s in sources if s.replay is not None)
    rest = [s.weight for s in sources if s.replay is None]
    if replay >= 1 or not rest:
        raise ValueError(
            f"replay shares sum to {replay}; they must leave room (< 1) for at least one non-replay source"
        )
    return [s.replay if s.replay is not None else (1 - replay) * s.weight / sum(rest) for s in sources]


def _apportion(total: int, weights: list[float]) -> list[int]:
    """Split `total` in proportion to `weights` exactly (largest remainder), so ratios hold to one sample."""
    exact = np.asarray(weights) / sum(weights) * total
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: total - counts.sum()]:
        counts[i] += 1
    return counts.tolist()


def _meta(sample: Sample, key: str) -> float:
    if key not in sample.meta:
        raise KeyError(f"{sample.source} (sample {sample.id!r}): no meta field {key!r}")
    return float(sample.meta[key])


def _length(sample: Sample, token_length: TokenLength, source: str) -> float:
    length = _meta(sample, token_length) if isinstance(token_length, str) else float(token_length(sample))
    if not length > 0:
        raise ValueError(f"source {source!r}: sample {sample.id!r} has token length {length}; it must be > 0")
    return length

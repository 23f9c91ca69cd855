"""ShardSampler: one seeded order per epoch, split into equal rank shards, resumable mid-epoch."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler


class ShardSampler(DistributedSampler):
    """Base of the training samplers: subclasses give `epoch_order(epoch)` (every rank's items, the same list on
    every rank) and `total()` (items per epoch, all ranks together).

    Rank r takes every `world_size`-th item of the order (so an order such as a curriculum holds on each rank).
    Every rank gets `total() // world_size` items each epoch, so ranks step the same number of times (DDP would
    hang otherwise): an order longer than that is cut, a shorter one is repeated from its start; `fitted()` counts
    both. `position` (items already yielded this epoch) makes it resumable: `load_state_dict` restores it.

    It is a `DistributedSampler` subclass so that Lightning (`use_distributed_sampler: true`, the default) sees a
    loader that is already sharded and leaves it alone instead of wrapping it in a second, rank-blind shard.

    Args:
        seed: with the epoch, fixes the order; every rank must use the same seed.
        rank: this process's rank.
        world_size: number of processes sharing the data.
    """

    def __init__(self, seed: int = 0, rank: int = 0, world_size: int = 1):
        # No DistributedSampler.__init__: it wants a sized dataset and a process group; only the type is borrowed.
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.num_replicas, self.shuffle, self.drop_last = world_size, True, True  # DistributedSampler's fields
        self.epoch = 0
        self.position = 0  # items of this epoch already yielded on this rank

    def epoch_order(self, epoch: int) -> Sequence[Any]:
        raise NotImplementedError

    def total(self) -> int:
        raise NotImplementedError

    def __len__(self) -> int:
        return self.total() // self.world_size

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:  # a resumed run calls this with its own epoch: keep the restored position
            self.epoch, self.position = epoch, 0

    def fitted(self, epoch: int | None = None) -> tuple[int, int]:
        """(items cut, items repeated) in an epoch's order (default the current one) to give equal shards."""
        n, want = len(self.epoch_order(self.epoch if epoch is None else epoch)), len(self) * self.world_size
        return max(0, n - want), max(0, want - n)

    def indices(self) -> list[Any]:
        """This rank's whole shard of the current epoch."""
        order, want = self.epoch_order(self.epoch), len(self) * self.world_size
        if len(order) < want:
            if not len(order):
                raise ValueError(f"epoch {self.epoch} has no items to sample from")
            order = list(order) * math.ceil(want / len(order))
        shard = order[:want][self.rank :: self.world_size]
        return shard.tolist() if isinstance(shard, np.ndarray) else list(shard)

    def __iter__(self) -> Iterator[Any]:
        shard = self.indices()
        while self.position < len(shard):
            self.position += 1
            yield shard[self.position - 1]
        self.position = 0  # the epoch is done; the next one starts from its beginning

    def state_dict(self) -> dict[str, int]:
        """Position in the epoch. A DataLoader prefetches ahead of training, so a checkpoint should hold batches
        consumed x batch size instead (as `BaseDataModule.state_dict` does), loaded back through this method."""
        return {"seed": self.seed, "epoch": self.epoch, "position": self.position, "world_size": self.world_size}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if (state["seed"], state["world_size"]) != (self.seed, self.world_size):
            raise ValueError(
                f"sampler state is for seed {state['seed']}, world size {state['world_size']}; "
                f"this run has seed {self.seed}, world size {self.world_size}"
            )
        self.epoch, self.position = state["epoch"], state["position"]


class ResumableLoader(DataLoader):
    """A training DataLoader whose position is saved by its DataModule (`BaseDataModule.state_dict`).

    Its own `state_dict`/`load_state_dict` hold nothing: they exist because Lightning takes a loader with them as
    resumable, and otherwise warns on every mid-epoch resume that the loader "is not resumable".
    """

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

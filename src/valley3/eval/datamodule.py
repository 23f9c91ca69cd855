"""BenchmarkDataModule: each benchmark's prompts as left-padded generation batches, tagged with their items."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator

import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from valley3.data.batch import EvalBatch
from valley3.data.collate import PadCollator
from valley3.data.datamodules.base import BaseDataModule
from valley3.data.media import MediaError
from valley3.data.processor import Example, OmniProcessor, SampleError
from valley3.eval.benchmarks.base import Benchmark, EvalItem
from valley3.threads import loader_workers


class _PromptDataset(Dataset):
    """Processes a benchmark's items for generation. Key ``i`` is item ``i``; key ``n + i`` is a padding copy
    of it (served so every rank runs the same number of batches, never scored)."""

    def __init__(self, items: list[EvalItem], processor: OmniProcessor, strict: bool, max_len: int | None) -> None:
        self.items, self.processor, self.strict, self.max_len = items, processor, strict, max_len

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: int) -> tuple[Example | None, int, bool, str | None]:
        index, padding = key % len(self.items), key >= len(self.items)
        item = self.items[index]
        try:
            example = self.processor(item.sample, generation=True)
            if self.max_len is not None and len(example) > self.max_len:  # cut, it would lose the question's end
                raise SampleError(f"prompt of {len(example)} tokens exceeds max_len={self.max_len}")
            return example, index, padding, None
        except (MediaError, SampleError) as err:
            if self.strict:
                raise
            if not padding:
                warnings.warn(f"skipping {item.uid!r} ({item.sample.source}): {err}", stacklevel=2)
            return None, index, padding, str(err)


class EvenShardSampler(DistributedSampler):
    """Rank r takes items r, r + W, r + 2W, ...; the last shards are topped up with padding keys (``n + i``)
    so every rank runs the same batches (collectives stay aligned) while no item is scored twice."""

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)
        total = math.ceil(n / self.num_replicas) * self.num_replicas
        keys = list(range(n)) + [n + i % n for i in range(total - n)]
        return iter(keys[self.rank : total : self.num_replicas])


class _EvalCollator:
    """PadCollator (left padding) plus the batch's tags: item indices, which rows are real, skipped items."""

    def __init__(self, pad_id: int, benchmark: str) -> None:
        self.pad, self.benchmark = PadCollator(pad_id, padding_side="left"), benchmark

    def __call__(self, rows: list[tuple[Example | None, int, bool, str | None]]) -> EvalBatch:
        return EvalBatch(
            **vars(self.pad([ex for ex, *_ in rows])),
            benchmark=self.benchmark,
            eval_index=[index for ex, index, _, _ in rows if ex is not None],
            eval_real=[not padding for ex, _, padding, _ in rows if ex is not None],
            eval_skipped=[(index, err) for ex, index, padding, err in rows if ex is None and not padding],
        )


class BenchmarkDataModule(BaseDataModule):
    """Benchmark suites as generation batches: one test dataloader per benchmark, for ``EvalStage``.

    Each batch holds one benchmark's prompts (left padded, the reference answer held out) and tags:
    ``benchmark``, ``eval_index`` (item of each row), ``eval_real`` (False for padding copies) and
    ``eval_skipped`` (items whose media or tokens were unusable, with the reason). Under a process group the
    items are sharded over ranks without repeats, the shards topped up with padding copies. A prompt longer
    than the stage's ``max_len`` is skipped (and counted), never truncated.

    Args:
        benchmarks: the suites to run (``valley3.eval.benchmarks``), in report order.
        batch_size: prompts per generation batch (per device).
        num_workers: DataLoader worker processes, or "auto" (see `BaseDataModule`).
        strict: raise on an unreadable media file or unusable prompt instead of skipping it.
    """

    def __init__(self, benchmarks: list[Benchmark], batch_size: int = 8, num_workers: int | str = "auto", strict: bool = False):
        super().__init__(batch_size=batch_size, num_workers=num_workers, strict=strict)
        names = [b.name for b in benchmarks]
        if not benchmarks or len(set(names)) != len(names):
            raise ValueError(f"benchmarks must be a non-empty list with unique names, got {names}")
        self.benchmarks = list(benchmarks)
        self.max_len: int | None = None

    def connect(self, processor: OmniProcessor, max_len: int | None = None) -> None:
        """Bind the processor; prompts longer than ``max_len`` are skipped, never truncated."""
        self.processor, self.max_len = processor, max_len

    def setup(self, stage: str | None = None) -> None:
        for benchmark in self.benchmarks:
            _ = benchmark.items  # read now, so a bad file fails before the model runs

    def _benchmark_loader(self, benchmark: Benchmark) -> DataLoader:
        if self.processor is None:
            raise RuntimeError("BenchmarkDataModule.connect(processor, max_len) must be called before loading")
        dataset = _PromptDataset(benchmark.items, self.processor, self.strict, self.max_len)
        sampler = None
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            sampler = EvenShardSampler(dataset, dist.get_world_size(), dist.get_rank())
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            collate_fn=_EvalCollator(self.processor.pad_id, benchmark.name),
            **loader_workers(self.num_workers),
        )

    def test_dataloader(self) -> list[DataLoader]:
        return [self._benchmark_loader(b) for b in self.benchmarks]

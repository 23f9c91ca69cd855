"""StreamingDataModule: training and evaluation data read from litdata shards (`valley3 data shard`)."""

from __future__ import annotations

import tempfile
from typing import Any

from valley3.data.datamodules.base import BaseDataModule, SampleDataset
from valley3.data.processor import Example
from valley3.data.schema import Sample, SchemaError
from valley3.data.streaming import ShardStore, is_shard_location, materialize


class ShardSampleDataset(SampleDataset):
    """A SampleDataset whose media are fetched from shards when a sample is processed."""

    def __init__(self, samples: list[Sample], stores: list[ShardStore], *args: Any, **kwargs: Any):
        super().__init__(samples, *args, **kwargs)
        self.stores = stores

    def process(self, sample: Sample) -> Example | None:
        with tempfile.TemporaryDirectory(prefix="valley3-shard-") as folder:
            return super().process(materialize(sample, self.stores, folder))

    def measure_sample(self, sample: Sample) -> tuple[Example | None, int]:
        with tempfile.TemporaryDirectory(prefix="valley3-shard-") as folder:
            return super().measure_sample(materialize(sample, self.stores, folder))


class StreamingDataModule(BaseDataModule):
    """Any mix of text, image, audio and video conversations, read from shard folders instead of JSONL files.

    Every option of the other DataModules applies (`sources` with their weights and strategies, `mixture`,
    `packing`, exact resume); `train`/`val`/`test`/`predict` and a source's `path` name shard locations.

    Args:
        cache_dir: where chunks of a remote location (`s3://...`, `local:/...`) are cached.
        **kwargs: the BaseDataModule arguments.
    """

    def __init__(self, *args: Any, cache_dir: str | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.cache_dir = cache_dir
        self.stores: list[ShardStore] = []

    def _read_file(self, path: str, format: str) -> list[Sample]:
        if not is_shard_location(path):
            raise SchemaError(f"{path}: not a shard folder (no valley3_shards.json); write one with `valley3 data shard`")
        self.stores.append(ShardStore(path, self.cache_dir))
        samples = self.stores[-1].samples(store_no=len(self.stores) - 1)
        for s in samples:
            extra = s.modalities - self.modalities
            if extra:
                raise SchemaError(f"{s.source} (sample {s.id!r}): {type(self).__name__} takes no {sorted(extra)}")
        return samples

    def dataset(self, samples: list[Sample], generation: bool = False) -> ShardSampleDataset:
        return ShardSampleDataset(samples, self.stores, self.processor, self.strict, generation=generation)

"""BaseDataModule: JSONL/JSON sources -> Samples -> Examples, with the processor bound late."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from valley3.data.collate import PadCollator
from valley3.data.datamodules.packed import PackingConfig, packed_loader
from valley3.data.formats import read_samples
from valley3.data.media import MediaError
from valley3.data.processor import Example, OmniProcessor, SampleError
from valley3.data.schema import Sample, SchemaError


class SampleDataset(Dataset):
    """Processes samples on access; a sample whose media or tokens are unusable becomes None (skipped)
    with a warning, or raises when `strict`."""

    def __init__(self, samples: list[Sample], processor: OmniProcessor, strict: bool = False, generation: bool = False):
        self.samples = samples
        self.processor = processor
        self.strict = strict
        self.generation = generation  # prompts without the last answer, for generation

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Example | None:
        sample = self.samples[index]
        try:
            return self.processor(sample, generation=self.generation)
        except (MediaError, SampleError) as err:
            if self.strict:
                raise
            warnings.warn(f"skipping sample {sample.id!r} ({sample.source}): {err}", stacklevel=2)
            return None


def _as_list(paths: str | Sequence[str] | None) -> list[str]:
    if paths is None:
        return []
    return [paths] if isinstance(paths, str) else list(paths)


class BaseDataModule(L.LightningDataModule):
    """Reads data files once, checks every sample's modalities, and serves padded batches.

    Args:
        train: training file(s): messages JSONL or LLaVA-OneVision JSON/JSONL.
        val: validation file(s).
        test: test file(s).
        predict: file(s) whose prompts `valley3 predict` answers (a final assistant turn is held out).
        batch_size: samples per batch (per device).
        num_workers: DataLoader worker processes.
        format: "auto", "messages" or "llava".
        media_root: folder relative media paths are resolved against (default: each file's folder).
        strict: raise on an unreadable media file or unusable sample instead of skipping it.
        seed: seed of the training shuffle.
        packing: pack the training split instead of padding it: true, or settings such as
            `{max_tokens: 4096, max_images: 16, mode: offline}` (see `PackingConfig`). Other splits stay padded.
    """

    modalities: frozenset[str] = frozenset({"text", "image", "audio", "video"})

    def __init__(
        self,
        train: str | list[str] | None = None,
        val: str | list[str] | None = None,
        test: str | list[str] | None = None,
        predict: str | list[str] | None = None,
        batch_size: int = 4,
        num_workers: int = 0,
        format: str = "auto",
        media_root: str | None = None,
        strict: bool = False,
        seed: int = 0,
        packing: bool | dict[str, Any] | None = None,
    ):
        super().__init__()
        self.files = {split: _as_list(f) for split, f in [("train", train), ("val", val), ("test", test), ("predict", predict)]}
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.format = format
        self.media_root = media_root
        self.strict = strict
        self.seed = seed
        self.packing = PackingConfig.parse(packing)
        self.processor: OmniProcessor | None = None
        self.samples: dict[str, list[Sample]] = {}

    def connect(self, processor: OmniProcessor, max_len: int | None = None) -> None:
        """Late binding: the processor (tokenizer, media specs) depends on the model being trained."""
        if max_len is not None:
            processor.max_len = max_len
        self.processor = processor

    def read(self, split: str) -> list[Sample]:
        if split not in self.samples:
            samples = [s for f in self.files[split] for s in read_samples(f, self.format, self.media_root)]
            for s in samples:
                extra = s.modalities - self.modalities
                if extra:
                    raise SchemaError(f"{s.source} (sample {s.id!r}): {type(self).__name__} takes no {sorted(extra)}")
            self.samples[split] = samples
        return self.samples[split]

    def setup(self, stage: str | None = None) -> None:
        for split, files in self.files.items():
            if files:
                self.read(split)

    def _loader(self, split: str, shuffle: bool) -> DataLoader | list:
        if not self.files[split]:
            return []  # Lightning reads an empty list as "no such loop"
        if self.processor is None:
            raise RuntimeError(f"{type(self).__name__}.connect(processor, max_len) must be called before loading")
        generation = split == "predict"
        dataset = SampleDataset(self.read(split), self.processor, self.strict, generation=generation)
        if split == "train" and self.packing is not None:
            return packed_loader(dataset, self.packing, self.processor, self.seed, self.num_workers)
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=PadCollator(self.processor.pad_id, padding_side="left" if generation else "right"),
            generator=generator if shuffle else None,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader | list:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader | list:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader | list:
        return self._loader("predict", shuffle=False)

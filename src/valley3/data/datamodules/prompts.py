"""PromptDataModule: batches of prompt records (Samples, reference answer kept) for RL, resumable like training data."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import DataLoader

from valley3.data.batch import PromptBatch
from valley3.data.datamodules.base import BaseDataModule, SampleDataset, _resume
from valley3.data.mixture import MixtureSampler
from valley3.data.sampler import ResumableLoader
from valley3.data.schema import Sample


class PromptDataset(SampleDataset):
    """Yields the Sample itself (the policy processes it when it generates), after checking that its prompt
    processes: one with unreadable media or too many tokens becomes None (a counted skip), or raises when `strict`."""

    def __getitem__(self, index: int) -> Sample | None:
        return None if super().__getitem__(index) is None else self.samples[index]


def collate_prompts(items: Sequence[Sample | None]) -> PromptBatch:
    """The usable Samples, in order, and how many were not."""
    prompts = [s for s in items if s is not None]
    return PromptBatch(prompts, torch.tensor(len(items) - len(prompts)))


class PromptDataModule(BaseDataModule):
    """Prompts for GRPO: each record's final assistant turn is its reference answer (rewards read it; the policy
    drops it when it generates). The training order, mixtures and exact resume are those of `BaseDataModule`;
    `batch_size` is the number of prompts per rollout batch.
    """

    def train_dataloader(self) -> DataLoader | list:
        if not self.files["train"] and not self.sources:
            return []
        if self.processor is None:
            raise RuntimeError(f"{type(self).__name__}.connect(processor, max_len) must be called before loading")
        if self.packing is not None:
            raise ValueError("PromptDataModule serves prompts for generation: packing does not apply")
        mixture = self.train_mixture()
        trainer = self._trainer_or_none()
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        dataset = PromptDataset(mixture.samples, self.processor, self.strict, generation=True)
        sampler = MixtureSampler(mixture, self.seed, rank, world)
        loader = ResumableLoader(dataset, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers,
                                 collate_fn=collate_prompts, persistent_workers=self.num_workers > 0)
        if self._resume is not None:
            _resume(loader, self._resume, self.seed, world)
            self._resume = None
        return loader

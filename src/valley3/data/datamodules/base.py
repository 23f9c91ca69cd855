"""BaseDataModule: JSONL/JSON sources -> Samples -> Examples, with the processor bound late."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader, Dataset

from valley3.compat import loop_position
from valley3.data.collate import PadCollator
from valley3.data.datamodules.packed import OnlinePackDataset, PackingConfig, packed_loader
from valley3.data.formats import read_samples
from valley3.data.media import MediaError
from valley3.data.mixture import Mixture, MixtureSampler, Source
from valley3.data.processor import CONTROL_TOKENS, Example, OmniProcessor, SampleError
from valley3.data.sampler import ResumableLoader
from valley3.data.schema import Sample, SchemaError
from valley3.threads import loader_workers, resolve_workers


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
        return self.process(self.samples[index])

    def process(self, sample: Sample) -> Example | None:
        return self._guarded(sample, lambda s: self.processor(s, generation=self.generation))

    def measure(self, index: int) -> tuple[Example | None, int]:
        """Sample `index` as `OmniProcessor.measure` gives it (media as meta tensors read from metadata) and the
        media items it still had to decode; (None, 0) when it is skipped."""
        return self.measure_sample(self.samples[index])

    def measure_sample(self, sample: Sample) -> tuple[Example | None, int]:
        return self._guarded(sample, self.processor.measure) or (None, 0)

    def _guarded(self, sample: Sample, process):
        try:
            return process(sample)
        except (MediaError, SampleError) as err:
            if self.strict:
                raise
            warnings.warn(f"skipping sample {sample.id!r} ({sample.source}): {err}", stacklevel=3)
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
        num_workers: DataLoader worker processes, or "auto": half the cores this process may use (affinity and
            cgroup quota, or $VALLEY3_CPUS), at most 8, none on one core. Each worker runs one thread.
        format: "auto", "messages" or "llava".
        media_root: folder relative media paths are resolved against (default: each file's folder).
        strict: raise on an unreadable media file or unusable sample instead of skipping it.
        seed: seed of the training shuffle.
        packing: pack the training split instead of padding it: true, or settings such as
            `{max_tokens: 4096, max_images: 16, mode: offline}` (see `PackingConfig`). Other splits stay padded.
        sources: a training mixture instead of (or besides) `train`: a list of `Source` settings, e.g.
            `[{path: a.jsonl, weight: 2}, {path: b.jsonl, strategy: "first:50%"}, {path: s1.jsonl, replay: 0.1}]`;
            `train` files, if also given, join as one more source named "train".
        mixture: `Mixture` settings for `sources`, e.g. `{by: samples, num_samples: 600, curriculum: quality}`.
        control_tokens: a special token of the tokenizer (`<|im_end|>`, `<|endoftext|>`, ...) inside data text:
            "reject" skips the sample with a warning naming it (counted), "escape" reads it as ordinary text.
        on_bad_record: a record that fails schema validation (not JSON, a missing assistant turn, a tag/file
            mismatch, a modality this DataModule takes no part in): "error" stops with its file:line, "skip" drops
            it; skipped records are counted per file in `bad_records`, warned about and shown in the run summary.

    Training is always drawn by a rank-aware, resumable sampler (plain files: a one-source mixture, reshuffled
    each epoch); the position in the epoch is saved in checkpoints (`state_dict`), so a resumed run goes on
    with the next unseen batch.
    """

    modalities: frozenset[str] = frozenset({"text", "image", "audio", "video"})

    def __init__(
        self,
        train: str | list[str] | None = None,
        val: str | list[str] | None = None,
        test: str | list[str] | None = None,
        predict: str | list[str] | None = None,
        batch_size: int = 4,
        num_workers: int | str = "auto",
        format: str = "auto",
        media_root: str | None = None,
        strict: bool = False,
        seed: int = 0,
        packing: bool | dict[str, Any] | None = None,
        sources: list[dict[str, Any]] | None = None,
        mixture: dict[str, Any] | None = None,
        control_tokens: str = "reject",
        on_bad_record: str = "error",
    ):
        super().__init__()
        if on_bad_record not in ("error", "skip"):
            raise ValueError(f"on_bad_record must be 'error' or 'skip', got {on_bad_record!r}")
        self.on_bad_record = on_bad_record
        self.bad_records: dict[str, int] = {}  # file -> records skipped by on_bad_record: skip
        if control_tokens not in CONTROL_TOKENS:
            raise ValueError(f"control_tokens must be one of {CONTROL_TOKENS}, got {control_tokens!r}")
        self.control_tokens = control_tokens
        self.files = {split: _as_list(f) for split, f in [("train", train), ("val", val), ("test", test), ("predict", predict)]}
        self.batch_size = batch_size
        self.num_workers = resolve_workers(num_workers)
        self.format = format
        self.media_root = media_root
        self.strict = strict
        self.seed = seed
        self.packing = PackingConfig.parse(packing)
        if mixture is not None and not sources:
            raise ValueError("`mixture` settings need `sources` (a list of {path, weight, strategy, replay, ...})")
        self.sources, self.mixture_args = list(sources or []), dict(mixture or {})
        self.processor: OmniProcessor | None = None
        self.samples: dict[str, list[Sample]] = {}
        self._mixture: Mixture | None = None
        self._resume: dict[str, Any] | None = None  # the train position from a checkpoint, for the next train loader

    def connect(self, processor: OmniProcessor, max_len: int | None = None) -> None:
        """Late binding: the processor (tokenizer, media specs) depends on the model being trained."""
        if max_len is not None:
            processor.max_len = max_len
        processor.control_tokens = self.control_tokens
        self.processor = processor

    def read(self, split: str) -> list[Sample]:
        if split not in self.samples:
            self.samples[split] = [s for f in self.files[split] for s in self._read_file(f, self.format)]
        return self.samples[split]

    def _read_file(self, path: str, format: str) -> list[Sample]:
        errors = [] if self.on_bad_record == "skip" else None
        samples, kept = read_samples(path, format, self.media_root, errors), []
        for s in samples:
            extra = s.modalities - self.modalities
            if not extra:
                kept.append(s)
                continue
            error = f"{s.source} (sample {s.id!r}): {type(self).__name__} takes no {sorted(extra)}"
            if errors is None:
                raise SchemaError(error)
            errors.append(error)
        if errors:
            self.bad_records[str(path)] = len(errors)
            shown = "\n  ".join(errors[:3]) + ("\n  ..." if len(errors) > 3 else "")
            rank_zero_warn(f"{path}: skipped {len(errors)} bad record(s) of {len(errors) + len(kept)} "
                           f"(on_bad_record: skip):\n  {shown}")
        return kept

    def train_mixture(self) -> Mixture:
        """The training split as a `Mixture`: the configured sources, or the `train` files as one source."""
        if self._mixture is None:
            specs = [self._source(spec, i) for i, spec in enumerate(self.sources)]
            if self.files["train"]:
                specs.append(Source(samples=self.read("train"), name="train"))
            if not specs:
                raise ValueError(f"{type(self).__name__}: no training data (give `train` files or `sources`)")
            self._mixture = Mixture(specs, seed=self.seed, **self.mixture_args)
        return self._mixture

    def _source(self, spec: dict[str, Any], i: int) -> Source:
        known = {f.name for f in fields(Source)}
        name = spec.get("name") or spec.get("path") or f"#{i}"
        known.discard("samples")  # a data YAML names files
        if set(spec) - known:
            raise ValueError(f"source {name!r}: unknown key(s) {sorted(set(spec) - known)}; known: {sorted(known)}")
        if not spec.get("path"):
            raise ValueError(f"source {name!r}: needs a `path` (a JSONL / JSON data file)")
        path = spec["path"]
        samples = self._read_file(path, spec.get("format", self.format))  # relative paths: as `train` files
        return Source(**{**spec, "path": None, "samples": samples, "name": spec.get("name") or Path(path).name})

    def setup(self, stage: str | None = None) -> None:
        for split, files in self.files.items():
            if files:
                self.read(split)
        if self.sources:
            self.train_mixture()

    def _loader(self, split: str) -> DataLoader | list:
        if not self.files[split]:
            return []  # Lightning reads an empty list as "no such loop"
        if self.processor is None:
            raise RuntimeError(f"{type(self).__name__}.connect(processor, max_len) must be called before loading")
        generation = split == "predict"
        dataset = self.dataset(self.read(split), generation=generation)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            collate_fn=PadCollator(self.processor.pad_id, padding_side="left" if generation else "right"),
            **loader_workers(self.num_workers),
        )

    def dataset(self, samples: list[Sample], generation: bool = False) -> Dataset:
        """The map-style dataset that processes `samples` (StreamingDataModule fetches media from shards)."""
        return SampleDataset(samples, self.processor, self.strict, generation=generation)

    def train_dataloader(self) -> DataLoader | list:
        if not self.files["train"] and not self.sources:
            return []
        if self.processor is None:
            raise RuntimeError(f"{type(self).__name__}.connect(processor, max_len) must be called before loading")
        mixture = self.train_mixture()
        dataset = self.dataset(mixture.samples)
        trainer = self._trainer_or_none()
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        if self.packing is not None:
            loader = packed_loader(dataset, self.packing, self.processor, mixture, self.seed, self.num_workers, rank,
                                   world, fixed_index=not self.sources)
        else:
            sampler = MixtureSampler(mixture, self.seed, rank, world)
            loader = ResumableLoader(dataset, batch_size=self.batch_size, sampler=sampler,
                                     collate_fn=PadCollator(self.processor.pad_id), **loader_workers(self.num_workers))
        if self._resume is not None:
            _resume(loader, self._resume, self.seed, world)
            self._resume = None  # once: a later loader (reload_dataloaders_every_n_epochs) starts its epoch afresh
        return loader

    def val_dataloader(self) -> DataLoader | list:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader | list:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader | list:
        return self._loader("predict")

    # -- resume ----------------------------------------------------------------------------------
    def _trainer_or_none(self):
        return getattr(self, "trainer", None)

    def state_dict(self) -> dict[str, Any]:
        """The training position, as batches the training loop has consumed (not what loader workers prefetched)."""
        trainer = self._trainer_or_none()
        if trainer is None or not (self.files["train"] or self.sources):
            return {}
        epoch, batches = train_position(trainer)
        per_batch = self.packing.packs_per_batch if self.packing is not None else self.batch_size
        # `position` counts the sampler's items (samples, or packs), so a resume with another batch size still fits
        return {"train": {"epoch": epoch, "batches": batches, "position": batches * per_batch, "seed": self.seed,
                          "world_size": trainer.world_size}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._resume = state.get("train")


def train_position(trainer) -> tuple[int, int]:
    """(epoch, batches of it consumed) from Lightning's own progress counters, the ones it restores on resume.

    A finished epoch reads as the next one's start, so a checkpoint taken at an epoch's end resumes at a fresh epoch.
    """
    ready, started, batches = loop_position(trainer)
    epoch = ready - 1
    if started < ready:  # inside on_train_epoch_start: the batch counters still hold the last epoch
        return max(epoch, 0), 0
    if batches >= trainer.num_training_batches:
        return epoch + 1, 0
    return max(epoch, 0), batches


def _resume(loader: DataLoader, state: dict[str, Any], seed: int, world_size: int) -> None:
    if (state["seed"], state["world_size"]) != (seed, world_size):
        raise ValueError(f"the checkpoint's data position is for seed {state['seed']} on {state['world_size']} rank(s); "
                         f"this run has seed {seed} on {world_size}: resume with the same seed and world size")
    if isinstance(loader.dataset, OnlinePackDataset):
        loader.dataset.resume(state["epoch"], state["batches"])
    else:
        loader.sampler.load_state_dict({"seed": seed, "world_size": world_size, "epoch": state["epoch"],
                                        "position": state["position"]})

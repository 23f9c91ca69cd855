"""Sequence packing: first-fit-decreasing under token and media budgets, online and offline, and PackingCollator."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from valley3.data.batch import Batch
from valley3.data.collate import generation_fields, group_media
from valley3.data.processor import IGNORE_INDEX, Example

OVER_LONG = ("truncate", "skip")


@dataclass(frozen=True)
class Cost:
    """What one sample asks of a pack."""

    tokens: int
    images: int = 0
    video_frames: int = 0
    audio_seconds: float = 0.0


@dataclass(frozen=True)
class PackBudget:
    """The limits of one pack; media limits keep a pack from overloading the vision or audio encoder.

    Args:
        max_tokens: tokens per pack (the packed row length).
        max_images: images per pack, each tile of a tiled image counted (None: no limit).
        max_video_frames: video frames per pack (None: no limit).
        max_audio_seconds: seconds of audio per pack (None: no limit).
        over_long: a sample longer than `max_tokens` is "truncate"d (its end cut; skipped instead if the cut
            would fall inside a media item) or "skip"ped. Both are counted.
    """

    max_tokens: int = 4096
    max_images: int | None = None
    max_video_frames: int | None = None
    max_audio_seconds: float | None = None
    over_long: str = "truncate"

    def __post_init__(self):
        if self.over_long not in OVER_LONG:
            raise ValueError(f"over_long must be one of {OVER_LONG}, got {self.over_long!r}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be positive, got {self.max_tokens}")

    def limits(self) -> np.ndarray:
        free = np.inf
        return np.array([self.max_tokens, self.max_images or free, self.max_video_frames or free,
                         self.max_audio_seconds or free], dtype=np.float64)

    def admits(self, cost: Cost) -> bool:
        """Whether a sample fits an empty pack (a single sample may exceed a media budget)."""
        return bool(np.all(_vector(cost) <= self.limits()))


def _vector(cost: Cost) -> np.ndarray:
    return np.array([cost.tokens, cost.images, cost.video_frames, cost.audio_seconds], dtype=np.float64)


@dataclass
class PackStats:
    """Counters of one packing pass (logged once, so a run says what it dropped)."""

    samples: int = 0  # placed in packs
    packs: int = 0
    tokens: int = 0  # real tokens placed
    truncated: int = 0  # over-long, cut to max_tokens
    skipped: int = 0  # over-long ("skip", or a cut through media) or alone over a media budget
    unreadable: int = 0  # the dataset gave None (media that could not be read)
    decoded: int = 0  # media items the cost pass had to decode (their metadata could not tell)

    def pad_fraction(self, max_tokens: int) -> float:
        """Share of the packs' `max_tokens` capacity left empty."""
        return 1.0 - self.tokens / max(1, self.packs * max_tokens)


def cost_of(example: Example, audio_frame_rate: float = 100.0) -> Cost:
    """An example's demand; `audio_frame_rate` is log-mel frames per second (Whisper: 16 kHz / hop 160)."""
    return Cost(
        tokens=len(example),
        images=len(example.pixel_values),  # a tiled image counts each tile: each is one encoder input
        video_frames=sum(int(v.shape[0]) for v in example.video_pixels),
        audio_seconds=sum(mel.shape[-1] for mel in example.audio_features) / audio_frame_rate,
    )


def fit_example(example: Example, budget: PackBudget, media_ids: Sequence[int] = ()) -> tuple[Example | None, str]:
    """Apply the over-long policy: the example (maybe cut) or None, and "kept", "truncated" or "skipped"."""
    if len(example) <= budget.max_tokens:
        return example, "kept"
    if budget.over_long == "skip":
        return None, "skipped"
    cut = example.input_ids[budget.max_tokens :]
    if media_ids:
        cuts_media = bool(torch.isin(cut, torch.tensor(list(media_ids))).any())
    else:  # without the placeholder ids a sample with media cannot be cut safely
        cuts_media = bool(example.pixel_values or example.audio_features or example.video_pixels)
    if cuts_media:
        return None, "skipped"
    keep = slice(0, budget.max_tokens)
    return dataclasses.replace(example, input_ids=example.input_ids[keep], labels=example.labels[keep]), "truncated"


def first_fit_decreasing(costs: Sequence[Cost], budget: PackBudget) -> list[list[int]]:
    """Indices of `costs` grouped into packs: longest first, each into the first pack it fits in every budget.

    Ties keep the given order, so a seeded shuffle before the call decides which equal samples share a pack.
    """
    limits = budget.limits()
    loads = np.zeros((len(costs), len(limits)))
    packs: list[list[int]] = []
    for i in sorted(range(len(costs)), key=lambda i: -costs[i].tokens):
        need = _vector(costs[i])
        if not budget.admits(costs[i]):
            raise ValueError(f"item {i} ({costs[i]}) exceeds the pack budget on its own; filter it first")
        fits = np.flatnonzero(np.all(loads[: len(packs)] + need <= limits, axis=1))
        b = int(fits[0]) if len(fits) else len(packs)
        if b == len(packs):
            packs.append([])
        packs[b].append(i)
        loads[b] += need
    return packs


def offline_packs(costs: Sequence[Cost | None], budget: PackBudget, seed: int, window: int = 4096) -> list[list[int]]:
    """Packs of dataset indices: a seeded shuffle, then first-fit-decreasing over each `window` of it.

    Windows bound the cost (and keep long samples from all landing in the first packs); None costs are left out.
    """
    return packs_in_order(costs, np.random.default_rng(seed).permutation(len(costs)).tolist(), budget, window)


def packs_in_order(costs: Sequence[Cost | None], order: Sequence[int], budget: PackBudget,
                   window: int = 4096) -> list[list[int]]:
    """Packs of the indices in `order` (repeats allowed), first-fit-decreasing within each `window` of it, the
    windows' packs in order, so an order such as a curriculum holds from window to window; None costs are left out."""
    order = [int(i) for i in order if costs[i] is not None]
    packs: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = order[start : start + window]
        packs += [[chunk[j] for j in pack] for pack in first_fit_decreasing([costs[i] for i in chunk], budget)]
    return packs


class OnlinePacker:
    """Packs a stream of examples without a pass over the data: fills a buffer, packs it first-fit-decreasing,
    emits the packs at least `min_fill` full (always the fullest one) and carries the rest's samples over.

    Args:
        budget: the pack limits and over-long policy.
        media_ids: placeholder token ids, so truncation never cuts a media item.
        buffer_size: samples packed together; larger fills packs better and holds more in memory.
        min_fill: share of `max_tokens` a pack needs before it leaves the buffer (all leave at the end).
        audio_frame_rate: log-mel frames per second, for the audio budget.
    """

    def __init__(self, budget: PackBudget, media_ids: Sequence[int] = (), buffer_size: int = 256,
                 min_fill: float = 0.95, audio_frame_rate: float = 100.0):
        self.budget, self.media_ids = budget, media_ids
        self.buffer_size, self.min_fill, self.rate = buffer_size, min_fill, audio_frame_rate
        self.stats = PackStats()

    def __call__(self, examples: Iterable[Example | None]) -> Iterator[list[Example]]:
        buffer: list[tuple[Example, Cost]] = []
        for example in examples:
            if example is None:
                self.stats.unreadable += 1
                continue
            example, status = fit_example(example, self.budget, self.media_ids)
            cost = cost_of(example, self.rate) if example is not None else None
            if cost is None or not self.budget.admits(cost):
                self.stats.skipped += 1
                continue
            self.stats.truncated += status == "truncated"
            buffer.append((example, cost))
            if len(buffer) >= self.buffer_size:
                buffer = yield from self._emit(buffer, flush=False)
        yield from self._emit(buffer, flush=True)

    def _emit(self, buffer: list[tuple[Example, Cost]], flush: bool):
        packs = first_fit_decreasing([cost for _, cost in buffer], self.budget)
        packs.sort(key=lambda pack: -sum(buffer[i][1].tokens for i in pack))
        kept = []
        for rank, pack in enumerate(packs):
            tokens = sum(buffer[i][1].tokens for i in pack)
            if flush or rank == 0 or tokens >= self.min_fill * self.budget.max_tokens:
                self.stats.packs, self.stats.samples, self.stats.tokens = (
                    self.stats.packs + 1, self.stats.samples + len(pack), self.stats.tokens + tokens)
                yield [buffer[i][0] for i in pack]
            else:
                kept += [buffer[i] for i in pack]
        return kept


def _arange(example: Example) -> torch.Tensor:
    return torch.arange(len(example))


class PackingCollator:
    """Packs -> one `Batch`, as PadCollator's: each pack is a row, samples concatenated, position ids
    restarting per sample, `cu_seqlens` marking sample boundaries over the flattened rows (a row's padding
    joins its last sample, which never attends forward), and media grouped by modality in sample order with
    `*_owner` = the sample's index in `sample_ids`. Accepts one pack (a list of examples) or a list of packs.

    Two packs, width 8: row 0 holds samples a (3 tokens) and b (4), row 1 holds c (5); `.` is padding.

        input_ids       a0 a1 a2 b0 b1 b2 b3 .  | c0 c1 c2 c3 c4 .  .  .
        attention_mask  1  1  1  1  1  1  1  0  | 1  1  1  1  1  0  0  0
        position_ids    0  1  2  0  1  2  3  0  | 0  1  2  3  4  0  0  0
        labels          -  a1 a2 -  b1 b2 b3 -  | -  c1 c2 c3 c4 -  -  -   (- = IGNORE_INDEX; only assistant
                                                                            tokens keep labels in practice)
        cu_seqlens      [0, 3, 8, 16]   over the flattened rows: a = [0, 3), b = [3, 8) with row 0's pad, c = [8, 16)

    The model never sees a T x T mask built from `attention_mask` here: the attention backend keeps each
    `cu_seqlens` piece causal and to itself (block-diagonal mask or varlen kernel, `models/attention.py`):

             a0 a1 a2 b0 b1 b2 b3 .
        a0   x
        a1   x  x
        a2   x  x  x
        b0            x
        b1            x  x
        b2            x  x  x
        b3            x  x  x  x
        .             x  x  x  x  x

    Args:
        pad_id: the tokenizer's pad token id.
        budget: the over-long policy applied to each example (None: examples are taken as they are).
        media_ids: placeholder token ids, so truncation never cuts a media item.
        position_ids: an example -> its position ids, [L] (1-D RoPE) or [C, L] (e.g. 3-D mRoPE/TM-RoPE ids);
            the default is arange(L). Each sample's ids are computed on its own, so they restart per sample.
        pad_to: pad every row to this length (static shapes); default: the longest row of the batch.
    """

    def __init__(self, pad_id: int, budget: PackBudget | None = None, media_ids: Sequence[int] = (),
                 position_ids: Callable[[Example], torch.Tensor] | None = None, pad_to: int | None = None):
        self.pad_id, self.budget, self.media_ids = pad_id, budget, media_ids
        self.position_ids = position_ids or _arange
        self.pad_to = pad_to

    def __call__(self, items: Sequence[Example | None] | Sequence[Sequence[Example | None]]) -> Batch:
        packs = [items] if all(i is None or isinstance(i, Example) for i in items) else items
        rows, skipped = [], 0
        for pack in packs:
            fitted = [fit_example(ex, self.budget, self.media_ids)[0] if self.budget and ex is not None else ex
                      for ex in pack]
            skipped += sum(ex is None for ex in fitted)
            if any(ex is not None for ex in fitted):
                rows.append([ex for ex in fitted if ex is not None])
        if not rows:
            return Batch(torch.tensor(skipped))
        longest = max(sum(map(len, row)) for row in rows)
        width = self.pad_to or longest
        if width < longest:
            raise ValueError(f"a pack of {longest} tokens does not fit pad_to={width}")
        examples = [ex for row in rows for ex in row]
        positions = [self.position_ids(ex) for ex in examples]
        shape = (len(rows), width)
        input_ids = torch.full(shape, self.pad_id, dtype=torch.long)
        labels = torch.full(shape, IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros(shape, dtype=torch.long)
        position_ids = torch.zeros(positions[0].shape[:-1] + shape, dtype=torch.long)
        lengths, k = [], 0
        for r, row in enumerate(rows):
            start = 0
            for ex in row:
                span = slice(start, start + len(ex))
                input_ids[r, span], labels[r, span], attention_mask[r, span] = ex.input_ids, ex.labels, 1
                # The previous sample's last token must not learn to predict this sample's first token.
                labels[r, start] = IGNORE_INDEX
                position_ids[..., r, span] = positions[k]
                lengths.append(len(ex))
                start, k = start + len(ex), k + 1
            lengths[-1] += width - start
        return Batch(
            torch.tensor(skipped),
            input_ids=input_ids,
            labels=labels,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cu_seqlens=torch.tensor([0] + lengths, dtype=torch.int32).cumsum(0, dtype=torch.int32),
            sample_ids=[ex.sample_id for ex in examples],
            media=group_media(examples),
            **generation_fields(examples),
        )

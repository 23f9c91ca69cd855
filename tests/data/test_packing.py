"""Packing: budgets, over-long policy, the collator's batch, media packs = separate runs, the offline index."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from valley3.data.batch import Batch
from valley3.data.collate import PadCollator
from valley3.data.pack_index import pack_index
from valley3.data.packing import (
    Cost,
    OnlinePacker,
    PackBudget,
    PackingCollator,
    first_fit_decreasing,
    fit_example,
    offline_packs,
)
from valley3.data.processor import IGNORE_INDEX, AudioSpec, Example, OmniProcessor
from valley3.data.schema import MediaRef, Sample, Turn
from valley3.models import PlaceholderMismatch
from valley3.stages.base import masked_loss

from ..conftest import forward

BUDGET = PackBudget(max_tokens=512, max_images=3, max_video_frames=16, max_audio_seconds=5.0)
_LENGTHS = [int(n) for n in np.random.default_rng(0).integers(10, 300, 120)]


def _costs(n: int, seed: int = 0) -> list[Cost]:
    rng = np.random.default_rng(seed)
    return [Cost(int(rng.integers(8, 400)), int(rng.integers(0, 3)), int(rng.integers(0, 9)), float(rng.uniform(0, 3)))
            for _ in range(n)]


def _example(n: int, name: str = "x", images: int = 0, media_at: int | None = None) -> Example:
    ids = torch.arange(10, 10 + n) % 1000
    if media_at is not None:
        ids[media_at] = 7  # a placeholder id
    return Example(ids, ids.clone(), name, "memory", pixel_values=[torch.zeros(3, 4, 4)] * images)


def test_first_fit_decreasing_places_every_item_once_within_every_budget():
    costs = _costs(300)
    packs = first_fit_decreasing(costs, BUDGET)
    assert sorted(i for pack in packs for i in pack) == list(range(300))
    for pack in packs:
        assert sum(costs[i].tokens for i in pack) <= 512
        assert sum(costs[i].images for i in pack) <= 3
        assert sum(costs[i].video_frames for i in pack) <= 16
        assert sum(costs[i].audio_seconds for i in pack) <= 5.0
    text_only = [Cost(c.tokens) for c in costs]  # only the token budget binds: packs come out nearly full
    fill = sum(c.tokens for c in text_only) / (512 * len(first_fit_decreasing(text_only, PackBudget(512))))
    assert fill > 0.97
    with pytest.raises(ValueError, match="exceeds the pack budget on its own"):
        first_fit_decreasing([Cost(10, images=4)], BUDGET)


def test_offline_packs_follow_the_seed_and_leave_out_unusable_samples():
    costs = _costs(200) + [None]
    a, b, c = offline_packs(costs, BUDGET, seed=3, window=64), offline_packs(costs, BUDGET, seed=3, window=64), \
        offline_packs(costs, BUDGET, seed=4, window=64)
    assert a == b and a != c
    assert sorted(i for pack in a for i in pack) == list(range(200))


def test_over_long_samples_are_truncated_or_skipped_and_counted():
    budget = PackBudget(max_tokens=64)
    cut, status = fit_example(_example(100), budget, media_ids=[7])
    assert status == "truncated" and len(cut) == 64 and torch.equal(cut.labels, _example(100).labels[:64])
    assert fit_example(_example(100, media_at=80), budget, media_ids=[7]) == (None, "skipped")  # never cut media
    assert fit_example(_example(100, images=1), budget) == (None, "skipped")  # media, placeholder ids unknown
    assert fit_example(_example(100), PackBudget(64, over_long="skip")) == (None, "skipped")
    assert fit_example(_example(50), budget)[1] == "kept"

    packer = OnlinePacker(PackBudget(max_tokens=64, max_images=2), media_ids=[7], buffer_size=8)
    stream = [_example(n, f"s{i}", images=i % 4) for i, n in enumerate([10, 30, 100, 20, 5, 64, 40, 12, 33] * 3)]
    stream += [None, _example(90, "bad", media_at=70)]
    packs = list(packer(stream))
    emitted = [ex.sample_id for pack in packs for ex in pack]
    admitted = [ex.sample_id for ex in stream if ex is not None and ex.sample_id != "bad" and len(ex.pixel_values) <= 2]
    assert sorted(emitted) == sorted(admitted)  # every usable sample exactly once
    assert all(sum(map(len, p)) <= 64 and sum(len(ex.pixel_values) for ex in p) <= 2 for p in packs)
    # Two 100-token samples cut (a third has 3 images, over budget: skipped with the five others and "bad").
    assert (packer.stats.truncated, packer.stats.skipped, packer.stats.unreadable) == (2, 7, 1)
    assert packer.stats.samples == len(emitted) and packer.stats.packs == len(packs)


def _given(batch: Batch) -> set[str]:
    """The names of the fields (media fields included) a batch fills."""
    return {k for k, v in {**vars(batch), **vars(batch.media)}.items() if v is not None}


def test_collator_batch_has_padcollator_keys_restarting_positions_and_boundaries():
    a, b, c = _example(5, "a", images=1), _example(3, "b"), _example(6, "c", images=2)
    batch = PackingCollator(pad_id=0)([[a, None, b], [c]])
    padded = PadCollator(pad_id=0)([a, b, c])
    assert _given(padded) <= _given(batch) and {"cu_seqlens"} <= _given(batch)
    assert batch.input_ids.shape == (2, 8) and int(batch.skipped) == 1
    assert batch.sample_ids == ["a", "b", "c"]
    assert batch.cu_seqlens.tolist() == [0, 5, 8, 16]  # row 1's padding joins its last sample, c
    assert batch.position_ids.tolist() == [[0, 1, 2, 3, 4, 0, 1, 2], [0, 1, 2, 3, 4, 5, 0, 0]]
    assert batch.attention_mask.sum() == 14
    assert batch.labels[0, 5] == IGNORE_INDEX  # a's last token never learns to predict b's first
    assert batch.media.image_owner.tolist() == [0, 2, 2]  # owners index samples, as OmniModel's errors expect
    static = PackingCollator(pad_id=0, pad_to=12)([a, b])
    assert static.input_ids.shape == (1, 12) and static.cu_seqlens.tolist() == [0, 5, 12]
    mrope = PackingCollator(0, position_ids=lambda ex: torch.arange(len(ex)).expand(3, -1))([[a, b], [c]])
    assert mrope.position_ids.shape == (3, 2, 8)  # the hook a 3-D mRoPE / TM-RoPE decoder plugs into
    assert mrope.position_ids[2, 0].tolist() == [0, 1, 2, 3, 4, 0, 1, 2]
    assert PackingCollator(0)([None]).input_ids is None


def _media_samples(media) -> list[Sample]:
    return [
        Sample("image", [Turn("user", "<image>Colour?"), Turn("assistant", "Red.")], [MediaRef("image", media["red"])]),
        Sample("audio", [Turn("user", "<audio>What is it?"), Turn("assistant", "A tone.")],
               [MediaRef("audio", media["long"])]),
        Sample("text", [Turn("user", "Hi"), Turn("assistant", "Hello there.")]),
    ]


def test_a_pack_of_image_audio_and_text_gives_each_sample_its_separate_loss(stage, media):
    examples = [stage.processor(s) for s in _media_samples(media)]
    batch = PackingCollator(stage.processor.pad_id)(examples)
    logits = forward(stage.model, batch).flatten(0, 1)
    labels = batch.labels.flatten()
    bounds = batch.cu_seqlens.tolist()
    for ex, start, end in zip(examples, bounds, bounds[1:]):
        total, count = masked_loss(logits[start:end][None], labels[start:end][None])
        alone, _ = stage.model_step(PadCollator(stage.processor.pad_id)([ex]))
        assert abs(float(total.detach() / count) - float(alone.detach())) <= 1e-5, ex.sample_id
    packed, _ = stage.model_step(batch)
    padded, _ = stage.model_step(PadCollator(stage.processor.pad_id)(examples))
    assert abs(float(packed.detach()) - float(padded.detach())) <= 1e-5  # token mean over the batch either way


def test_a_packed_placeholder_mismatch_names_the_sample(stage, media):
    spec = stage.processor.audio
    wrong = AudioSpec(spec.sampling_rate, spec.n_mels, spec.n_fft, spec.hop_length, lambda n: spec.num_tokens(n) + 1)
    processor = OmniProcessor(stage.processor.tokenizer, stage.processor.template, stage.processor.image, wrong)
    batch = PackingCollator(processor.pad_id)([processor(s) for s in _media_samples(media)])
    with pytest.raises(PlaceholderMismatch, match=r"sample\(s\) audio: \d+ placeholders") as err:
        stage.model_step(batch)
    assert "image" not in str(err.value).split("sample(s)")[1]


class _Counting(torch.utils.data.Dataset):
    def __init__(self, lengths):
        self.lengths, self.reads = lengths, 0

    def __len__(self):
        return len(self.lengths)

    def __getitem__(self, i):
        self.reads += 1
        return _example(self.lengths[i], f"s{i}")


def test_the_offline_index_is_built_once_then_reused(tmp_path):
    data = _Counting(_LENGTHS)
    packs, stats, built = pack_index(data, PackBudget(512), 7, "k" * 64, tmp_path)
    assert built and data.reads == 120 and stats.samples == 120 and stats.packs == len(packs)
    (path,) = tmp_path.glob("packs-*.json")
    stamp = path.stat().st_mtime_ns
    again, stats_again, built_again = pack_index(data, PackBudget(512), 7, "k" * 64, tmp_path)
    assert not built_again and data.reads == 120 and path.stat().st_mtime_ns == stamp
    assert again == packs and stats_again == stats
    assert stats.pad_fraction(512) < 0.05


@pytest.mark.parametrize("over_long", ["truncate", "skip"])
def test_the_offline_index_applies_and_counts_the_over_long_policy(tmp_path, over_long):
    budget = PackBudget(128, over_long=over_long)
    packs, stats, _ = pack_index(_Counting(_LENGTHS), budget, 7, over_long * 8, tmp_path)
    long = sum(n > 128 for n in _LENGTHS)
    assert (stats.truncated, stats.skipped) == ((long, 0) if over_long == "truncate" else (0, long))
    assert stats.samples == sum(map(len, packs)) == len(_LENGTHS) - stats.skipped
    assert stats.tokens <= 128 * stats.packs


# Light on purpose (no model, no Lightning): the same data as `_Counting(_LENGTHS)`, built in a fresh process.
_BUILD = """
import json, sys, torch
from valley3.data.pack_index import pack_index
from valley3.data.packing import PackBudget
from valley3.data.processor import Example
data = [Example(torch.arange(n), torch.arange(n), f"s{i}", "memory") for i, n in enumerate(json.loads(sys.argv[3]))]
print(json.dumps(pack_index(data, PackBudget(512), int(sys.argv[2]), "k" * 64, sys.argv[1])[0]))
"""


def test_the_offline_index_is_identical_across_processes_with_the_same_seed(tmp_path):
    runs = [subprocess.Popen([sys.executable, "-c", _BUILD, str(tmp_path / name), "7", json.dumps(_LENGTHS)],
                             stdout=subprocess.PIPE, text=True) for name in ("a", "b")]
    a, b = (json.loads(run.communicate(timeout=120)[0]) for run in runs)
    assert a == b
    local, _, built = pack_index(_Counting(_LENGTHS), PackBudget(512), 7, "k" * 64, tmp_path / "c")
    other_seed, _, _ = pack_index(_Counting(_LENGTHS), PackBudget(512), 8, "j" * 64, tmp_path / "c")
    assert built and local == a and other_seed != a


def _records(media) -> list[dict]:
    return [
        {"id": "image", "messages": [{"role": "user", "content": "<image>Colour?"},
                                     {"role": "assistant", "content": "Red."}], "images": [media["red"]]},
        {"id": "audio", "messages": [{"role": "user", "content": "<audio>What is it?"},
                                     {"role": "assistant", "content": "A tone."}], "audios": [media["tone"]]},
        {"id": "text", "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]},
    ]


def test_a_datamodule_with_packing_trains_on_packed_batches(stage, media, tmp_path):
    import lightning as L

    from valley3.data.datamodules import OmniDataModule

    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({**r, "id": f"{r['id']}{i}"}) + "\n" for i in range(4) for r in _records(media)))
    packing = {"max_tokens": 256, "max_images": 2, "cache_dir": str(tmp_path / "packs")}
    dm = OmniDataModule(train=str(path), val=str(path), batch_size=4, packing=packing)
    trainer = L.Trainer(max_steps=2, limit_val_batches=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(stage, dm)
    assert trainer.global_step == 2 and len(list((tmp_path / "packs").glob("packs-*.json"))) == 1
    packs = list(dm.train_dataloader())
    assert all(b.cu_seqlens is not None and b.input_ids.shape[1] <= 256 for b in packs)
    assert len(packs) < 12 and max(len(b.sample_ids) for b in packs) >= 3  # several samples share a pack
    assert sorted(i for b in packs for i in b.sample_ids) == sorted(s.id for s in dm.read("train"))
    # one pack per batch: the image budget holds
    assert all(b.media.image_owner is None or len(b.media.image_owner) <= 2 for b in packs)
    assert next(iter(dm.val_dataloader())).cu_seqlens is None  # only training is packed
    online = OmniDataModule(train=str(path), packing={**packing, "mode": "online", "buffer_size": 5})
    online.connect(stage.processor)
    streamed = [i for b in online.train_dataloader() for i in b.sample_ids]
    assert sorted(streamed) == sorted(s.id for s in online.read("train"))
    with pytest.raises(ValueError, match="unknown packing setting.*'max_len'"):
        OmniDataModule(train=str(path), packing={"max_len": 10})

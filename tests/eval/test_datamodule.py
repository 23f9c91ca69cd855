"""BenchmarkDataModule: left-padded generation batches tagged with their items; skips counted, shards even."""

from __future__ import annotations

import warnings

import pytest

from valley3.eval import BenchmarkDataModule, EvenShardSampler
from valley3.eval.benchmarks import OmniEcom

from .benchmarks._util import write_jsonl


@pytest.fixture
def bench(tmp_path, media):
    rows = [
        {"id": "a", "task": "moderation", "question": "Allowed?", "images": [media["red"]], "answer": "yes"},
        {"id": "b", "task": "moderation", "question": "Allowed?", "images": [media["corrupt"]], "answer": "no"},
        {"id": "c", "task": "after_sales", "question": "A much longer question about a return?", "answer": "refund"},
    ]
    return OmniEcom(write_jsonl(tmp_path / "o.jsonl", rows))


def _first_batch(bench, stage, max_len=None):
    dm = BenchmarkDataModule([bench], batch_size=8)
    dm.setup("test")
    dm.connect(stage.processor, max_len)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return next(iter(dm.test_dataloader()[0]))


def test_batches_carry_item_indices_and_skipped_items_with_reasons(bench, stage):
    batch = _first_batch(bench, stage)
    assert batch.benchmark == "omni_ecom"
    assert batch.eval_index == [0, 2] and batch.eval_real == [True, True]
    assert [i for i, _ in batch.eval_skipped] == [1] and "corrupt" in batch.eval_skipped[0][1]
    assert batch.attention_mask[:, -1].all()  # left padded: every prompt ends where generation starts
    assert batch.sample_ids == ["a", "c"] and batch.references == ["yes", "refund"]


def test_a_prompt_over_max_len_is_skipped_not_truncated(bench, stage):
    lengths = _first_batch(bench, stage).attention_mask.sum(1).tolist()
    batch = _first_batch(bench, stage, max_len=min(lengths))
    shortest = [0, 2][lengths.index(min(lengths))]  # rows 0 and 1 held items 0 and 2
    assert batch.eval_index == [shortest]
    assert any("exceeds max_len" in reason for _, reason in batch.eval_skipped)


@pytest.mark.parametrize(("n", "world"), [(7, 3), (8, 2), (1, 2)])
def test_even_shards_hold_every_item_once_plus_marked_padding(n, world):
    shards = [list(EvenShardSampler(list(range(n)), world, rank)) for rank in range(world)]
    assert len({len(s) for s in shards}) == 1  # same number of batches on every rank
    keys = sorted(k for s in shards for k in s)
    assert [k for k in keys if k < n] == list(range(n))
    assert all(k % n < n for k in keys if k >= n) and len(keys) == -(-n // world) * world

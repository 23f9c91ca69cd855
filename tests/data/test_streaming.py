"""litdata shards: the demo data sharded, then read back as the JSONL loader reads it (same batches, same order)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tests.conftest import tool_summary
from valley3.data.datamodules import OmniDataModule, StreamingDataModule
from valley3.data.demo import make_demo
from valley3.data.schema import SchemaError
from valley3.data.streaming import ShardStore, _unpack

ROOT = Path(__file__).resolve().parents[2]


def _shard(data: list[Path], out: Path, *extra: str) -> dict:
    # A subprocess, as a user runs it: litdata's writer sets the process's multiprocessing start method. This
    # checkout's sources first, so the command tested is this one and not another installed copy of valley3.
    cmd = [sys.executable, "-m", "valley3.cli", "data", "shard", "--data", *map(str, data), "--out", str(out), *extra]
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
    subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT, env=env)
    return json.loads((out / "valley3_shards.json").read_text())


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("stream")
    make_demo(root / "demo", n_products=8, speech="synthetic")
    manifest = _shard([root / "demo/omni_train.jsonl"], root / "shards", "--chunk-bytes", "200KB", "--workers", "2")
    assert manifest["samples"] == len((root / "demo/omni_train.jsonl").read_text().splitlines())
    summary = tool_summary(root / "shards", "shard")  # the run's report beside the format's manifest
    assert summary["after"] == manifest["samples"] and summary["media_bytes"] == manifest["media_bytes"] > 0
    assert summary["chunks"]["media"] > 1  # 200 KB chunks
    return root


@pytest.fixture(scope="module")
def processor():
    from tests.conftest import tiny_omni
    from valley3.stages.base import build_processor

    return build_processor(tiny_omni())


def test_pack_round_trips_media_bytes():
    blobs = [b"", b"abc", bytes(range(256)) * 3]
    assert _unpack(_pack_bytes(blobs)) == blobs


def _pack_bytes(blobs):
    import struct

    return struct.pack(f"<I{len(blobs)}Q", len(blobs), *map(len, blobs)) + b"".join(blobs)


def test_shards_hold_every_sample_and_its_media_bytes(demo):
    jsonl = OmniDataModule(train=str(demo / "demo/omni_train.jsonl")).read("train")
    store = ShardStore(str(demo / "shards"))
    shards = store.samples()
    assert [s.id for s in shards] == [s.id for s in jsonl]
    assert [s.turns for s in shards] == [s.turns for s in jsonl] and [s.source for s in shards] == [s.source for s in jsonl]
    with_media = [i for i, s in enumerate(jsonl) if s.media]
    assert with_media
    for i in with_media[:10]:
        assert store.media(i) == [Path(m.path).read_bytes() for m in jsonl[i].media]


def _batches(dm, processor, rank=0, world=1, workers=0):
    dm.connect(processor, 256)
    dm.trainer = SimpleNamespace(global_rank=rank, world_size=world)
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert loader.num_workers == workers
    return list(loader)


def test_one_epoch_gives_the_same_batches_as_the_jsonl_loader(demo, processor):
    settings = {"batch_size": 3, "seed": 7, "num_workers": 0}
    plain = _batches(OmniDataModule(train=str(demo / "demo/omni_train.jsonl"), **settings), processor)
    shards = _batches(StreamingDataModule(train=str(demo / "shards"), **settings), processor)
    assert len(plain) == len(shards) > 3
    file_order = [s.id for s in OmniDataModule(train=str(demo / "demo/omni_train.jsonl")).read("train")]
    drawn = [i for b in plain for i in b.sample_ids]
    assert drawn != [i for i in file_order if i in set(drawn)]  # a seeded shuffle, not the file's order
    for a, b in zip(plain, shards):
        assert a.sample_ids == b.sample_ids
        theirs = {**vars(b), **vars(b.media)}
        for key, value in {**vars(a), **vars(a.media)}.items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, theirs[key]), key


def test_two_ranks_with_two_workers_read_disjoint_samples_covering_the_data(demo, processor):
    seen = []
    for rank in range(2):
        dm = StreamingDataModule(train=str(demo / "shards"), batch_size=2, num_workers=2, seed=1)
        seen.append([i for batch in _batches(dm, processor, rank, 2, workers=2) for i in batch.sample_ids])
    n = len(StreamingDataModule(train=str(demo / "shards")).read("train"))
    assert set(seen[0]).isdisjoint(seen[1])
    assert len(seen[0]) == len(seen[1]) == n // 2  # equal shards: the odd sample out is dropped, as for files
    assert len(set(seen[0]) | set(seen[1])) == 2 * (n // 2)


def test_a_folder_that_is_not_a_shard_folder_is_named(tmp_path):
    with pytest.raises(SchemaError, match="not a shard folder"):
        StreamingDataModule(train=str(tmp_path)).read("train")


def test_a_url_location_is_read_through_the_litdata_cache(demo, tmp_path):
    store = ShardStore(f"local:{demo / 'shards'}", cache_dir=str(tmp_path / "cache"))
    samples = store.samples()
    local = ShardStore(str(demo / "shards"))
    index = next(i for i, s in enumerate(samples) if s.media)
    assert store.media(index) == local.media(index)
    assert any((tmp_path / "cache").rglob("*.bin"))


def test_missing_media_stop_sharding_before_anything_is_written(tmp_path):
    record = {"id": "x", "messages": [{"role": "user", "content": "<image>hi"}, {"role": "assistant", "content": "a"}],
              "images": ["gone.png"]}
    (tmp_path / "d.jsonl").write_text(json.dumps(record) + "\n")
    from valley3.data.streaming import write_shards

    with pytest.raises(SchemaError, match=r"d.jsonl:1: .*gone.png"):
        write_shards([str(tmp_path / "d.jsonl")], str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()

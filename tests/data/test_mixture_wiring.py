"""Mixtures in the DataModules: the YAML form, rank shards Lightning leaves alone, packing in sampler order, resume."""

from __future__ import annotations

import json
import warnings
from types import SimpleNamespace

import lightning as L
import pytest
from jsonargparse import ArgumentParser
from lightning.pytorch.trainer.states import RunningStage

from valley3.data.datamodules import BaseDataModule, OmniDataModule
from valley3.data.datamodules.base import train_position
from valley3.data.mixture import Mixture, MixtureSampler


def _write(path, tag: str, n: int, words: int = 1) -> None:
    rows = [{"id": f"{tag}{i}", "quality": i / n, "messages": [
        {"role": "user", "content": f"{tag} question {i}"},
        {"role": "assistant", "content": " ".join([f"answer {tag} {i}"] * words)}]} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths resolve as `train:` files do: against the working folder
    (tmp_path / "d").mkdir()
    _write(tmp_path / "d/a.jsonl", "a", 30)
    _write(tmp_path / "d/b.jsonl", "b", 20, words=6)
    _write(tmp_path / "d/r.jsonl", "r", 10)
    return tmp_path


_YAML = """
data:
  class_path: valley3.data.datamodules.OmniDataModule
  init_args:
    sources:
      - {path: d/a.jsonl, weight: 2}
      - {path: d/b.jsonl, weight: 1, strategy: "first:50%"}
      - {path: d/r.jsonl, replay: 0.1}
    mixture: {by: samples, num_samples: 60, curriculum: null}
    batch_size: 4
"""


def _from_yaml(text: str) -> BaseDataModule:
    parser = ArgumentParser()
    parser.add_subclass_arguments(BaseDataModule, "data")
    return parser.instantiate_classes(parser.parse_string(text)).data


def _ids(loader) -> list[str]:
    return [i for batch in loader for i in batch.sample_ids]


def _trainer(rank: int = 0, world: int = 1, epoch: int = 0, batches: int = 0, per_epoch: int = 10):
    """The fields `train_position` and `train_dataloader` read from a Lightning Trainer."""
    epochs = SimpleNamespace(ready=epoch + 1, started=epoch + 1)
    loop = SimpleNamespace(epoch_progress=SimpleNamespace(current=epochs),
                           epoch_loop=SimpleNamespace(batch_progress=SimpleNamespace(current=SimpleNamespace(
                               processed=batches))))
    return SimpleNamespace(global_rank=rank, world_size=world, fit_loop=loop, num_training_batches=per_epoch)


def test_the_yaml_form_builds_the_mixture(files, stage):
    dm = _from_yaml(_YAML)
    assert isinstance(dm, OmniDataModule)
    dm.setup("fit")
    mix = dm.train_mixture()
    assert [s.name for s in mix.sources] == ["a.jsonl", "b.jsonl", "r.jsonl"]
    assert mix.sizes == [30, 10, 10] and mix.counts == [36, 18, 6]  # 0.9 * 2/3, 0.9 * 1/3, 0.1 of 60
    assert [s.id for s in mix.pool(1)] == [f"b{i}" for i in range(10)]  # first:50%
    dm.connect(stage.processor)
    ids = _ids(dm.train_dataloader())
    assert len(ids) == 60 and sum(i.startswith("r") for i in ids) == 6
    with pytest.raises(ValueError, match="source 'x.jsonl'.*unknown key.*'weigth'"):
        OmniDataModule(sources=[{"path": "x.jsonl", "weigth": 2}]).train_mixture()
    with pytest.raises(ValueError, match="`mixture` settings need `sources`"):
        OmniDataModule(train="d/a.jsonl", mixture={"num_samples": 5})


def test_two_ranks_get_disjoint_equal_shards_that_lightning_leaves_alone(files, stage):
    shards = []
    for rank in range(2):
        dm = OmniDataModule(sources=[{"path": "d/a.jsonl", "weight": 2}, {"path": "d/r.jsonl"}],
                            mixture={"num_samples": 21}, batch_size=4)
        dm.connect(stage.processor)
        dm.trainer = _trainer(rank, 2)
        loader = dm.train_dataloader()
        assert len(loader.sampler) == 10 and len(loader) == 3  # 21 draws: one dropped so shards are equal
        shards.append(_ids(loader))
    assert len(shards[0]) == len(shards[1]) == 10 and not set(shards[0]) & set(shards[1])
    # A real DDP trainer (use_distributed_sampler left at its default, True) keeps the loader as it is.
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False)
    assert trainer._accelerator_connector.use_distributed_sampler and trainer._accelerator_connector.is_distributed
    assert trainer._data_connector._prepare_dataloader(loader, shuffle=True, mode=RunningStage.TRAINING) is loader
    plain = OmniDataModule(train="d/a.jsonl", batch_size=4)
    plain.connect(stage.processor)
    plain.trainer = _trainer(1, 2)
    plain_loader = plain.train_dataloader()
    assert isinstance(plain_loader.sampler, MixtureSampler)  # plain files: a one-source mixture, sharded the same way
    assert trainer._data_connector._prepare_dataloader(plain_loader, True, RunningStage.TRAINING) is plain_loader


def test_packed_mixture_keeps_the_sampler_order(files, stage):
    sources = [{"path": "d/a.jsonl"}, {"path": "d/b.jsonl"}]
    window = 6
    packing = {"max_tokens": 160, "window": window, "cache_dir": str(files / "packs")}
    dm = OmniDataModule(sources=sources, mixture={"num_samples": 48, "curriculum": "quality"}, packing=packing)
    dm.connect(stage.processor)
    loader = dm.train_dataloader()
    order = loader.sampler.epoch_order(0)
    flat = [i for pack in order for i in pack]
    draws = Mixture(dm.train_mixture().sources, num_samples=48, curriculum="quality").epoch_indices(0, 0).tolist()
    assert sorted(flat) == sorted(draws)  # every draw packed once (repeats included)
    done = 0
    for start in range(0, 48, window):  # window by window, the packs hold exactly that window's draws
        size = len(draws[start : start + window])
        chunk = []
        while len(chunk) < size:
            chunk += order[done]
            done += 1
        assert sorted(chunk) == sorted(draws[start : start + window])
    quality = [dm.train_mixture().samples[i].meta["quality"] for i in draws]
    assert quality == sorted(quality)  # the curriculum: highest last
    assert max(len(p) for p in order) > 1 and len(list((files / "packs").glob("costs-*.json"))) == 1
    counts = []
    for rank in range(2):
        ranked = OmniDataModule(sources=sources, mixture={"num_samples": 48, "curriculum": "quality"},
                                packing=packing)
        ranked.connect(stage.processor)
        ranked.trainer = _trainer(rank, 2)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loader = ranked.train_dataloader()
        said = [str(w.message) for w in caught if "left out" in str(w.message)]
        assert said == [(f"packing: 1 pack(s) of each epoch's {len(order)} left out so that 2 ranks take the same "
                        "number of steps")] * (len(order) % 2)
        assert loader.sampler.indices() == order[: len(order) // 2 * 2][rank::2]
        counts.append(len(list(loader)))
    assert counts[0] == counts[1] == len(order) // 2
    online = OmniDataModule(sources=sources, packing={**packing, "mode": "online"})
    online.connect(stage.processor)
    online.trainer = _trainer(0, 2)
    with pytest.raises(ValueError, match="online packing .* cannot run on 2 ranks; use packing mode: offline"):
        online.train_dataloader()


@pytest.mark.parametrize("kind", ["plain", "mixture", "packed", "online"])
def test_state_dict_round_trip_resumes_at_the_next_unseen_batch(kind, files, stage):
    packing = {"max_tokens": 96, "window": 8, "cache_dir": str(files / "packs")}
    args = {
        "plain": {"train": "d/a.jsonl"},
        "mixture": {"sources": [{"path": "d/a.jsonl", "weight": 2}, {"path": "d/b.jsonl"}], "mixture": {"num_samples": 40}},
        "packed": {"sources": [{"path": "d/a.jsonl"}, {"path": "d/b.jsonl"}], "packing": packing},
        "online": {"train": ["d/a.jsonl", "d/b.jsonl"], "packing": {**packing, "mode": "online", "buffer_size": 8}},
    }[kind]

    def fresh() -> OmniDataModule:
        dm = OmniDataModule(batch_size=3, seed=4, **args)
        dm.connect(stage.processor)
        return dm

    dm = fresh()
    dm.trainer = _trainer(epoch=1, batches=4, per_epoch=10**6)
    full = [b.sample_ids for b in dm.train_dataloader()]  # epoch 0's order
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(1) if kind != "online" else loader.dataset.resume(1, 0)
    epoch1 = [b.sample_ids for b in loader]
    assert epoch1 != full and len(epoch1) > 5
    # Workers would have prefetched beyond batch 4: the state counts what the training loop consumed.
    state = dm.state_dict()
    per_batch = 3 if kind in ("plain", "mixture") else 1  # samples, or packs
    assert state == {"train": {"epoch": 1, "batches": 4, "position": 4 * per_batch, "seed": 4, "world_size": 1}}
    resumed = fresh()
    resumed.load_state_dict(state)
    assert [b.sample_ids for b in resumed.train_dataloader()] == epoch1[4:]
    assert [b.sample_ids for b in resumed.train_dataloader()] == full  # the position is used once
    other = OmniDataModule(batch_size=3, seed=5, **args)
    other.connect(stage.processor)
    other.load_state_dict(state)
    with pytest.raises(ValueError, match="seed 4 on 1 rank.*this run has seed 5"):
        other.train_dataloader()


def test_an_epoch_end_checkpoint_resumes_at_the_next_epoch():
    assert train_position(_trainer(epoch=2, batches=10, per_epoch=10)) == (3, 0)
    assert train_position(_trainer(epoch=2, batches=7, per_epoch=10)) == (2, 7)
    start = _trainer(epoch=3, batches=10, per_epoch=10)
    start.fit_loop.epoch_progress.current.started = 3  # inside on_train_epoch_start of epoch 3
    assert train_position(start) == (3, 0)

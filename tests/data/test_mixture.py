"""Tests of data/mixture.py: ratios, sampling strategies, replay, curriculum, sharding and resume."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from valley3.data.mixture import Mixture, MixtureSampler, Source, build_mixture, parse_strategy, select
from valley3.data.schema import Sample, Turn


def _samples(tag: str, n: int, **meta) -> list[Sample]:
    turns = [Turn("user", "q"), Turn("assistant", "a")]
    return [Sample(id=f"{tag}{i}", turns=turns, source=f"{tag}:{i}", meta={"i": i, **meta}) for i in range(n)]


def _tags(mix: Mixture, indices) -> Counter:
    return Counter(mix.samples[int(i)].id.rstrip("0123456789") for i in indices)


def test_two_to_one_mix_over_10000_draws():
    mix = Mixture(
        [Source(samples=_samples("a", 300), weight=2), Source(samples=_samples("b", 700), weight=1)], num_samples=10_000
    )
    counts = _tags(mix, MixtureSampler(mix, seed=3))
    assert sum(counts.values()) == 10_000
    assert counts["a"] / counts["b"] == pytest.approx(2.0, rel=0.02)
    # And on a prefix of a bigger epoch, where the ratio is only statistical.
    big = Mixture(mix.sources, num_samples=30_000)
    counts = _tags(big, big.epoch_indices(seed=0, epoch=0)[:10_000])
    assert counts["a"] / counts["b"] == pytest.approx(2.0, rel=0.02 * 2.5)  # ~2.5 sigma of binomial noise


def test_first_end_random_strategies_exact_and_seeded():
    assert select(1000, "first:10%") == list(range(100))
    assert select(1000, "end:10%") == list(range(900, 1000))
    assert select(1000, "first:7") == list(range(7))
    assert select(15, "first:10%") == [0, 1]  # 1.5 rounds up, as LLaVA-OneVision does
    r1, r2 = select(1000, "random:50", seed=1, source="x"), select(1000, "random:50", seed=1, source="x")
    assert r1 == r2 and len(set(r1)) == 50
    assert select(1000, "random:50", seed=2, source="x") != r1
    assert len(select(1000, "random:25%", seed=1)) == 250
    assert select(5, "all") == [0, 1, 2, 3, 4]


def test_first_percent_from_a_yaml_style_file(tmp_path):
    path = tmp_path / "a.jsonl"
    rows = [
        {"id": f"r{i}", "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
        for i in range(50)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    mix = build_mixture([{"path": str(path), "weight": 2, "strategy": "first:10%"}])
    assert [s.id for s in mix.samples] == ["r0", "r1", "r2", "r3", "r4"]


def test_token_ratio():
    long = _samples("a", 400, n_tokens=300)
    short = [
        Sample(id=f"b{i}", turns=s.turns, meta={"n_tokens": 50 + i % 100}) for i, s in enumerate(_samples("b", 400))
    ]
    mix = Mixture(
        [Source(samples=long, weight=1), Source(samples=short, weight=1)],
        by="tokens",
        token_length="n_tokens",
        num_samples=4000,
    )
    tokens = Counter()
    for i in mix.epoch_indices(seed=0, epoch=0):
        s = mix.samples[int(i)]
        tokens[s.id[0]] += s.meta["n_tokens"]
    assert tokens["a"] / tokens["b"] == pytest.approx(1.0, rel=0.03)
    with pytest.raises(ValueError, match="token_length"):
        Mixture([Source(samples=long)], by="tokens")


def test_replay_share():
    mix = Mixture(
        [
            Source(samples=_samples("a", 100), weight=2),
            Source(samples=_samples("b", 100), weight=1),
            Source(samples=_samples("r", 100), replay=0.1, name="s1"),
        ],
        num_samples=1000,
    )
    assert mix.counts == [600, 300, 100]


def test_two_ranks_disjoint_equal_shards():
    mix = Mixture(
        [Source(samples=_samples("a", 200), weight=2), Source(samples=_samples("b", 100), weight=1)], num_samples=300
    )
    shards = [MixtureSampler(mix, seed=5, rank=r, world_size=2).indices() for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 150
    odd = Mixture(mix.sources, num_samples=301)  # the one draw that does not divide is dropped
    assert [len(MixtureSampler(odd, rank=r, world_size=2)) for r in range(2)] == [150, 150]
    epoch = mix.epoch_indices(seed=5, epoch=0)[:300].tolist()
    # Disjoint as positions in the epoch's draw order, and together they are exactly that order's first 300.
    assert sorted(shards[0] + shards[1]) == sorted(epoch)
    assert set(shards[0]).isdisjoint(shards[1])  # no source is repeated here (300 draws <= 300 samples)
    counts = _tags(mix, shards[0] + shards[1])
    assert counts == {"a": 200, "b": 100}


def test_resume_mid_epoch_continues_with_same_indices():
    mix = Mixture([Source(samples=_samples("a", 50), weight=3), Source(samples=_samples("b", 50))], num_samples=200)
    full = MixtureSampler(mix, seed=7, rank=1, world_size=2)
    full.set_epoch(2)
    expected = list(full)
    run = MixtureSampler(mix, seed=7, rank=1, world_size=2)
    run.set_epoch(2)
    it = iter(run)
    seen = [next(it) for _ in range(37)]
    state = run.state_dict()
    assert state["position"] == 37 and state["epoch"] == 2
    resumed = MixtureSampler(mix, seed=7, rank=1, world_size=2)
    resumed.load_state_dict(state)
    resumed.set_epoch(2)  # what Lightning does at the start of the resumed epoch
    assert seen + list(resumed) == expected
    assert list(resumed) == expected  # the epoch after completion starts over
    with pytest.raises(ValueError, match="world size"):
        MixtureSampler(mix, seed=7, world_size=1).load_state_dict(state)


def test_same_seed_same_order_other_epoch_other_order():
    mix = Mixture([Source(samples=_samples("a", 100)), Source(samples=_samples("b", 100))])
    a, b = MixtureSampler(mix, seed=1), MixtureSampler(mix, seed=1)
    assert list(a) == list(b)
    b.set_epoch(1)
    assert list(a) != list(b)
    assert list(MixtureSampler(mix, seed=2)) != list(a)


def test_curriculum_puts_high_quality_last():
    low = _samples("lo", 60, q=0.1)
    high = _samples("hi", 40, q=0.9)
    mix = Mixture([Source(samples=low, weight=3), Source(samples=high, weight=2)], curriculum="q")
    order = [mix.samples[i].id[:2] for i in MixtureSampler(mix, seed=0)]
    assert order == ["lo"] * 60 + ["hi"] * 40
    rank1 = [mix.samples[i].meta["q"] for i in MixtureSampler(mix, seed=0, rank=1, world_size=2)]
    assert rank1 == sorted(rank1)
    with pytest.raises(KeyError, match="no meta field 'quality'"):
        Mixture([Source(samples=low)], curriculum="quality")


@pytest.mark.parametrize(
    "bad, says",
    [
        ("first", "accepted forms: all, first:N"),
        ("first:", "accepted forms"),
        ("first:10%%", "accepted forms"),
        ("top:5", "accepted forms"),
        ("random:-3", "accepted forms"),
        ("", "accepted forms"),
        ("first:150%", "percentage in"),
        ("random:2.5", "whole count"),
    ],
)
def test_bad_strategy_names_source(bad, says):
    with pytest.raises(ValueError, match=r"source 'coco\.jsonl'") as err:
        Source(samples=_samples("a", 3), strategy=bad, name="coco.jsonl")
    assert says in str(err.value)


def test_bad_source_specs():
    with pytest.raises(ValueError, match="unknown key"):
        build_mixture([{"path": "a.jsonl", "weigth": 2}])
    with pytest.raises(ValueError, match="exactly one"):
        Source()
    with pytest.raises(ValueError, match="source 'tiny'.*asks for 10 samples but the source has 3"):
        Mixture([Source(samples=_samples("a", 3), strategy="random:10", name="tiny")])
    with pytest.raises(ValueError, match="replay"):
        Mixture([Source(samples=_samples("r", 5), replay=0.5)])
    assert parse_strategy("all") == ("all", None, False)

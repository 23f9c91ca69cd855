"""`valley3 data reject-sample`: k sampled answers per prompt from a tiny checkpoint, scored, filtered by band."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import lightning
import pytest
import torch

from tests.conftest import tiny_omni
from valley3.cli import main
from valley3.data.batch import Batch
from valley3.data.formats import read_samples
from valley3.stages import OmniStage
from valley3.stages.reject_sample import load_stage, reject_sample

ROOT = Path(__file__).resolve().parents[2]


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _qa(i: int, answer: str, image: str | None = None) -> dict:
    prompt = ("<image>" if image else "") + f"Question {i}: what colour is it?"
    record = {"id": f"s{i}", "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]}
    return record | ({"images": [image]} if image else {})


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    """A tiny omni checkpoint trained for 3 steps by `valley3 fit` (so its hyperparameters hold the model config)."""
    from valley3.data.demo import make_demo

    root = tmp_path_factory.mktemp("rs_run")
    make_demo(root / "demo_data", n_products=4, speech="synthetic")
    main(["fit", "--config", str(ROOT / "experiments/demo/quickstart.yaml"), "--trainer.max_steps=3",
          "--trainer.enable_progress_bar=false", "--trainer.logger=false", f"--trainer.default_root_dir={root}",
          f"--data.train={root}/demo_data/omni_train.jsonl", "--data.val=null", "--data.predict=null",
          "--data.batch_size=2", "--trainer.enable_model_summary=false"])
    path = root / "checkpoints/last.ckpt"
    assert path.is_file()
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory, media) -> Path:
    """Four scorable prompts (two with an image), one with a corrupt image, one whose last turn is a question."""
    root = tmp_path_factory.mktemp("rs_data")
    records = [_qa(0, "Red."), _qa(1, "A.", media["red"]), _qa(2, "Blue"), _qa(3, '{"colour": "red"}', media["blue"]),
               _qa(4, "Red.", media["corrupt"]),
               {"id": "open", "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                                           {"role": "user", "content": "Colour?"}]}]
    return _write(root / "in.jsonl", records)


def _answers(out: Path) -> dict[str, list[str]]:
    lines = (out / "samples.jsonl").read_text(encoding="utf-8").splitlines()
    return {r["id"]: r["answers"] for r in map(json.loads, lines) if "answers" in r}


def test_cli_end_to_end_on_a_tiny_checkpoint(ckpt, data, tmp_path, capsys):
    out = tmp_path / "rs"
    main(["data", "reject-sample", "--ckpt", str(ckpt), "--data", str(data), "--out", str(out), "--k", "3",
          "--max-new-tokens", "6", "--batch-size", "3", "--band", "0", "1"])
    stats = json.loads((out / "stats.json").read_text())
    assert stats["samples"] == 6 and stats["scored"] == 4
    assert stats["skipped"] == {"media": 1, "no_reference": 1}
    assert stats["scorer_kinds"] == {"exact": 2, "choice": 1, "json": 1}
    assert sum(stats["pass_histogram"].values()) == 4 and len(stats["pass_histogram"]) == 4
    assert stats["kept"] + sum(stats["dropped"].values()) == 4
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == ["s0", "s1", "s2", "s3", "s4", "open"]
    assert records[4]["skipped"] == "media" and "corrupt" in records[4]["error"]
    assert all(len(r["answers"]) == 3 and len(r["scores"]) == 3 for r in records[:4])
    assert len((out / "kept.jsonl").read_text().splitlines()) == stats["kept"]
    assert "skipped: 1 media, 1 no_reference" in capsys.readouterr().out


def test_seeded_sampling_is_repeatable_and_tries_differ(ckpt, data, tmp_path):
    stage = load_stage(ckpt)
    state = torch.random.get_rng_state()
    kwargs = {"k": 3, "max_new_tokens": 6, "batch_size": 2}
    reject_sample(stage, data, tmp_path / "a", seed=7, **kwargs)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's random stream is left alone
    reject_sample(stage, data, tmp_path / "b", seed=7, **kwargs)
    reject_sample(stage, data, tmp_path / "c", seed=8, **kwargs)
    a, b, c = (_answers(tmp_path / name) for name in "abc")
    assert a == b and a != c and set(a) == {"s0", "s1", "s2", "s3"}
    assert all(len(set(tries)) > 1 for tries in a.values())  # k tries really sample different answers
    reject_sample(stage, data, tmp_path / "g1", k=1, temperature=0, seed=1, max_new_tokens=6)
    reject_sample(stage, data, tmp_path / "g2", k=1, temperature=0, seed=2, max_new_tokens=6, batch_size=1)
    greedy = _answers(tmp_path / "g1")
    assert greedy == _answers(tmp_path / "g2")
    prompt = stage.processor(read_samples(data)[0], generation=True)
    alone = Batch(torch.tensor(0), input_ids=prompt.input_ids[None],
                  attention_mask=torch.ones(1, len(prompt), dtype=torch.long))
    assert greedy["s0"] == stage.generate_text(alone, max_new_tokens=6)  # batched left-padded == alone


# Right answers per sample out of k=4 tries, and the ids each band keeps.
PASSES = {"s0": 0, "s1": 1, "s2": 2, "s3": 3, "s4": 4, "s5": 2}
KEPT = {(0.0, 1.0): ["s1", "s2", "s3", "s5"], (0.5, 1.0): ["s2", "s3", "s5"], (0.25, 0.5): ["s1", "s2", "s5"],
        (0.75, 0.75): ["s3"]}


class FakeGenerate:
    """Answers each sample right on its first PASSES[id] tries (JSON for s5), recording the calls."""

    def __init__(self):
        self.tries: dict[str, int] = defaultdict(int)
        self.calls: list[tuple[list[str], dict]] = []

    def __call__(self, batch, **kwargs):
        self.calls.append((list(batch.sample_ids), kwargs))
        answers = []
        for sid in batch.sample_ids:
            right = self.tries[sid] < PASSES[sid]
            self.tries[sid] += 1
            if sid == "s5":
                answers.append('{"colour": "red", "size": "M"}' if right else '{"colour": "red"}')
            else:
                answers.append("red" if right else "blue")
        return answers


@pytest.fixture(scope="module")
def stage():
    return OmniStage(tiny_omni())


@pytest.mark.parametrize("band", list(KEPT))
def test_band_keeps_exactly_the_expected_ids(stage, tmp_path, band):
    records = [_qa(i, "Red.") for i in range(5)] + [_qa(5, '{"colour": "red", "size": "M"}')]
    data = _write(tmp_path / "in.jsonl", records)
    fake = FakeGenerate()
    stats = reject_sample(stage, data, tmp_path / "out", k=4, band=band, batch_size=4, temperature=0.7, top_p=0.9,
                          max_new_tokens=5, generate=fake)
    assert [ids for ids, _ in fake.calls] == [["s0", "s1", "s2", "s3"]] * 4 + [["s4", "s5"]] * 4
    assert fake.calls[0][1] == {"max_new_tokens": 5, "do_sample": True, "temperature": 0.7, "top_p": 0.9, "top_k": 0}
    kept = [json.loads(line) for line in (tmp_path / "out/kept.jsonl").read_text().splitlines()]
    assert [r["id"] for r in kept] == KEPT[band]
    assert [r["meta"]["pass_rate"] for r in kept] == [PASSES[i] / 4 for i in KEPT[band]]
    lines = (tmp_path / "in.jsonl").read_text().splitlines()
    for line, out in zip([lines[int(i[1])] for i in KEPT[band]], (tmp_path / "out/kept.jsonl").read_text().splitlines()):
        assert out.startswith(line[:-1])
    assert stats["kept"] == len(KEPT[band]) and stats["pass_histogram"] == {"0/4": 1, "1/4": 1, "2/4": 2, "3/4": 1,
                                                                            "4/4": 1}
    assert stats["scorer_kinds"] == {"exact": 5, "json": 1} and stats["ckpt_path"] is None


def test_bad_input_stops_before_generating(stage, tmp_path):
    def never(batch, **kwargs):
        raise AssertionError("generated")

    data = _write(tmp_path / "in.jsonl", [_qa(0, "A."), _qa(1, "Red.")])
    with pytest.raises(ValueError, match=r"in.jsonl:2 \(sample 's1'\): choice scorer: the reference 'Red.'"):
        reject_sample(stage, data, tmp_path / "out", scorer="choice", generate=never)
    with pytest.raises(ValueError, match="greedy decoding"):
        reject_sample(stage, data, tmp_path / "out", k=4, temperature=0, generate=never)
    with pytest.raises(ValueError, match="0 <= low <= high <= 1"):
        reject_sample(stage, data, tmp_path / "out", band=(0.5, 0.2), generate=never)


def test_checkpoint_without_a_model_config(stage, tmp_path):
    path = tmp_path / "python_built.ckpt"
    torch.save({"state_dict": stage.state_dict(), "hyper_parameters": dict(stage.hparams),
                "pytorch-lightning_version": lightning.__version__}, path)
    with pytest.raises(ValueError, match="hyperparameters hold no model config"):
        load_stage(path)


def test_policy_loads_the_same_checkpoint_without_the_stage_class(ckpt):
    from valley3.policy import Policy

    policy, stage = Policy.from_checkpoint(ckpt), load_stage(ckpt)
    theirs = stage.model.state_dict()
    assert all(torch.equal(v, theirs[k]) for k, v in policy.model.state_dict().items())
    assert policy.processor.max_len == stage.max_len

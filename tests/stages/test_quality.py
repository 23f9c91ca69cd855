"""IFD quality scores: the ratio of answer perplexities with and without the prompt, written as a meta field."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import tiny_omni, tool_summary
from valley3.cli import main
from valley3.data.formats import read_samples
from valley3.data.mixture import Mixture, Source
from valley3.stages import OmniStage
from valley3.stages.quality import answer_losses, ifd_scores, without_prompt


def _qa(i, question, answer, image=None):
    record = {"id": f"s{i}", "messages": [{"role": "user", "content": ("<image>" if image else "") + question},
                                           {"role": "assistant", "content": answer}]}
    return record | ({"images": [image]} if image else {})


@pytest.fixture(scope="module")
def stage():
    return OmniStage(tiny_omni(seed=3))


@pytest.fixture
def data(tmp_path, media):
    rows = [_qa(0, "Colour of the mug?", "Red."), _qa(1, "What is this?", "A mug.", media["red"]),
            _qa(2, "Price?", "12 dollars."), _qa(3, "Broken", "x", media["corrupt"])]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_answer_loss_equals_a_hand_computed_cross_entropy(stage, data):
    sample = read_samples(data)[0]
    loss = answer_losses(stage, [sample])[0]
    example = stage.processor(sample)
    logits = stage.model(example.input_ids[None], attention_mask=torch.ones_like(example.input_ids[None]))
    labels = example.labels[1:]
    keep = labels != -100
    expected = F.cross_entropy(logits[0, :-1][keep], labels[keep]).item()
    assert loss == pytest.approx(expected, rel=1e-5)


def test_ifd_is_the_ratio_of_perplexities_and_unscorable_samples_are_none(stage, data):
    samples = read_samples(data)
    with pytest.warns(UserWarning, match="corrupt"):
        scores = ifd_scores(stage, samples)
    assert scores[3] is None and all(s is not None and s > 0 for s in scores[:3])
    with_prompt = answer_losses(stage, samples[:3])
    alone = answer_losses(stage, [without_prompt(s) for s in samples[:3]])
    for score, a, b in zip(scores, with_prompt, alone):
        assert score == pytest.approx(math.exp(a) / math.exp(b), rel=1e-6)
    assert without_prompt(samples[1]).media == [] and "<image>" not in without_prompt(samples[1]).turns[1].content


def test_quality_command_writes_meta_usable_as_a_curriculum(tmp_path, data, stage, monkeypatch):
    import valley3.stages.quality as quality

    monkeypatch.setattr(quality, "load_stage", lambda path, device: stage)
    with pytest.warns(UserWarning):
        main(["data", "quality", "--ckpt", "unused.ckpt", "--data", str(data), "--out", str(tmp_path / "q")])
    summary = tool_summary(tmp_path / "q", "quality")
    assert (summary["before"], summary["after"], summary["skipped"]["unscorable"]) == (4, 3, 1)
    scored = read_samples(tmp_path / "q/scored.jsonl")
    assert [s.id for s in scored] == ["s0", "s1", "s2"] and all("ifd" in s.meta for s in scored)
    mixture = Mixture([Source(samples=scored, name="q")], seed=0, curriculum="ifd")
    order = [mixture[i].meta["ifd"] for i in mixture.epoch_indices(seed=0, epoch=0)]
    assert order == sorted(order) and len(order) == 3

"""LossSummary: a batch whose samples were all skipped is counted, and the run goes on."""

from __future__ import annotations

import json

import lightning as L
import pytest

from valley3.callbacks import LossSummary
from valley3.data.datamodules import TextDataModule


def _record(i: int, answer: str) -> dict:
    turns = [{"role": "user", "content": "Name it."}, {"role": "assistant", "content": answer}]
    return {"id": f"s{i}", "messages": turns}


def test_a_batch_of_only_skipped_samples_is_counted_and_training_goes_on(stage, tmp_path):
    # batch_size 1: the over-long sample (its prompt alone exceeds max_len, so truncation would leave nothing to
    # learn) is a batch of its own with no example left; before the fix LossSummary raised KeyError 'loss'.
    long_prompt = {"id": "long", "messages": [{"role": "user", "content": "word " * 400},
                                              {"role": "assistant", "content": "Red."}]}
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [_record(0, "Red."), long_prompt, _record(2, "Blue.")]))
    stage.max_len = 64
    summary = LossSummary()
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu", callbacks=[summary])
    with pytest.warns(UserWarning, match="skipping sample 'long'"):
        trainer.fit(stage, TextDataModule(train=str(path), batch_size=1))
    assert trainer.state.finished
    assert summary.skipped == 1 and summary.skipped_batches == 1
    assert len(summary.losses) == 2  # the two good batches trained; the epoch ran to its end

"""PromptDataModule: batches of prompt records for RL; an unusable prompt is a counted skip, not a crash."""

from __future__ import annotations

import json

import pytest

from tests.conftest import tiny_omni
from valley3.data.datamodules import PromptDataModule
from valley3.data.schema import Sample
from valley3.policy import build_processor


def test_prompt_batches_keep_records_and_count_unusable_ones(tmp_path, media):
    records = [
        {"id": "a", "messages": [{"role": "user", "content": "<image>Colour?"}, {"role": "assistant", "content": "Red"}],
         "images": [media["red"]]},
        {"id": "bad", "messages": [{"role": "user", "content": "<image>Colour?"}, {"role": "assistant", "content": "?"}],
         "images": [media["corrupt"]]},
        {"id": "c", "messages": [{"role": "user", "content": "Name one."}, {"role": "assistant", "content": "Blue"}]},
    ]
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    data = PromptDataModule(train=str(path), batch_size=3, seed=0)
    data.connect(build_processor(tiny_omni()), max_len=256)
    data.setup("fit")
    with pytest.warns(UserWarning, match="skipping sample 'bad'"):
        (batch,) = list(data.train_dataloader())
    assert sorted(s.id for s in batch.prompts) == ["a", "c"] and int(batch.skipped) == 1
    assert all(isinstance(s, Sample) and s.turns[-1].role == "assistant" for s in batch.prompts)  # reference kept
    data.packing = object()
    with pytest.raises(ValueError, match="packing does not apply"):
        data.train_dataloader()

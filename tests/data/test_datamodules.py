"""DataModules: late binding, modality checks, and unreadable media skipped-and-counted (or strict errors)."""

from __future__ import annotations

import json

import lightning as L
import pytest

from valley3.data.datamodules import ImageDataModule, OmniDataModule, TextDataModule
from valley3.data.media import MediaError
from valley3.data.schema import SchemaError


def _write(path, records) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def _records(media) -> list[dict]:
    good = {"messages": [{"role": "user", "content": "<image>Colour?"}, {"role": "assistant", "content": "Red."}],
            "images": [media["red"]]}
    broken = {"id": "broken", "messages": [{"role": "user", "content": "<image>Colour?"},
                                           {"role": "assistant", "content": "Red."}], "images": [media["corrupt"]]}
    silent = {"id": "silent", "messages": [{"role": "user", "content": "<audio>Say?"},
                                           {"role": "assistant", "content": "Hi."}], "audios": [media["empty"]]}
    return [good, broken, good, silent]


def test_unreadable_media_is_skipped_with_a_warning_and_counted(stage, media, tmp_path):
    dm = OmniDataModule(train=_write(tmp_path / "d.jsonl", _records(media)), batch_size=4)
    dm.connect(stage.processor)
    with pytest.warns(UserWarning, match="skipping sample 'broken'.*d.jsonl:2.*corrupt.png"):
        batch = next(iter(dm.train_dataloader()))
    assert int(batch.skipped) == 2
    assert batch.input_ids.shape[0] == 2


def test_strict_turns_a_bad_file_into_an_error_naming_it(stage, media, tmp_path):
    dm = OmniDataModule(train=_write(tmp_path / "d.jsonl", _records(media)), batch_size=4, strict=True)
    dm.connect(stage.processor)
    with pytest.raises(MediaError, match="corrupt.png|empty.wav"):  # whichever the shuffle meets first
        next(iter(dm.train_dataloader()))


def test_training_goes_on_past_bad_files_and_logs_the_count(stage, media, tmp_path):
    dm = OmniDataModule(train=_write(tmp_path / "d.jsonl", _records(media) * 2), batch_size=4)
    trainer = L.Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu")
    with pytest.warns(UserWarning, match="skipping sample"):
        trainer.fit(stage, dm)
    assert trainer.global_step == 2
    assert float(trainer.callback_metrics["train/skipped"]) == 4


def test_a_datamodule_rejects_modalities_it_does_not_take(media, tmp_path):
    path = _write(tmp_path / "t.jsonl", [
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]},
        _records(media)[0],
    ])
    with pytest.raises(SchemaError, match="t.jsonl:2.*TextDataModule takes no \\['image'\\]"):
        TextDataModule(train=path).setup("fit")
    assert len(ImageDataModule(train=path).read("train")) == 2


def test_loading_before_connect_is_a_clear_error(media, tmp_path):
    dm = OmniDataModule(train=_write(tmp_path / "d.jsonl", _records(media)))
    with pytest.raises(RuntimeError, match="connect"):
        dm.train_dataloader()

"""`on_bad_record: skip`: records that fail schema validation are counted and skipped; the default stops the run."""

from __future__ import annotations

import json
import logging

import lightning as L
import pytest

from valley3.callbacks import LossSummary
from valley3.data.datamodules import TextDataModule
from valley3.data.schema import SchemaError


def _qa(i: int) -> str:
    return json.dumps({"id": f"ok{i}", "messages": [{"role": "user", "content": "Colour?"},
                                                    {"role": "assistant", "content": "Red."}]})


BAD = [
    '{"id": "broken", "messages": [',  # not JSON
    json.dumps({"id": "no_answer", "messages": [{"role": "user", "content": "Colour?"}]}),
    json.dumps({"id": "bot", "messages": [{"role": "bot", "content": "x"}, {"role": "assistant", "content": "y"}]}),
    json.dumps({"id": "image", "messages": [{"role": "user", "content": "<image>?"},
                                            {"role": "assistant", "content": "Red."}], "images": ["a.png"]}),
]


@pytest.fixture
def data(tmp_path) -> str:
    path = tmp_path / "d.jsonl"
    lines = [_qa(0), BAD[0], _qa(1), BAD[1], BAD[2], _qa(2), BAD[3], _qa(3)]
    path.write_bytes(("\n".join(lines) + "\n").encode() + b'{"id": "\xff"}\n')  # and a line that is not UTF-8
    return str(path)


def test_the_default_stops_at_the_first_bad_record_naming_its_line(data):
    with pytest.raises(SchemaError, match=r"d\.jsonl:2: invalid JSON"):
        TextDataModule(train=data).setup("fit")


def test_skip_counts_and_drops_bad_records(data):
    dm = TextDataModule(train=data, on_bad_record="skip")
    with pytest.warns(UserWarning, match=r"d\.jsonl: skipped 5 bad record\(s\) of 9 \(on_bad_record: skip\):\n"
                                         r"  .*d\.jsonl:2: invalid JSON"):
        dm.setup("fit")
    assert [s.id for s in dm.read("train")] == ["ok0", "ok1", "ok2", "ok3"]
    assert dm.bad_records == {data: 5}


def test_a_run_with_bad_records_trains_and_reports_the_count(stage, data, caplog):
    summary = LossSummary()
    trainer = L.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu", callbacks=[summary])
    with pytest.warns(UserWarning, match="skipped 5 bad record"), caplog.at_level(logging.INFO):
        trainer.fit(stage, TextDataModule(train=data, batch_size=2, on_bad_record="skip"))
    assert trainer.global_step == 1
    assert "; 5 bad records skipped at reading" in caplog.text

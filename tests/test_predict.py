"""`valley3 predict` prints every answer and writes predictions.jsonl (id, prompt, output, reference) to its run."""

from __future__ import annotations

import json
from pathlib import Path

from valley3.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_predict_prints_answers_and_writes_predictions_jsonl(tmp_path, monkeypatch, capsys):
    main(["data", "demo", "--out", str(tmp_path / "demo_data"), "--n-products", "6", "--speech", "synthetic"])
    monkeypatch.chdir(tmp_path)
    records = [json.loads(line) for line in (tmp_path / "demo_data/omni_val.jsonl").read_text().splitlines()]
    capsys.readouterr()
    main(["predict", "--config", str(ROOT / "experiments/demo/quickstart.yaml"),
          "--model.init_args.max_new_tokens=3", "--trainer.enable_progress_bar=false"])
    out = capsys.readouterr().out
    path = tmp_path / "runs/quickstart/version_0/predictions.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["id"] for r in rows] == [r["id"] for r in records]
    for row, record in zip(rows, records):
        assert set(row) == {"id", "prompt", "output", "reference"}
        assert row["reference"] == record["messages"][-1]["content"]  # the held-out last answer
        assert row["prompt"] == record["messages"][-2]["content"]  # the question it answers, media tags kept
        assert isinstance(row["output"], str)
        assert f"[{row['id']}] {row['output']!r}" in out
    assert str(path) in out

"""The results report: markdown rows, JSON/CSV numbers and per-sample JSONL, with malformed/skipped counts."""

from __future__ import annotations

import csv
import json

import pytest

from valley3.eval.report import SKIPPED, ResultRow, attach_counts, markdown, write_results


def _records():
    base = {"prompt": "p", "prediction": "x", "reference": "r", "score": 0.0}
    return [
        {"id": "1", "benchmark": "ebay", "subtask": "aspect/general", "malformed": None, **base},
        {"id": "2", "benchmark": "ebay", "subtask": "aspect/fashion", "malformed": "empty", **base},
        {"id": "3", "benchmark": "ebay", "subtask": "aspect/fashion", "malformed": SKIPPED, **base},
        {"id": "4", "benchmark": "ebay", "subtask": "dae", "malformed": "no_json", **base},
        {"id": "5", "benchmark": "vqa", "subtask": "IU", "malformed": "empty", **base},
    ]


def _rows():
    return [
        ResultRow("ebay", "aspect/fashion", "acc", 0.0, 1),
        ResultRow("ebay", "aspect", "acc", 0.5, 2),
        ResultRow("ebay", "dae", "f1", float("nan"), 1, {"precision": 0.25, "judged_fields": 3}),
    ]


def test_counts_come_from_the_records_of_each_row_and_its_children():
    rows = _rows()
    attach_counts(rows, _records())
    assert (rows[0].malformed, rows[0].skipped) == ({"empty": 1}, 1)
    assert (rows[1].malformed, rows[1].skipped) == ({"empty": 1}, 1)  # aspect covers aspect/*
    assert rows[2].malformed == {"no_json": 1}


def test_markdown_has_one_line_per_row_with_scores_times_100():
    rows = _rows()
    attach_counts(rows, _records())
    lines = markdown(rows).splitlines()
    assert len(lines) == 2 + len(rows)
    assert lines[3] == "| ebay | aspect | acc | 50.00 | 2 | 1 (empty 1) | 1 |  |"
    assert lines[4] == "| ebay | dae | f1 | nan | 1 | 1 (no_json 1) | 0 | precision=25.00 judged_fields=3 |"


def test_files_hold_the_same_numbers(tmp_path):
    rows, records = _rows(), _records()
    attach_counts(rows, records)
    paths = write_results(rows, records, tmp_path / "out", meta={"ckpt_path": "x.ckpt"})
    payload = json.loads(paths["results.json"].read_text())
    assert payload["meta"] == {"ckpt_path": "x.ckpt"} and len(payload["rows"]) == 3
    assert payload["rows"][2]["score"] is None  # NaN is written as null
    table = list(csv.DictReader(paths["results.csv"].open()))
    assert {(r["subtask"], r["metric"]): r["value"] for r in table}[("dae", "precision")] == "0.25"
    assert [json.loads(line)["id"] for line in paths["predictions.jsonl"].read_text().splitlines()] == list("12345")
    assert paths["results.md"].read_text().strip() == markdown(rows)


def test_plots_are_written_beside_the_tables_one_per_benchmark_and_an_overview(tmp_path):
    import numpy as np
    from PIL import Image

    rows = _rows() + [ResultRow("vqa", "IU", "circular_acc", 0.75, 4), ResultRow("vqa", "overall", "circular_acc",
                                                                                  0.6, 5)]
    attach_counts(rows, _records())
    paths = write_results(rows, _records(), tmp_path / "out")
    plots = {name: path for name, path in paths.items() if name.startswith("plots/")}
    assert set(plots) == {"plots/ebay.png", "plots/vqa.png", "plots/overview.png"}
    for path in plots.values():
        assert path.parent == tmp_path / "out" / "plots" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        pixels = np.asarray(Image.open(path).convert("RGB"))
        assert pixels.shape[0] >= 150 and pixels.shape[1] >= 600
        assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20  # bars, text and axes, not a blank canvas
    # the vqa chart: one bar per row, the headline (overall) darker, the bar lengths follow the scores
    vqa = np.asarray(Image.open(plots["plots/vqa.png"]).convert("RGB")).astype(int)
    dark, light = np.array([0x1F, 0x4E, 0x79]), np.array([0x7F, 0xB3, 0xE0])
    dark_cols = np.where((np.abs(vqa - dark).sum(-1) < 10).any(0))[0]
    light_cols = np.where((np.abs(vqa - light).sum(-1) < 10).any(0))[0]
    assert len(dark_cols) and len(light_cols)
    assert np.ptp(light_cols) / np.ptp(dark_cols) == pytest.approx(0.75 / 0.6, rel=0.05)

"""`valley3 data demo` writes an eval split in every suite's format; `valley3 test` runs them all on a demo
checkpoint, prints one table row per benchmark and sub-task, and writes the JSON/CSV/JSONL files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from valley3.cli import main
from valley3.eval.benchmarks import (
    ChineseEcomQA,
    EBay,
    ECInstruct,
    EcomCaption,
    EComMMMU,
    EcomVQA,
    MMECInstruct,
    OmniEcom,
)
from valley3.eval.report import ResultRow

from ._aggregate import assert_table_matches, table_from_predictions

ROOT = Path(__file__).resolve().parents[2]
SUITES = {"omni_ecom": OmniEcom, "ecom_vqa": EcomVQA, "ecom_caption": EcomCaption, "ebay": EBay,
          "ecommmmu": EComMMMU, "ecinstruct": ECInstruct, "chinese_ecomqa": ChineseEcomQA,
          "mmecinstruct": MMECInstruct}
EXPECTED_ROWS = {
    "omni_ecom": ["product_understanding", "after_sales", "search_recommendation", "livestream", "short_video",
                  "moderation", "overall"],
    "ecom_vqa": ["IU", "OCR", "DS", "MIU", "PTU", "GVU", "PEU", "AL", "VCR", "overall"],
    "ecom_caption": ["overall"],
    "ebay": ["aspect/general", "aspect/fashion", "aspect/fashion_title_category", "aspect", "deep_fashion/colour",
             "deep_fashion/category", "deep_fashion", "dae", "item_intelligence"],
    "ecommmmu": ["AP", "BQA", "CP", "SR", "MPC", "PSI", "SA", "PRP", "overall"],
    "ecinstruct": ["Attribute_Value_Extraction", "Multiclass_Product_Classification", "Product_Matching",
                   "Sentiment_Analysis", "Sequential_Recommendation", "Answer_Generation", "overall"],
    "chinese_ecomqa": ["category_concept", "attribute_concept", "brand_concept", "overall"],
    "mmecinstruct": ["Answerability_Prediction", "Category_Classification", "Product_Relation_Prediction",
                     "Product_Substitute_Identification", "Multiclass_Product_Classification", "Sentiment_Analysis",
                     "Sequential_Recommendation", "overall"],
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder holding demo_data/ (with eval/) written by the `valley3 data demo` command."""
    root = tmp_path_factory.mktemp("eval_run")
    main(["data", "demo", "--out", str(root / "demo_data"), "--n-products", "12", "--speech", "synthetic"])
    return root


def test_demo_writes_an_eval_split_every_suite_reads(workdir):
    for name, cls in SUITES.items():
        kwargs = {"tokenizer": "simple"} if cls is EcomCaption else {}
        bench = cls(str(workdir / f"demo_data/eval/{name}.jsonl"), **kwargs)
        totals = ("aspect", "deep_fashion") + (("overall",) if name != "ecom_caption" else ())
        assert bench.present_subtasks == [s for s in EXPECTED_ROWS[name] if s not in totals]
        assert all(Path(m.path).is_file() for item in bench.items for m in item.sample.media), name
    vqa = EcomVQA(str(workdir / "demo_data/eval/ecom_vqa.jsonl")).items
    assert len(vqa) == 4 * 18 and sum(m.kind == "image" for m in vqa[-1].sample.media) == 3  # VCR: 3 frames


def _eval_config(tmp_path: Path) -> Path:
    """experiments/demo/eval.yaml with the model path made absolute and METEOR left out (its JVM start-up
    alone takes ~20 s; the metric's own tests cover it)."""
    config = yaml.safe_load((ROOT / "experiments/demo/eval.yaml").read_text())
    config["model"]["init_args"]["model"] = str(ROOT / "configs/model/tiny_omni.yaml")
    for bench in config["data"]["init_args"]["benchmarks"]:
        if bench["class_path"].endswith("EcomCaption"):
            bench["init_args"]["metrics"] = ["bleu2", "cider", "rouge_l"]
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_valley3_test_on_a_demo_checkpoint_prints_the_table_and_writes_the_files(workdir, tmp_path, monkeypatch,
                                                                                capsys):
    monkeypatch.chdir(workdir)  # the configs' data paths and run folders are relative to the working dir
    main(["fit", "--config", str(ROOT / "experiments/demo/quickstart.yaml"), "--trainer.max_steps=2",
          "--trainer.enable_progress_bar=false", "--trainer.logger.init_args.name=tiny"])
    ckpt = workdir / "runs/tiny/version_0/checkpoints/last.ckpt"
    assert ckpt.is_file()
    capsys.readouterr()
    cli = main(["test", "--config", str(_eval_config(tmp_path)), "--ckpt_path", str(ckpt)])
    out = capsys.readouterr().out
    table = [line.split(" | ")[:2] for line in out.splitlines() if line.startswith("| ") and "| benchmark |" not in line]
    expected = [[f"| {bench}", sub] for bench, subs in EXPECTED_ROWS.items() for sub in subs]
    assert table == expected
    run = workdir / "runs/eval/version_0"
    rows = json.loads((run / "results.json").read_text())["rows"]
    assert [(r["benchmark"], r["subtask"]) for r in rows] == [(b, s) for b, subs in EXPECTED_ROWS.items() for s in subs]
    assert (run / "results.csv").read_text().startswith("benchmark,subtask,metric,value,count,skipped")
    records = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    assert len(records) == sum(len(b.items) for b in cli.datamodule.benchmarks)
    assert set(records[0]) >= {"id", "benchmark", "subtask", "prompt", "prediction", "reference", "score", "malformed"}
    overall = {(r["benchmark"], r["subtask"]): r for r in rows}
    assert overall["ecom_vqa", "overall"]["count"] == 18 and overall["ebay", "dae"]["count"] == 2
    for bench in cli.datamodule.benchmarks:  # every printed number is the aggregate of the per-sample lines
        mine = [r for r in records if r["benchmark"] == bench.name]
        table = [ResultRow(**{**r, "score": r["score"] if r["score"] is not None else math.nan})
                 for r in rows if r["benchmark"] == bench.name]
        refs = {i.uid: i.target for i in bench.items}
        assert_table_matches(table, table_from_predictions(bench.name, mine, refs, tokenizer="ptb"))
    assert {p.name for p in (run / "plots").iterdir()} >= {f"{b}.png" for b in EXPECTED_ROWS}

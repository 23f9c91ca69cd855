"""Crafted outputs per suite (tests/eval/fixtures/<suite>.jsonl: well-formed, hedged, truncated, wrapped,
swapped, empty) score as pinned there, and every table is the aggregate of its predictions.jsonl lines."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

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
from valley3.eval.metrics import score_captions
from valley3.eval.report import write_results

from ._aggregate import assert_table_matches, table_from_predictions
from .benchmarks._util import write_jsonl

FIXTURES = Path(__file__).parent / "fixtures"
CAPTION = {"tokenizer": "simple", "metrics": ["bleu2", "cider", "rouge_l"]}
SUITES = {
    "ecom_vqa": (EcomVQA, {}), "omni_ecom": (OmniEcom, {}), "ecommmmu": (EComMMMU, {}),
    "ecinstruct": (ECInstruct, {}), "mmecinstruct": (MMECInstruct, {}), "chinese_ecomqa": (ChineseEcomQA, {}),
    "ebay": (EBay, {}), "ecom_caption": (EcomCaption, CAPTION),
}
KINDS = {"well-formed", "hedged", "truncated", "wrapped", "swapped", "empty"}


def _load(suite: str, tmp_path: Path):
    lines = [json.loads(line) for line in (FIXTURES / f"{suite}.jsonl").read_text(encoding="utf-8").splitlines()]
    cls, kwargs = SUITES[suite]
    bench = cls(write_jsonl(tmp_path / f"{suite}.jsonl", [x["record"] for x in lines if "record" in x]), **kwargs)
    return bench, [x["case"] for x in lines if "case" in x]


@pytest.mark.parametrize("suite", SUITES)
def test_crafted_outputs_score_as_pinned(suite, tmp_path):
    bench, cases = _load(suite, tmp_path)
    missing = KINDS - {c["kind"] for c in cases}
    assert missing <= ({"hedged", "swapped"} if suite == "ecom_caption" else set()), missing
    items = {i.uid: i for i in bench.items}
    for case in cases:
        line = bench.record(items[case["id"]], case["output"])
        got = (line["score"], line["malformed"])
        assert got == (pytest.approx(case["score"], abs=1e-12), case["malformed"]), (case, got)
        for key in ("counts", "verdicts", "out_of_set"):
            if key in case:
                assert line[key] == case[key], (case, line[key])
        if "coco" in case:  # the caption COCO's pipeline scores: as written, after thinking / JSON answer only
            assert line["extracted"] == case["coco"], case


def _rounds(cases):
    """Answer sets covering every case: round k answers each item with its k-th case (or its last one)."""
    by_item = defaultdict(list)
    for case in cases:
        by_item[case["id"]].append(case["output"])
    n = max(len(v) for v in by_item.values())
    return [{uid: outs[min(k, len(outs) - 1)] for uid, outs in by_item.items()} for k in range(n)]


@pytest.mark.parametrize("suite", SUITES)
def test_predictions_jsonl_aggregates_to_the_printed_table(suite, tmp_path):
    bench, cases = _load(suite, tmp_path)
    assert {c["id"] for c in cases} == {i.uid for i in bench.items}
    items = list(reversed(bench.items))  # batches out of order, rotations split across them
    for k, answers in enumerate(_rounds(cases)):
        metrics, lines = bench.metrics(), []
        for start in range(0, len(items), 3):
            chunk = items[start : start + 3]
            lines += bench.evaluate(metrics, chunk, [answers[i.uid] for i in chunk])
        rows = bench.rows({key: m.compute() for key, m in metrics.items()})
        paths = write_results(rows, lines, tmp_path / f"round{k}")
        written = [json.loads(x) for x in paths["predictions.jsonl"].read_text(encoding="utf-8").splitlines()]
        references = {i.uid: i.target for i in bench.items}
        assert_table_matches(rows, table_from_predictions(suite, written, references))


def test_caption_fixture_matches_pycocoevalcap_on_the_captions_as_written(tmp_path):
    bench, cases = _load("ecom_caption", tmp_path)
    refs = {i.uid: i.target for i in bench.items}
    for answers in _rounds(cases):
        coco = {c["id"]: c["coco"] for c in cases if c["output"] == answers[c["id"]]}
        metrics = bench.metrics()
        bench.evaluate(metrics, bench.items, [answers[i.uid] for i in bench.items])
        row = bench.rows({k: m.compute() for k, m in metrics.items()})[0]
        expected = score_captions(refs, coco, ["bleu2", "cider", "rouge_l"], tokenizer="simple")
        assert row.score == pytest.approx(expected["bleu2"], abs=1e-12)
        assert row.details == pytest.approx({"cider": expected["cider"], "rouge_l": expected["rouge_l"]}, abs=1e-12)

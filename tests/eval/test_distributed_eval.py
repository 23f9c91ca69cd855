"""Two gloo processes (Lightning ddp_spawn) give the same results table and predictions as one process."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import lightning as L
import pytest
import torch.distributed as dist

from valley3.data.demo import make_demo
from valley3.eval import BenchmarkDataModule
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
from valley3.eval.demo_split import write_eval_split
from valley3.stages import EvalStage

from ..conftest import tiny_omni
from .benchmarks._util import write_jsonl


def _answer(item) -> str:
    """Right, empty, truncated JSON or a stray "B", picked by a hash of the prompt id (the same in every process)."""
    return [item.reference, "", '{"answer": "tru', "B"][zlib.crc32(item.uid.encode()) % 4]


class ScriptedStage(EvalStage):
    """Answers from the items themselves, so the totals test sharding and metric sync, not the model's numerics."""

    def generate_text(self, batch, **kwargs):
        benchmark = {b.name: b for b in self.benchmarks}[batch.benchmark]
        return [_answer(benchmark.items[i]) for i in batch.eval_index]


def _datamodule(root: Path, media: dict[str, str]) -> BenchmarkDataModule:
    ev = root / "eval"
    broken = [  # q1's image is missing: its 4 rotations are skipped (counted once, on whichever rank)
        {"id": f"q{i}", "subtask": "IU", "question": "Colour?", "options": ["red", "blue", "green", "black"],
         "answer": i % 4, "images": [str(root / "missing.png") if i == 1 else media["red"]]}
        for i in range(3)
    ]
    benchmarks = [  # odd sizes (limit), so the second rank's shard is topped up with a padding copy
        OmniEcom(str(ev / "omni_ecom.jsonl"), limit=11), EcomVQA(str(ev / "ecom_vqa.jsonl")),
        EcomCaption(str(ev / "ecom_caption.jsonl"), metrics=["bleu2", "cider", "rouge_l"], tokenizer="simple", limit=7),
        EBay(str(ev / "ebay.jsonl"), limit=13), EComMMMU(str(ev / "ecommmmu.jsonl"), limit=15),
        ECInstruct(str(ev / "ecinstruct.jsonl"), limit=17), ChineseEcomQA(str(ev / "chinese_ecomqa.jsonl"), limit=7),
        MMECInstruct(str(ev / "mmecinstruct.jsonl"), limit=13),
        EcomVQA(write_jsonl(root / "broken.jsonl", broken), name="vqa_broken"),
    ]
    return BenchmarkDataModule(benchmarks, batch_size=5)


def _evaluate(root: Path, media: dict[str, str], out: Path, devices: int) -> tuple[list[dict], list[dict]]:
    strategy = "ddp_spawn" if devices > 1 else "auto"
    trainer = L.Trainer(accelerator="cpu", devices=devices, strategy=strategy, logger=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.test(ScriptedStage(tiny_omni(), out_dir=str(out)), datamodule=_datamodule(root, media))
    rows = json.loads((out / "results.json").read_text())["rows"]
    return rows, [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed gloo")
def test_two_processes_give_the_same_totals_as_one(tmp_path, media):
    make_demo(tmp_path, n_products=12, speech="synthetic")
    write_eval_split(tmp_path)
    rows_1, records_1 = _evaluate(tmp_path, media, tmp_path / "one", devices=1)
    rows_2, records_2 = _evaluate(tmp_path, media, tmp_path / "two", devices=2)
    assert records_2 == records_1  # every prompt once (no padding copy scored), same order
    assert rows_2 == rows_1  # every score, count and malformed/skipped count
    broken = {r["subtask"]: r for r in rows_1 if r["benchmark"] == "vqa_broken"}
    assert broken["overall"]["skipped"] == 4 and broken["overall"]["count"] == 2
    assert sum(r["malformed"] == "skipped" for r in records_1) == 4
    vqa = {r["subtask"]: r for r in rows_1 if r["benchmark"] == "ecom_vqa"}["overall"]
    assert vqa["count"] == 18 and sum(vqa["malformed"].values()) > 0

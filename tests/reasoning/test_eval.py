"""`valley3 test` per effort level and per thinking budget (ReasoningEvalStage) on the tiny trained checkpoint."""

from __future__ import annotations

import json

import lightning as L
import pytest

from tests.conftest import tiny_omni
from valley3.eval import BenchmarkDataModule
from valley3.eval.benchmarks import DemoReasoning
from valley3.stages import ReasoningEvalStage

from .conftest import LEVELS, record


@pytest.fixture(scope="module")
def questions(tmp_path_factory):
    path = tmp_path_factory.mktemp("eval") / "val.jsonl"
    rows = [record(a, b, level) | {"task": "sum"} for a, b in [(2, 5), (13, 4), (8, 8), (17, 3), (1, 12), (10, 6)]
            for level in ("minimal", "medium", "high")]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _run(reasoning_ckpt, questions, tmp_path, **kwargs) -> ReasoningEvalStage:
    _, policy = reasoning_ckpt
    stage = ReasoningEvalStage(tiny_omni(seed=1), efforts=LEVELS, max_new_tokens=64, out_dir=str(tmp_path), **kwargs)
    stage.model.load_state_dict(policy.model.state_dict())
    data = BenchmarkDataModule([DemoReasoning(str(questions), subtasks=["sum"], max_new_tokens=8)], batch_size=4)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.test(stage, datamodule=data)
    return stage


def test_per_effort_level(reasoning_ckpt, questions, tmp_path):
    stage = _run(reasoning_ckpt, questions, tmp_path)
    minimal, medium, high = stage.setting_results
    assert [r.name for r in stage.setting_results] == ["minimal", "medium", "high"]
    assert all(len(r.thinking_tokens) == 6 for r in stage.setting_results)  # each question once per level
    assert minimal.median_thinking == 0 < medium.median_thinking < high.median_thinking
    assert all(r.control is None and 0 <= r.scores["demo_reasoning"] <= 1 for r in stage.setting_results)
    table = stage.reasoning_paths["md"].read_text()
    assert "| medium | medium | - | 6 |" in table and "Scaling" in table
    predictions = [json.loads(line) for line in (tmp_path / "high" / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 6 and all({"thinking_tokens", "thinking_format", "output"} <= set(p) for p in predictions)


def test_budget_sweep_reports_control_and_scaling(reasoning_ckpt, questions, tmp_path):
    stage = _run(reasoning_ckpt, questions, tmp_path, budgets=[0, 4, 12], budget_level="high")
    results = stage.setting_results
    assert [r.name for r in results] == ["high@0", "high@4", "high@12"]
    assert all(r.control == 1.0 for r in results)
    assert [r.mean_thinking for r in results] == sorted(r.mean_thinking for r in results)
    assert results[0].mean_thinking == 0 < results[2].mean_thinking
    report = json.loads(stage.reasoning_paths["json"].read_text())
    assert report["s1"]["demo_reasoning"]["control"] == 1.0 and report["s1"]["demo_reasoning"]["scaling"] is not None
    assert stage.reasoning_paths["png"].exists()


def test_unknown_levels_fail_at_construction():
    with pytest.raises(ValueError, match="unknown reasoning effort 'ultra'"):
        ReasoningEvalStage(tiny_omni(), efforts=LEVELS, levels=["ultra"])

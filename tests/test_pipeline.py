"""`valley3 pipeline`: stages run in order from each other's weights, S0 trains only the audio connector,
finished steps are skipped and an interrupted one resumes."""

from __future__ import annotations

import functools
import json
from collections import Counter
from pathlib import Path

import pytest
import torch

from valley3.cli import main
from valley3.data.demo import make_demo
from valley3.pipeline import Pipeline, Step, format_table

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "experiments/demo/pipeline.yaml"
FAST = ["--", "--trainer.max_steps=3", "--trainer.logger=false", "--trainer.enable_progress_bar=false"]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


class _HalfRight:
    """Stands in for a 3-step model, which is always wrong: right on every other try, so the filter keeps all."""

    def __init__(self):
        self.tries = Counter()

    def __call__(self, batch, **kwargs):
        answers = []
        for sid, reference in zip(batch.sample_ids, batch.references):
            self.tries[sid] += 1
            answers.append(reference if self.tries[sid] % 2 else "no idea")
        return answers


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The demo pipeline, 3 steps per fit, on a small demo dataset."""
    import valley3.stages.reject_sample as rejection

    root = tmp_path_factory.mktemp("pipeline")
    make_demo(root / "demo_data", n_products=12, speech="synthetic")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setattr(rejection, "reject_sample", functools.partial(rejection.reject_sample, generate=_HalfRight()))
        main(["pipeline", str(DEMO), "--out", "runs", *FAST])
    return root / "runs"


def test_every_step_runs_in_order_and_writes_its_outputs(demo_run):
    names = [step.name for step in Pipeline.from_yaml(DEMO).steps]
    assert names == ["base_vl", "s0_audio_align", "s1_audio_instruct", "s2_domain_cpt", "s2_filter", "s3_rejection_ft"]
    rows = [json.loads((demo_run / n / "summary.json").read_text()) for n in names]
    fits = [r for r in rows if r["stage"] != "reject-sample"]
    assert [r["stage"] for r in fits] == ["OmniStage", "AudioAlignStage", "AudioInstructStage", "DomainCPTStage",
                                          "RejectionFTStage"]
    assert all(r["steps"] == 3 and r["tokens"] > 0 for r in fits)
    assert rows[1]["trains"] == "audio_connector" and rows[2]["trains"] == "all"
    kept = (demo_run / "s2_filter" / "kept.jsonl").read_text().splitlines()
    assert kept and rows[4]["status"] == f"kept {len(kept)}/{len(kept)}"  # every pass rate is 2/4


def test_s0_changes_only_the_audio_connector(demo_run):
    before, after = _weights(demo_run / "base_vl/final.ckpt"), _weights(demo_run / "s0_audio_align/final.ckpt")
    assert before.keys() == after.keys()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    connector = {k for k in before if k.startswith("model.audio_connector.")}
    assert changed and changed <= connector  # every other tensor is bit-identical


def test_each_step_starts_from_the_previous_steps_weights(demo_run):
    # S0's frozen decoder equals base_vl's, and S1 (which trains everything) ends within its own 3 AdamW updates
    # of S0's weights: each moves a weight by at most about the learning rate (1e-3, less in warm-up), while a
    # fresh random init would differ by ~0.1.
    s0, s1 = _weights(demo_run / "s0_audio_align/final.ckpt"), _weights(demo_run / "s1_audio_instruct/final.ckpt")
    base = _weights(demo_run / "base_vl/final.ckpt")
    decoder = [k for k in base if k.startswith("model.decoder.") and k.endswith("weight")]
    assert all(torch.equal(s0[k], base[k]) for k in decoder)
    moved = max(float((s1[k] - s0[k]).abs().max()) for k in decoder)
    assert 0 < moved < 3e-3


def test_a_rerun_skips_finished_steps_and_resumes_an_interrupted_one(demo_run, capsys):
    s3 = demo_run / "s3_rejection_ft"
    (s3 / "summary.json").unlink()
    (s3 / "final.ckpt").unlink()  # as if killed after its last checkpoint but before finishing
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(demo_run.parent)
        main(["pipeline", str(DEMO), "--out", "runs", *FAST])
    table = capsys.readouterr().out
    assert table.count("| skipped (done) |") == 5
    assert "| s3_rejection_ft | RejectionFTStage | all |" in table and "| resumed |" in table
    assert (s3 / "final.ckpt").exists()


def test_a_step_is_fit_or_reject_sample_and_names_are_unique(tmp_path):
    with pytest.raises(ValueError, match="exactly one of"):
        Step(name="x")
    path = tmp_path / "p.yaml"
    path.write_text("steps:\n  - {name: a, fit: [a.yaml]}\n  - {name: a, fit: [b.yaml]}\n")
    with pytest.raises(ValueError, match="unique"):
        Pipeline.from_yaml(path)
    path.write_text("steps:\n  - {name: a, fit: [a.yaml], epochs: 3}\n")
    with pytest.raises(ValueError, match="step 0 \\(a\\)"):
        Pipeline.from_yaml(path)


def test_a_missing_previous_checkpoint_is_an_error_before_training(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("steps:\n  - {name: a, fit: [a.yaml]}\n  - {name: b, fit: [b.yaml]}\n")
    (tmp_path / "runs/a").mkdir(parents=True)
    (tmp_path / "runs/a/summary.json").write_text(json.dumps(
        {"step": "a", "stage": "OmniStage", "trains": "all", "steps": 1, "tokens": 1, "seconds": 0.1,
         "first_loss": 1.0, "final_loss": 0.5}))
    with pytest.raises(FileNotFoundError, match="did not write"):
        main(["pipeline", str(path), "--out", str(tmp_path / "runs")])


def test_the_summary_table_has_a_row_per_step():
    rows = [{"step": "s0", "stage": "AudioAlignStage", "trains": "audio_connector", "steps": 10, "tokens": 12345,
             "seconds": 3.25, "first_loss": 6.5, "final_loss": 2.25, "status": "ran"}]
    assert format_table(rows).splitlines()[-1] == (
        "| s0 | AudioAlignStage | audio_connector | 10 | 12,345 | 3.2 | 6.500 -> 2.250 | ran |")

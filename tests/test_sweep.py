"""`valley3 sweep`: points fit then test, finished points are skipped, a killed sweep finishes only what is
missing, results.{csv,md} and plots are written, and submitit's local executor runs points as jobs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from valley3.cli import main
from valley3.data.demo import make_demo
from valley3.eval.demo_split import write_eval_split
from valley3.sweep import POINT_DONE, Sweep, run_sweep

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--trainer.max_steps=2", "--trainer.enable_progress_bar=false", "--trainer.log_every_n_steps=1",
        "--trainer.enable_model_summary=false"]


def _sweep_file(folder: Path) -> Path:
    spec = {
        "base": [str(ROOT / "experiments/demo/quickstart.yaml")],
        "eval": [str(ROOT / "ablations/eval.yaml")],
        "out": "runs/sweep",
        "args": {"fit": FAST},
        "grid": {"lr": {"lr_hi": {"fit.model.init_args.default_lr": 3e-3},
                        "lr_lo": {"fit.model.init_args.default_lr": 1e-4}}},
    }
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    make_demo(root / "demo_data", n_products=8, speech="synthetic")
    write_eval_split(root / "demo_data", seed=0)
    return root


def _status(capsys) -> dict[str, str]:
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("sweep: point ")]
    return dict(ln.removeprefix("sweep: point ").split(": ", 1) for ln in lines)


def test_sweep_runs_skips_and_finishes_only_missing_points(workdir, monkeypatch, capsys):
    monkeypatch.chdir(workdir)
    path = _sweep_file(workdir)
    main(["sweep", str(path)])
    assert _status(capsys) == {"lr_hi": "ran", "lr_lo": "ran"}
    out = workdir / "runs/sweep"
    with open(out / "results.csv") as f:
        rows = {r["point"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"lr_hi", "lr_lo"} and all(int(r["steps"]) == 2 for r in rows.values())
    assert all(0.0 <= float(r["score"]) <= 1.0 for r in rows.values())
    for name in ("results.md", "score.png", "loss.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "lr_hi/test/results.json").exists()
    main(["sweep", str(path)])  # everything done: nothing runs
    assert _status(capsys) == {"lr_hi": "skipped (done)", "lr_lo": "skipped (done)"}
    (out / "lr_lo" / POINT_DONE).unlink()  # as if the sweep was killed during lr_lo's test
    main(["sweep", str(path)])
    assert _status(capsys) == {"lr_hi": "skipped (done)", "lr_lo": "ran"}


def test_loss_curves_come_from_tensorboard(workdir):
    from valley3.sweep_report import loss_curve

    curve = loss_curve(workdir / "runs/sweep/lr_hi/tb/fit")
    assert [step for step, _ in curve] == [0, 1] and all(v > 0 for _, v in curve)


def test_submitit_local_executor_runs_two_points(workdir, monkeypatch):
    submitit = pytest.importorskip("submitit")
    monkeypatch.chdir(workdir)
    sweep = Sweep.from_yaml(_sweep_file(workdir))
    sweep.eval = []  # the jobs' fit is what is under test here; the test step ran above
    executor = submitit.LocalExecutor(folder=workdir / "submitit")
    executor.update_parameters(timeout_min=10)
    rows = run_sweep(sweep, out="runs/jobs", executor=executor)
    assert [(r["point"], r["status"], r["steps"]) for r in rows] == [("lr_hi", "ran", 2), ("lr_lo", "ran", 2)]
    assert all(json.loads((workdir / "runs/jobs" / n / POINT_DONE).read_text())["steps"] == 2
               for n in ("lr_hi", "lr_lo"))


def test_points_are_the_grid_times_the_zip(tmp_path):
    spec = {"base": "a.yaml", "grid": {"x": {"x1": {"k": 1}, "x2": {"k": 2}}},
            "zip": {"y": {"y1": {"fit.a": 1}, "y2": {"fit.a": 2}}, "z": {"z1": {"test.b": "c"}, "z2": {"test.b": "d"}}}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    points = Sweep.from_yaml(tmp_path / "s.yaml").points()
    assert [p["name"] for p in points] == ["x1-y1-z1", "x1-y2-z2", "x2-y1-z1", "x2-y2-z2"]
    assert points[1]["fit"] == ["--k=1", "--a=2"] and points[1]["test"] == ["--k=1", "--b=d"]
    spec["zip"]["z"].pop("z2")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(ValueError, match="same number"):
        Sweep.from_yaml(tmp_path / "s.yaml")


def test_labels_yaml_reads_as_booleans_are_refused(tmp_path):
    """`on:`/`off:` are YAML booleans: the points would be named True and False, so the sweep asks for quotes."""
    (tmp_path / "s.yaml").write_text("base: a.yaml\ngrid:\n  packing:\n    off: {k: 1}\n    on: {k: 2}\n")
    with pytest.raises(ValueError, match="not strings"):
        Sweep.from_yaml(tmp_path / "s.yaml")
    (tmp_path / "s.yaml").write_text("base: a.yaml\ngrid:\n  packing:\n    'off': {k: 1}\n    'on': {k: 2}\n")
    assert [p["name"] for p in Sweep.from_yaml(tmp_path / "s.yaml").points()] == ["off", "on"]

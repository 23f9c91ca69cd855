"""`valley3 sweep`: a grid (and zipped lists) of config overrides over a base experiment, each point fit then test."""

from __future__ import annotations

import argparse
import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

POINT_DONE = "point.json"  # written last in a point's folder: a point holding it is skipped on a re-run
KEYS = {"base", "eval", "out", "args", "grid", "zip"}


@dataclass
class Sweep:
    """A sweep file: points are the product of the `grid` axes, each combined with every step of `zip`.

    Args:
        base: fit config files (LightningCLI `--config`, later ones override earlier ones), relative to the file.
        eval: test config files for `valley3 test` (an EvalStage config), relative to the file; empty: no test.
        out: output folder; one sub-folder per point plus results.{csv,md} and the plots.
        args: `{fit: [...], test: [...]}` extra LightningCLI arguments of every point.
        grid: axis -> {label: overrides}; every combination of the axes' labels is a point.
        zip: axis -> {label: overrides}, all axes the same length, stepped together (one label per point).
    An override maps a dotted config key to a value (`model.init_args.max_len: 256`); `fit.` or `test.` before
    the key applies it to only that command; the key `pipeline` swaps the point's single fit for a pipeline file
    (`valley3 pipeline`: staged recipes), whose last fit step's weights are tested; a string naming an existing
    file beside the sweep file is made absolute (`../../configs/model/connector/conv_adapter.yaml` works from any
    working folder).
    """

    base: list[str]
    eval: list[str] = field(default_factory=list)
    out: str = "runs/sweep"
    args: dict[str, list[str]] = field(default_factory=dict)
    grid: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    zip: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    root: Path = Path(".")

    @classmethod
    def from_yaml(cls, path: str | Path) -> Sweep:
        path = Path(path)
        spec = yaml.safe_load(path.read_text()) or {}
        unknown = set(spec) - KEYS
        if unknown or "base" not in spec or not (spec.get("grid") or spec.get("zip")):
            raise ValueError(f"{path}: a sweep has `base` and `grid` and/or `zip` (optional: {sorted(KEYS)}); "
                             f"unknown keys {sorted(unknown)}")
        lengths = {axis: len(labels) for axis, labels in (spec.get("zip") or {}).items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"{path}: every `zip` axis needs the same number of entries, got {lengths}")
        for kind in ("grid", "zip"):
            for axis, labels in (spec.get(kind) or {}).items():
                odd = [label for label in labels or {} if not isinstance(label, str)]
                if odd:  # YAML reads on/off/yes/no as booleans and 1 as a number: the point would be named True
                    raise ValueError(f"{path}: {kind} axis {axis!r} has labels that are not strings {odd}; "
                                     f"quote them ('on', '1')")
        as_list = lambda v: [v] if isinstance(v, str) else list(v or [])  # noqa: E731
        return cls(as_list(spec["base"]), as_list(spec.get("eval")), spec.get("out", cls.out),
                   {k: list(v) for k, v in (spec.get("args") or {}).items()},
                   spec.get("grid") or {}, spec.get("zip") or {}, path.parent.resolve())

    def points(self) -> list[dict[str, Any]]:
        """Every point: its name, its label per axis, its fit and test arguments."""
        grid_axes = [[(axis, label, over) for label, over in labels.items()] for axis, labels in self.grid.items()]
        zipped = list(zip(*[[(axis, label, over) for label, over in labels.items()]
                            for axis, labels in self.zip.items()])) or [()]
        points = []
        for combo in itertools.product(*grid_axes):
            for step in zipped:
                chosen = [*combo, *step]
                labels = {axis: label for axis, label, _ in chosen}
                fit, test, pipeline = [], [], None
                for _, _, overrides in chosen:
                    for key, value in (overrides or {}).items():
                        if key == "pipeline":
                            pipeline = self._value(value)
                            continue
                        target, key = _target(key)
                        arg = f"--{key}={self._value(value)}"
                        if target != "test":
                            fit.append(arg)
                        if target != "fit":
                            test.append(arg)
                name = "-".join(str(label) for label in labels.values())
                points.append({"name": name, "labels": labels, "fit": fit, "test": test, "pipeline": pipeline})
        names = [p["name"] for p in points]
        if len(set(names)) != len(names):
            raise ValueError(f"sweep points need distinct labels, got {names}")
        return points

    def _value(self, value: Any) -> str:
        if isinstance(value, str):
            beside = self.root / value
            return str(beside.resolve()) if value.endswith((".yaml", ".yml")) and beside.exists() else value
        return json.dumps(value)

    def configs(self, files: list[str]) -> list[str]:
        return [a for f in files for a in ("--config", str(self.root / f))]


def _target(key: str) -> tuple[str, str]:
    head, _, rest = key.partition(".")
    return (head, rest) if head in ("fit", "test") and rest else ("both", key)


def run_point(sweep: Sweep, point: dict[str, Any], out: str | Path, extra: list[str] = ()) -> dict[str, Any]:
    """Fit (resuming an interrupted fit) then test one point; writes its `point.json` last and returns the row."""
    from valley3.cli import main
    from valley3.pipeline import Pipeline, Step, run_pipeline

    folder = Path(out) / point["name"]
    done = folder / POINT_DONE
    if done.exists():
        return json.loads(done.read_text()) | {"status": "skipped (done)"}
    # every fit step logs into one folder: a pipeline's steps follow each other in its loss curve
    logger = {"class_path": "lightning.pytorch.loggers.TensorBoardLogger",
              "init_args": {"save_dir": str(folder), "name": "tb", "version": "fit"}}
    fit_args = [*sweep.args.get("fit", []), *extra, f"--trainer.logger={json.dumps(logger)}"]
    if point.get("pipeline"):
        pipeline = Pipeline.from_yaml(point["pipeline"])
        fit_args = [*point["fit"], *fit_args]
    else:
        pipeline = Pipeline([Step("fit", fit=list(sweep.base), init_from=None, args=point["fit"])], root=sweep.root)
    rows = run_pipeline(pipeline, fit=main, out=str(folder), extra_args=fit_args)
    fits = [(s.name, r) for s, r in zip(pipeline.steps, rows) if s.fit]
    last, fit_row = fits[-1]
    total = {key: sum(r[key] for _, r in fits) for key in ("steps", "tokens", "seconds")}
    fit_row = fit_row | total | {"first_loss": fits[0][1]["first_loss"]}
    scores: dict[str, float] = {}
    if sweep.eval:
        test_dir = folder / "test"
        main(["test", *sweep.configs(sweep.eval), *point["test"], *sweep.args.get("test", []),
              f"--model.init_args.init_from={folder / last / 'final.ckpt'}", f"--model.init_args.out_dir={test_dir}",
              "--trainer.logger=false", f"--trainer.default_root_dir={test_dir}"])
        scores = overall_scores(test_dir / "results.json")
    row = {"point": point["name"], **point["labels"], "steps": fit_row["steps"], "tokens": fit_row["tokens"],
           "fit_seconds": fit_row["seconds"], "first_loss": fit_row["first_loss"],
           "final_loss": fit_row["final_loss"], **scores, "status": "ran"}
    tmp = folder / (POINT_DONE + ".tmp")
    tmp.write_text(json.dumps(row, indent=1))
    os.replace(tmp, done)
    return row


def overall_scores(results_json: Path) -> dict[str, float]:
    """Each benchmark's overall score, plus their mean as `score`."""
    rows = json.loads(results_json.read_text())["rows"]
    scores = {f"{r['benchmark']}/{r['metric']}": r["score"] for r in rows if r["subtask"] == "overall"}
    if scores:
        scores["score"] = sum(scores.values()) / len(scores)
    return scores


def run_sweep(sweep: Sweep, out: str | None = None, executor: Any = None, extra: list[str] = ()) -> list[dict]:
    """Runs every point not done yet, one after another here or as jobs of a submitit executor; returns the rows.

    `executor`: a `submitit` executor (`AutoExecutor` for SLURM, `LocalExecutor` for a laptop); the points are
    submitted as one job array and awaited, and finished points are skipped inside each job.
    """
    from valley3.sweep_report import write_report

    out_dir = Path(out or sweep.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    points = sweep.points()
    if executor is None:
        rows = [run_point(sweep, p, out_dir, list(extra)) for p in points]
    else:
        todo = [p for p in points if not (out_dir / p["name"] / POINT_DONE).exists()]
        jobs = executor.map_array(run_point, [sweep] * len(todo), todo, [out_dir] * len(todo),
                                  [list(extra)] * len(todo)) if todo else []
        for job in jobs:
            job.result()  # raises a failed point's error, with its log path
        rows = [run_point(sweep, p, out_dir) for p in points]  # all done now: reads each point.json
        ran = {p["name"] for p in todo}
        rows = [r | {"status": "ran"} if r["point"] in ran else r for r in rows]
    for row in rows:
        print(f"sweep: point {row['point']}: {row['status']}", flush=True)
    write_report(rows, out_dir, [out_dir / p["name"] / "tb" / "fit" for p in points])
    return rows


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="valley3 sweep", description="Fit then test every point of a sweep file, skipping finished points.",
        epilog="Arguments after `--` go to every fit, e.g. `-- --trainer.max_steps=20`.")
    parser.add_argument("config", help="the sweep YAML (base, eval, grid, zip, args, out)")
    parser.add_argument("--out", help="output folder (default: the YAML's `out`)")
    parser.add_argument("--slurm", metavar="FOLDER", help="submit the points as SLURM jobs via submitit; logs here")
    parser.add_argument("--slurm-args", default="{}", help="JSON of submitit parameters, e.g. "
                        '\'{"slurm_partition": "gpu", "gpus_per_node": 8, "timeout_min": 600}\'')
    cut = argv.index("--") if "--" in argv else len(argv)
    args, extra = parser.parse_args(argv[:cut]), argv[cut + 1:]
    executor = None
    if args.slurm:
        import submitit

        executor = submitit.AutoExecutor(folder=args.slurm)
        executor.update_parameters(**json.loads(args.slurm_args))
    rows = run_sweep(Sweep.from_yaml(args.config), out=args.out, executor=executor, extra=extra)
    from valley3.sweep_report import markdown

    print("\n" + markdown(rows))

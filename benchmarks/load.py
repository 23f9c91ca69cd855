"""Shared-machine benchmark: the demo fit's steps/s alone and beside 1 and 2 busy processes it starts itself."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL = 1 / 3  # steps/s beside 2 busy processes, as a share of alone
ABOUT = """\
    python benchmarks/load.py              # ~5 min on 2 CPU cores; exits 1 if the goal is missed
    python benchmarks/load.py --legacy     # the settings before the thread defaults, for comparison

Each run is one `valley3 fit --config experiments/demo/quickstart.yaml` (the demo data is written to a temporary
folder first when --data is not given) cut to --warmup + --steps steps with no validation, logger or checkpoint,
in a fresh process; a callback times the steps after the warm-up. "Busy" processes are `while True: pass` loops
in Python, started before the fit and killed after it (each also stops by itself after --busy-limit seconds).
The runs go alone, 1 busy, 2 busy, and the whole round repeats --rounds times; a run's steps/s is the median
over rounds. --legacy imports torch before valley3 with OMP_NUM_THREADS set to the machine's cores (so OpenMP
spins, a thread per core, as before the CLI's thread defaults existed), turns the tokenizers' thread pool on and
loads data in the main process (num_workers: 0), which is how the shipped configs ran before.

The fit's process loads valley3.cli before lightning: lightning loads torch, and the CLI's thread defaults must
come first (until 2026-11-30 this benchmark loaded lightning first and measured torch's own defaults instead).
"""

BUSY = "import time\nend = time.monotonic() + {limit}\nwhile time.monotonic() < end:\n    pass\n"


def child(out: str, warmup: int, legacy: bool, argv: list[str]) -> None:
    """One fit in this process, its steps after `warmup` timed by a callback (the parent reads `out`)."""
    if legacy:
        import torch  # noqa: F401  loaded first, as it was before the CLI set thread defaults
    from valley3.cli import main  # before lightning, which loads torch: the CLI's thread defaults come first

    import lightning as L

    class StepClock(L.Callback):
        def __init__(self, out: str, warmup: int):
            self.out, self.warmup, self.start, self.steps = out, warmup, None, 0

        def on_train_batch_end(self, trainer, *args) -> None:
            if trainer.global_step == self.warmup:
                self.start = time.perf_counter()
            elif self.start is not None:
                self.steps += 1
                Path(self.out).write_text(json.dumps({"steps": self.steps, "seconds": time.perf_counter() - self.start}))

    globals()["StepClock"] = StepClock  # the CLI finds it as __main__.StepClock

    clock = {"class_path": "__main__.StepClock", "init_args": {"out": out, "warmup": warmup}}
    main(["fit", *argv, f"--trainer.callbacks=[{json.dumps(clock)}]"])


def demo_data(given: str | None, scratch: Path) -> Path:
    if given:
        return Path(given)
    out = scratch / "demo_data"
    subprocess.run([sys.executable, "-m", "valley3.cli", "data", "demo", "--out", str(out)], check=True,
                   stdout=subprocess.DEVNULL)
    return out


def fit(data: Path, scratch: Path, args, busy: int) -> float:
    """Steps/s of one demo fit beside `busy` busy processes."""
    out = scratch / f"clock-{busy}.json"
    out.unlink(missing_ok=True)
    argv = ["--config", str(ROOT / "experiments/demo/quickstart.yaml"),
            f"--data.init_args.train={data / 'omni_train.jsonl'}", f"--data.init_args.val={data / 'omni_val.jsonl'}",
            f"--data.init_args.predict={data / 'omni_val.jsonl'}",
            f"--trainer.max_steps={args.warmup + args.steps}", "--trainer.limit_val_batches=0",
            "--trainer.logger=false", "--trainer.enable_checkpointing=false", "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false"]
    if args.legacy:
        argv.append("--data.init_args.num_workers=0")
    env = {**os.environ, **dict(kv.split("=", 1) for kv in args.env)}
    if args.legacy:  # the defaults before the CLI chose any: torch's thread per core, the tokenizers' pool
        env = {"OMP_NUM_THREADS": str(os.cpu_count()), "TOKENIZERS_PARALLELISM": "true", **env}
    hogs = [subprocess.Popen([sys.executable, "-c", BUSY.format(limit=args.busy_limit)]) for _ in range(busy)]
    try:
        cmd = [sys.executable, __file__, "--child", str(out), "--warmup", str(args.warmup)]
        cmd += ["--legacy"] if args.legacy else []
        run = subprocess.run([*cmd, "--", *argv], env=env, cwd=scratch, capture_output=True, text=True)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    if run.returncode or not out.exists():
        raise RuntimeError(f"the fit failed (exit {run.returncode}):\n{run.stderr[-3000:]}")
    clock = json.loads(out.read_text())
    return clock["steps"] / clock["seconds"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, epilog=ABOUT, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="timed steps per fit")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of (alone, 1 busy, 2 busy); medians kept")
    parser.add_argument("--data", help="the demo data folder (default: written to a temporary folder)")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the fit's environment")
    parser.add_argument("--legacy", action="store_true", help="the settings before the thread defaults")
    parser.add_argument("--busy-limit", type=float, default=900, help="seconds after which a busy process stops")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.child:
        child(args.child, args.warmup, args.legacy, [a for a in rest if a != "--"])
        return 0
    with tempfile.TemporaryDirectory(prefix="valley3-load-") as tmp:
        scratch = Path(tmp)
        data = demo_data(args.data, scratch).resolve()
        rates: dict[int, list[float]] = {0: [], 1: [], 2: []}
        for r in range(args.rounds):
            for busy in rates:
                rates[busy].append(fit(data, scratch, args, busy))
                print(f"round {r + 1}: {busy} busy: {rates[busy][-1]:.2f} steps/s", file=sys.stderr)
    median = {b: sorted(v)[len(v) // 2] for b, v in rates.items()}
    print(f"cores: {os.cpu_count()}, affinity: {len(os.sched_getaffinity(0))}, legacy: {args.legacy}, env: {args.env}")
    print("| busy processes | steps/s (median of rounds) | all rounds | vs alone |")
    print("|---:|---:|---|---:|")
    for busy, rate in median.items():
        print(f"| {busy} | {rate:.2f} | {', '.join(f'{x:.2f}' for x in rates[busy])} | {rate / median[0]:.2f} |")
    ok = median[2] / median[0] >= GOAL
    print(f"{'PASS' if ok else 'FAIL'}  2 busy / alone >= {GOAL:.2f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Test helpers: a tiny checkpoint taught to reply "Score: 7" to a rubric, and `valley3 serve` run on it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from valley3.rewards.judge import DEFAULT_RUBRIC

ROOT = Path(__file__).resolve().parents[1]


def judge_checkpoint(root: Path, steps: int = 40) -> Path:
    """`valley3 fit` of the quickstart model on rubric prompts all answered "Score: 7" (greedy then says so)."""
    from valley3.cli import main

    records = []
    for i in range(16):
        text = DEFAULT_RUBRIC.format(question=f"What colour is item {i}?", reference="Red.", answer=f"answer {i}",
                                     low=0, high=10)
        records.append({"id": f"j{i}", "messages": [{"role": "user", "content": text},
                                                     {"role": "assistant", "content": "Score: 7"}]})
    data = root / "judge.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    main(["fit", "--config", str(ROOT / "experiments/demo/quickstart.yaml"), f"--trainer.max_steps={steps}",
          "--trainer.enable_progress_bar=false", "--trainer.logger=false", f"--trainer.default_root_dir={root}",
          "--trainer.enable_model_summary=false", f"--data.train={data}", "--data.val=null", "--data.predict=null",
          "--data.batch_size=4", "--model.init_args.warmup_steps=0"])
    path = root / "checkpoints/last.ckpt"
    assert path.is_file()
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(ckpt: Path, port: int, timeout: float = 180.0) -> subprocess.Popen:
    """`valley3 serve --ckpt ckpt` on 127.0.0.1:port, returned once /health answers."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT / "src")}
    server = subprocess.Popen([sys.executable, "-m", "valley3.cli", "serve", "--ckpt", str(ckpt), "--port", str(port),
                               "--device", "cpu"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"valley3 serve exited with {server.returncode}: {server.stdout.read()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.5)
    server.kill()
    raise TimeoutError(f"valley3 serve did not answer on port {port} within {timeout} s")


def stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.kill()
    server.wait(timeout=30)

"""Thread settings from the cores really available: affinity and cgroup quota, loader workers, CLI defaults."""

from __future__ import annotations

import json
import os
from pathlib import Path
import subprocess
import sys

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from valley3 import threads
from valley3.data.datamodules import TextDataModule
from valley3.threads import (
    auto_workers,
    available_cores,
    cgroup_cpu_quota,
    intra_op_threads,
    loader_workers,
    resolve_workers,
    set_thread_env,
    worker_init,
)


@pytest.fixture
def machine(monkeypatch, tmp_path):
    """A fake 8-core affinity mask and an empty cgroup tree to fill in."""
    monkeypatch.delenv(threads.CPUS_ENV, raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    return tmp_path


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_a_cgroup_v2_quota_caps_the_cores_and_the_tightest_parent_wins(machine):
    _write(machine / "proc", "0::/job/step\n")
    _write(machine / "fs/job/step/cpu.max", "max 100000\n")
    _write(machine / "fs/job/cpu.max", "250000 100000\n")
    assert cgroup_cpu_quota(str(machine / "proc"), str(machine / "fs")) == 2.5
    assert available_cores(str(machine / "proc"), str(machine / "fs")) == 2  # 2.5 cores: 2 threads never throttle


def test_a_cgroup_v1_quota_caps_the_cores_also_when_only_the_containers_own_part_is_mounted(machine):
    _write(machine / "proc", "4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n")
    _write(machine / "fs/cpu,cpuacct/cpu.cfs_quota_us", "300000\n")  # the container's cgroup mounted at the root
    _write(machine / "fs/cpu,cpuacct/cpu.cfs_period_us", "100000\n")
    assert available_cores(str(machine / "proc"), str(machine / "fs")) == 3


def test_without_a_quota_the_affinity_mask_decides_and_the_env_overrides(machine, monkeypatch):
    _write(machine / "proc", "2:cpu,cpuacct:/\n")
    _write(machine / "fs/cpu,cpuacct/cpu.cfs_quota_us", "-1\n")
    assert available_cores(str(machine / "proc"), str(machine / "fs")) == 8  # not os.cpu_count()
    assert available_cores(str(machine / "missing"), str(machine / "fs")) == 8
    monkeypatch.setenv(threads.CPUS_ENV, "3")
    assert available_cores(str(machine / "proc"), str(machine / "fs")) == 3
    monkeypatch.setenv(threads.CPUS_ENV, "many")
    with pytest.raises(ValueError, match="VALLEY3_CPUS"):
        available_cores()


@pytest.mark.parametrize("cores, workers, intra_op", [(1, 0, 1), (2, 1, 1), (3, 1, 2), (16, 8, 8), (64, 8, 56)])
def test_workers_and_intra_op_threads_share_the_cores(cores, workers, intra_op, monkeypatch):
    assert (auto_workers(cores), intra_op_threads(cores)) == (workers, intra_op)
    monkeypatch.setenv(threads.CPUS_ENV, str(cores))
    assert resolve_workers("auto") == workers and resolve_workers(3) == 3
    with pytest.raises(ValueError, match="num_workers"):
        resolve_workers("many")


def test_thread_env_defaults_keep_what_the_user_set(monkeypatch):
    monkeypatch.setenv(threads.CPUS_ENV, "4")
    env = {"OMP_NUM_THREADS": "3"}
    assert set_thread_env(env) == {"OMP_WAIT_POLICY": "PASSIVE", "TOKENIZERS_PARALLELISM": "false"}
    assert env == {"OMP_NUM_THREADS": "3", "OMP_WAIT_POLICY": "PASSIVE", "TOKENIZERS_PARALLELISM": "false"}
    assert set_thread_env({}) == {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "2",
                                  "TOKENIZERS_PARALLELISM": "false"}


def test_the_cli_sets_the_thread_defaults_before_torch_loads():
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    code = "import os, valley3.cli, torch; print(torch.get_num_threads(), os.environ['OMP_WAIT_POLICY'])"
    out = subprocess.run([sys.executable, "-c", code], env={**env, threads.CPUS_ENV: "2"}, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["1", "PASSIVE"]  # 2 cores: 1 loader worker, 1 intra-op thread (torch alone would take 2)


def test_the_thread_defaults_reach_torch_also_when_it_loaded_first():
    # `import lightning` before valley3.cli (a script, a notebook, benchmarks/load.py) loads torch first: its
    # OpenMP pool kept a thread per core, and beside two busy processes the demo fit ran at 0.09 of its speed.
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    code = "import torch; before = torch.get_num_threads(); import valley3.cli; print(before, torch.get_num_threads())"
    out = subprocess.run([sys.executable, "-c", code], env={**env, threads.CPUS_ENV: "2"}, capture_output=True,
                         text=True, check=True).stdout.split()
    if out[0] == "1":
        pytest.skip("torch's own default here is already 1 thread (one physical core)")
    assert out[1] == "1", f"torch's threads before and after the CLI's defaults: {out}"


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads through /proc")
def test_tokenizing_in_the_cli_process_starts_no_thread_pool(tmp_path):
    # The fast tokenizer's rayon pool (a thread per core) yield-spins after each batch call: beside two busy
    # processes on two cores that cost the demo fit 3/4 of its speed (benchmarks/load.py).
    env = {k: v for k, v in os.environ.items() if k != "TOKENIZERS_PARALLELISM"}
    code = ("import os, sys, valley3.cli\n"
            "from valley3.data.tokenizer import build_tokenizer\n"
            "before = len(os.listdir('/proc/self/task'))\n"
            "tok = build_tokenizer(sys.argv[1], corpus=['a red bag', 'two blue shoes'] * 50, vocab_size=300)\n"
            "tok(['a red bag costs 12 dollars'] * 64)\n"
            "print(before, len(os.listdir('/proc/self/task')))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], env={**env, threads.CPUS_ENV: "2"},
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == out[1], f"threads before training a tokenizer and after a batch tokenisation: {out}"


class _Threads(Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, i):
        return json.dumps([torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS"), threads.decode_threads()])


def test_each_loader_worker_runs_one_thread_in_torch_openmp_and_the_video_decoders(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    monkeypatch.delenv(threads.DECODE_THREADS_ENV, raising=False)
    assert threads.decode_threads() == 0  # the main process leaves the decoder its own choice
    loader = DataLoader(_Threads(), batch_size=None, **loader_workers(1))
    assert loader.persistent_workers and loader.worker_init_fn is worker_init
    assert [json.loads(x) for x in loader] == [[1, "1", 1]] * 2
    assert os.environ["OMP_NUM_THREADS"] == "4"  # the training process keeps its own


def test_datamodules_take_auto_workers_by_default(monkeypatch, tmp_path):
    monkeypatch.setenv(threads.CPUS_ENV, "6")
    assert TextDataModule(train=str(tmp_path / "t.jsonl")).num_workers == 3
    assert TextDataModule(train=str(tmp_path / "t.jsonl"), num_workers=0).num_workers == 0

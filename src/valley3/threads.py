"""The CPU budget: cores this process may really use (affinity, cgroup quota) and the thread settings drawn from it."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import MutableMapping
from pathlib import Path

CPUS_ENV = "VALLEY3_CPUS"  # overrides the core budget, e.g. to leave cores to other jobs on a shared node
DECODE_THREADS_ENV = "VALLEY3_DECODE_THREADS"  # threads a video decoder may start (0: the decoder's own choice)
MAX_AUTO_WORKERS = 8


def available_cores(proc_cgroup: str = "/proc/self/cgroup", cgroup_root: str = "/sys/fs/cgroup") -> int:
    """Cores this process may run on: its CPU affinity, capped by its cgroup's CPU quota, or `$VALLEY3_CPUS`.

    `os.cpu_count()` counts the machine's cores, which a container or a scheduler's affinity mask may not grant;
    threads beyond the grant only wait on each other.

    Args:
        proc_cgroup: the file naming this process's cgroups.
        cgroup_root: where the cgroup file systems are mounted.
    """
    override = os.environ.get(CPUS_ENV, "").strip()
    if override:
        if not override.isdigit() or int(override) < 1:
            raise ValueError(f"${CPUS_ENV} must be a positive integer, got {override!r}")
        return int(override)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cgroup_cpu_quota(proc_cgroup, cgroup_root)
    return max(1, min(cores, math.floor(quota))) if quota is not None else cores


def cgroup_cpu_quota(proc_cgroup: str = "/proc/self/cgroup", cgroup_root: str = "/sys/fs/cgroup") -> float | None:
    """The tightest CPU quota, in cores, over this process's cgroup and its parents (v2 `cpu.max` or v1
    `cpu.cfs_quota_us` / `cpu.cfs_period_us`); None when there is none or it cannot be read.

    Args:
        proc_cgroup: the file naming this process's cgroups.
        cgroup_root: where the cgroup file systems are mounted.
    """
    try:
        lines = Path(proc_cgroup).read_text().splitlines()
    except OSError:
        return None
    quotas = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2: one unified hierarchy
            mounts = [Path(cgroup_root), Path(cgroup_root) / "unified"]
        elif "cpu" in controllers.split(","):
            mounts = [Path(cgroup_root) / controllers, Path(cgroup_root) / "cpu"]
        else:
            continue
        for mount in mounts:
            quotas += [q for q in map(_quota, _ancestors(mount, path)) if q is not None]
    return min(quotas) if quotas else None


def _ancestors(mount: Path, path: str) -> list[Path]:
    # Inside a container the cgroup path often names the host's hierarchy while only its own part is mounted
    # at the root, so the mount itself is always looked at too.
    parts = [p for p in path.split("/") if p]
    return [mount.joinpath(*parts[:i]) for i in range(len(parts), -1, -1)]


def _quota(folder: Path) -> float | None:
    try:
        if (folder / "cpu.max").exists():
            limit, period = (folder / "cpu.max").read_text().split()[:2]
            return None if limit == "max" else int(limit) / int(period)
        if (folder / "cpu.cfs_quota_us").exists():
            limit = int((folder / "cpu.cfs_quota_us").read_text())
            return None if limit <= 0 else limit / int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None


def auto_workers(cores: int | None = None) -> int:
    """DataLoader worker processes for `num_workers: auto`: half the cores (at most 8), none on one core.

    Args:
        cores: the core budget (default `available_cores()`).
    """
    cores = available_cores() if cores is None else cores
    return 0 if cores < 2 else min(MAX_AUTO_WORKERS, cores // 2)


def resolve_workers(num_workers: int | str) -> int:
    """A DataModule's `num_workers`: a count, or "auto" (`auto_workers()`).

    Args:
        num_workers: a non-negative count or "auto".
    """
    if num_workers == "auto":
        return auto_workers()
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"num_workers must be a non-negative integer or 'auto', got {num_workers!r}")
    return num_workers


def loader_workers(num_workers: int) -> dict:
    """DataLoader arguments for `num_workers` worker processes: kept across epochs, one thread each.

    Args:
        num_workers: worker processes (0: load in the training process).
    """
    if num_workers == 0:
        return {"num_workers": 0}
    return {"num_workers": num_workers, "persistent_workers": True, "worker_init_fn": worker_init}


def intra_op_threads(cores: int | None = None) -> int:
    """Torch's intra-op threads: the cores left over by `auto_workers` (the loader's workers get the rest).

    Args:
        cores: the core budget (default `available_cores()`).
    """
    cores = available_cores() if cores is None else cores
    return max(1, cores - auto_workers(cores))


def set_thread_env(env: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Thread defaults, best set before torch loads (after, only torch's thread count still changes); what the
    user already set is kept.

    OpenMP threads that spin while waiting for each other hold their cores; on a shared machine a descheduled
    thread then stalls the rest at every parallel region, and a step runs 10-30x slower than alone. A passive
    wait policy sleeps instead, and fewer threads leave room for the loader's workers. OpenMP reads these once,
    when torch loads, so setting them later changes nothing to the wait policy; where torch is already loaded
    (a script or notebook that imported lightning or torch first) its intra-op thread count is set directly, as
    a pool of spinning threads costs most (benchmarks/load.py). The fast tokenizers' thread pool (Rust rayon, one
    thread per core) is turned off the same way: its idle threads yield-spin after every call, and beside two
    busy processes on two cores they cost the training process three quarters of its speed (benchmarks/load.py).

    Args:
        env: the environment to fill in (default `os.environ`).

    Returns:
        the variables this call set.
    """
    env = os.environ if env is None else env
    wanted = {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": str(intra_op_threads()),
              "TOKENIZERS_PARALLELISM": "false"}
    added = {k: v for k, v in wanted.items() if not env.get(k)}
    env.update(added)
    if "OMP_NUM_THREADS" in added and env is os.environ and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(added["OMP_NUM_THREADS"]))
    return added


def worker_init(worker_id: int) -> None:
    """DataLoader `worker_init_fn`: one thread per worker (torch, OpenMP libraries loaded later, video decoders,
    tokenizers).

    Workers run side by side with the training process; a worker whose decoder starts a thread per core would
    take those cores from the training step.

    Args:
        worker_id: the worker's index (unused; the DataLoader passes it).
    """
    import torch

    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ[DECODE_THREADS_ENV] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # a fast tokenizer's batch calls would start a thread pool


def decode_threads() -> int:
    """Threads a video decoder may start: 1 in loader workers, else `$VALLEY3_DECODE_THREADS` (0: its choice)."""
    value = os.environ.get(DECODE_THREADS_ENV, "0")
    return int(value) if value.isdigit() else 0

"""One server process per CPU the container is given, all listening on one port.

Python runs one thread of Python at a time, so a server uses more than one core only with
more processes. The parent binds the port (one socket per worker in a SO_REUSEPORT group on
Linux, so the kernel spreads new connections over the workers), imports the runtime's
modules (their pages are then shared), and forks one worker per CPU; each worker loads the
model, runs its own event loop and its own batching, and accepts from its socket. The
parent only forwards SIGTERM and SIGINT to the workers, restarts a worker that dies, and
exits when they have drained. It holds the listening sockets so that a restarted worker
takes over its predecessor's; when it stops, it closes them, since a listening socket stays
open (and the kernel keeps queueing connections on it) while any process holds it.

"Every CPU" is cgroup aware: the CPUs this process may run on, capped by the cgroup's CPU
quota (`docker run --cpus 1.5` or a Kubernetes CPU limit of 1500m gives 2 workers; the
second is throttled, not idle).
"""

from __future__ import annotations

import math
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def quota(
    cpu_max: str | None, cfs_quota: str | None = None, cfs_period: str | None = None
) -> float | None:
    """CPUs allowed by a cgroup's quota: v2 `cpu.max` ("150000 100000", "max 100000") or v1
    `cpu.cfs_quota_us` / `cpu.cfs_period_us` ("-1" for none). None when there is no quota."""
    if cpu_max is not None:
        parts = cpu_max.split()
        if len(parts) == 2 and parts[0] != "max" and int(parts[1]) > 0:
            return int(parts[0]) / int(parts[1])
        return None
    if cfs_quota is not None and cfs_period is not None and int(cfs_quota) > 0:
        return int(cfs_quota) / int(cfs_period)
    return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _cgroup_v2_quotas(proc_cgroup: str | None, root: Path) -> list[float]:
    """The quotas of this process's cgroup and its ancestors (each one limits it)."""
    found = []
    for line in (proc_cgroup or "").splitlines():
        if line.startswith("0::"):
            folder = root / line[3:].strip().lstrip("/")
            for level in (folder, *folder.parents):
                if level == root.parent:
                    break
                limit = quota(_read(level / "cpu.max"))
                if limit is not None:
                    found.append(limit)
    return found


def available_cpus(root: Path = CGROUP) -> int:
    cpus = len(os.sched_getaffinity(0))
    limits = _cgroup_v2_quotas(_read(Path("/proc/self/cgroup")), root)
    v1 = quota(
        None, _read(root / "cpu" / "cpu.cfs_quota_us"), _read(root / "cpu" / "cpu.cfs_period_us")
    )
    if v1 is not None:
        limits.append(v1)
    if limits:
        cpus = min(cpus, math.ceil(min(limits)))
    return max(1, cpus)


def supervise(
    workers: int,
    work: Callable[[int], int],
    started: Callable[[int], bool],
    release: Callable[[], None],
) -> int:
    """Fork `workers` processes running `work(index)`; the exit status for the parent.

    `started(index)` says whether a worker came up (loaded its model and served). A worker
    that dies before that, say on a model that cannot be loaded, stops the server with its
    status: restarting it would fail the same way. One that dies later is restarted.
    `release()` runs once in the parent when the server stops, after the workers are told:
    it closes what the parent kept for restarts (the listening sockets).
    """
    children: dict[int, int] = {}
    stopping = False
    status = 0

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        for pid in children:
            os.kill(pid, signal.SIGTERM)
        if not stopping:
            stopping = True
            release()

    def spawn(index: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker: its own handlers, its own exit (no parent's cleanup)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 1
            try:
                code = work(index)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children[pid] = index

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for index in range(workers):
        spawn(index)
    while children:
        pid, wait_status = os.wait()  # a signal runs `stop`, then the wait resumes (PEP 475)
        index = children.pop(pid)
        code = os.waitstatus_to_exitcode(wait_status)
        if stopping:
            continue
        if not started(index):
            status = code or 1
            stop(signal.SIGTERM, None)
            continue
        print(f"worker {index} exited ({code}); starting it again", file=sys.stderr)
        spawn(index)
    return status

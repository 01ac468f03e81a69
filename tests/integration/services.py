"""Real services the ecosystem tests start on loopback (Dask, MLflow), stopped by PID."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration.server_helpers import free_port

BIN = Path(sys.executable).parent  # the venv's own `dask` and `mlflow` commands


@dataclass
class Service:
    """One process we started: its PID, its log, and how to stop it (by that PID only)."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.is_file() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop the process by its PID, then any child it left behind (by theirs)."""
        if self.process.poll() is not None:
            return
        children = _children(self.pid)
        os.kill(self.pid, sig)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            self.process.wait(timeout=20)
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)


def _children(pid: int) -> list[int]:
    """PIDs whose parent is `pid` (mlflow server runs uvicorn and a job runner)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if fields and int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def start(name: str, command: Sequence[str], folder: Path, env: dict[str, str]) -> Service:
    log = folder / f"{name}.log"
    with log.open("wb") as handle:
        process = subprocess.Popen(
            list(command), stdout=handle, stderr=subprocess.STDOUT, cwd=folder, env=env
        )
    return Service(name, process, log)


def wait_for(
    what: str, ready: Callable[[], bool], services: Sequence[Service], limit: float
) -> None:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if ready():
            return
        for service in services:
            if service.process.poll() is not None:
                raise RuntimeError(f"{service.name} exited:\n{service.tail()}")
        time.sleep(0.2)
    logs = "\n".join(f"--- {s.name}\n{s.tail()}" for s in services)
    raise TimeoutError(f"{what} not ready after {limit} s\n{logs}")


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without variables that would point services elsewhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASK_", "MLFLOW_", "AWS_"))}
    env.update(extra)
    return env


@dataclass
class DaskCluster:
    address: str
    scheduler: Service
    workers: list[Service] = field(default_factory=list)

    def worker_address(self, index: int) -> str:
        """The address the scheduler knows worker `index` by (workers are named worker-N)."""
        from distributed import Client

        with Client(self.address, timeout=30, set_as_default=False) as client:  # type: ignore[no-untyped-call]
            workers = client.scheduler_info(n_workers=-1)["workers"]
            return str(next(a for a, w in workers.items() if w["name"] == f"worker-{index}"))


@contextmanager
def dask_cluster(
    folder: Path,
    workers: int = 2,
    env: dict[str, str] | None = None,
    worker_env: dict[str, str] | None = None,
) -> Iterator[DaskCluster]:
    """`dask scheduler` and `dask worker`s (one thread, no nanny: a killed worker stays dead).
    `worker_env` is the workers' environment when it differs from the scheduler's."""
    folder.mkdir(parents=True, exist_ok=True)
    environment = env or clean_env()
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = str(BIN / "dask")
    scheduler = start(
        "scheduler",
        [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        folder,
        environment,
    )
    cluster = DaskCluster(address, scheduler)
    try:
        for i in range(workers):
            cluster.workers.append(
                start(
                    f"worker-{i}",
                    [
                        dask,
                        "worker",
                        address,
                        "--nthreads",
                        "1",
                        "--no-nanny",
                        "--no-dashboard",
                        "--host",
                        "127.0.0.1",
                        "--name",
                        f"worker-{i}",
                    ],
                    folder,
                    worker_env or environment,
                )
            )
        services = [scheduler, *cluster.workers]
        wait_for("dask cluster", lambda: _count(address) == workers, services, 90)
        yield cluster
    finally:
        for service in [*cluster.workers, scheduler]:
            service.stop()


def _count(address: str) -> int:
    from distributed import Client

    try:
        with Client(address, timeout=2, set_as_default=False) as client:  # type: ignore[no-untyped-call]
            return len(client.nthreads())
    except (OSError, TimeoutError):
        return -1


@contextmanager
def mlflow_server(folder: Path) -> Iterator[str]:
    """`mlflow server` with a SQLite store and local artifacts; its tracking URI."""
    import urllib.request

    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = start(
        "mlflow",
        [
            str(BIN / "mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{folder / 'mlflow.db'}",
            "--artifacts-destination",
            str(folder / "artifacts"),
        ],
        folder,
        clean_env(),
    )

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    try:
        wait_for("mlflow server", healthy, [server], 240)
        yield uri
    finally:
        server.stop()

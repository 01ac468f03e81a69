"""A search on a real Dask cluster (`dask scheduler` + two `dask worker`s on loopback).

The fits must run on the cluster, give the local search's model byte for byte, and every
way the cluster can fail must end the run with an error naming the scheduler, not hang.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.integration.helpers import write_spec
from tests.integration.server_helpers import free_port
from tests.integration.services import DaskCluster, clean_env, dask_cluster

pytest.importorskip("distributed", reason="needs gitops-mlops[dask] (distributed)")
pytestmark = pytest.mark.slow

SEARCH = """task: classification
data:
  train: {builtin: breast_cancer}
model:
  estimator: ESTIMATOR
  params: {n_estimators: 25}
  allow_modules: [mymodels]
  search:
    backend: dask
    cv: 3
    space: {max_depth: [2, 4, null], min_samples_leaf: [1, 4]}
"""
FOREST = "sklearn.ensemble.RandomForestClassifier"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    with dask_cluster(tmp_path_factory.mktemp("dask")) as running:
        yield running


def spec_for(folder: Path, estimator: str = FOREST, backend: str = "dask") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    body = SEARCH.replace("ESTIMATOR", estimator).replace("backend: dask", f"backend: {backend}")
    return write_spec(folder, body)


def mlops(
    *args: str, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """The real `mlops` command in its own process; the timeout turns a hang into a failure."""
    return subprocess.run(
        [sys.executable, "-m", "gitops_mlops", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def train(spec: Path, out: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return mlops("run", str(spec), "--until", "train", "--out", str(out), env=env)


def task_prefixes(cluster: DaskCluster) -> dict[str, float]:
    """Task names the scheduler has run, with the compute seconds spent on each."""
    from distributed import Client

    def seen(dask_scheduler: Any) -> dict[str, float]:
        return {
            name: float(prefix.all_durations.get("compute", 0.0))
            for name, prefix in dask_scheduler.task_prefixes.items()
        }

    with Client(cluster.address, timeout=30, set_as_default=False) as client:  # type: ignore[no-untyped-call]
        found: dict[str, float] = client.run_on_scheduler(seen)
        return found


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("local")
    spec = spec_for(folder / "project", backend="local")
    result = train(spec, folder / "run", clean_env())
    assert result.returncode == 0, result.stdout + result.stderr
    return folder / "run"


def manifest(run: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((run / "model" / "manifest.json").read_text())
    return loaded


def test_the_search_runs_on_the_cluster_and_gives_the_local_model(
    cluster: DaskCluster, local_run: Path, tmp_path: Path
) -> None:
    spec = spec_for(tmp_path / "project")
    before = task_prefixes(cluster)
    result = train(spec, tmp_path / "run", clean_env(MLOPS_DASK_SCHEDULER=cluster.address))
    assert result.returncode == 0, result.stdout + result.stderr
    after = task_prefixes(cluster)
    fits = {k: v - before.get(k, 0) for k, v in after.items() if "fit_and_score" in k}
    assert sum(fits.values()) > 0, f"no fit ran on the cluster: {after}"
    # A forest's trees stay inside their fit's task (one task per tree is 3x slower).
    assert not any("build_trees" in k for k in after), after

    ours, theirs = manifest(tmp_path / "run"), manifest(local_run)
    assert ours["best_params"] == theirs["best_params"]
    assert ours["cv_best_score"] == theirs["cv_best_score"]
    assert ours["model_version"] == theirs["model_version"]
    model = (tmp_path / "run" / "model" / "model.skops").read_bytes()
    assert model == (local_run / "model" / "model.skops").read_bytes()


def test_the_spec_can_name_the_scheduler(cluster: DaskCluster, tmp_path: Path) -> None:
    spec = spec_for(tmp_path / "project")
    text = spec.read_text().replace(
        "backend: dask", f'backend: dask\n    scheduler: "{cluster.address}"'
    )
    spec.write_text(text)
    result = train(spec, tmp_path / "run", clean_env(MLOPS_DASK_SCHEDULER="tcp://127.0.0.1:9"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_unreachable_scheduler_is_a_clear_error(tmp_path: Path) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    spec = spec_for(tmp_path / "project")
    env = clean_env(MLOPS_DASK_SCHEDULER=address, MLOPS_DASK_TIMEOUT="3")
    result = train(spec, tmp_path / "run", env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"cannot reach the Dask scheduler at {address} within 3 s" in result.stderr
    assert "Traceback" not in result.stderr


@contextmanager
def listener(answer: bytes | None = None) -> Iterator[str]:
    """A port that accepts connections and sends `answer` to whatever it is sent, or never
    answers at all (None: a half-dead host, a proxy that accepts for anyone)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(0.2)
        accepted: list[socket.socket] = []
        stop = threading.Event()

        def serve() -> None:
            while not stop.is_set():
                try:
                    connection = server.accept()[0]
                except TimeoutError:
                    continue
                accepted.append(connection)
                if answer is not None:
                    connection.settimeout(5)
                    with contextlib.suppress(OSError):
                        connection.recv(4096)
                        connection.sendall(answer)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            yield f"tcp://127.0.0.1:{server.getsockname()[1]}"
        finally:
            stop.set()
            thread.join()
            for connection in accepted:
                connection.close()


def test_a_scheduler_that_accepts_and_never_answers_ends_within_the_timeout(
    tmp_path: Path,
) -> None:
    spec = spec_for(tmp_path / "project")
    with listener() as address:
        env = clean_env(MLOPS_DASK_SCHEDULER=address, MLOPS_DASK_TIMEOUT="3")
        started = time.monotonic()
        result = mlops("run", str(spec), "--until", "train", env=env, timeout=120)
        took = time.monotonic() - started
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"the Dask scheduler at {address} accepted the connection but did not answer" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
    assert took < 60, took  # 3 s and a second, plus the run's own start


# What an HTTP server (the dashboard's port, an MLflow server, a proxy) answers to bytes that
# are not HTTP: distributed read its first 8 bytes as a frame length (exabytes).
BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def test_an_http_server_is_not_a_dask_scheduler(tmp_path: Path) -> None:
    spec = spec_for(tmp_path / "project")
    with listener(BAD_REQUEST) as address:
        env = clean_env(MLOPS_DASK_SCHEDULER=address, MLOPS_DASK_TIMEOUT="5")
        result = train(spec, tmp_path / "run", env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{address} is not a Dask scheduler" in result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr


def test_a_workers_address_is_not_the_schedulers(cluster: DaskCluster, tmp_path: Path) -> None:
    worker = cluster.worker_address(0)
    env = clean_env(MLOPS_DASK_SCHEDULER=worker, MLOPS_DASK_TIMEOUT="5")
    result = train(spec_for(tmp_path / "project"), tmp_path / "run", env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{worker} is not a Dask scheduler: it answers as a Dask Worker" in result.stderr


@pytest.mark.parametrize(
    ("address", "said"),
    [
        ("ucx://127.0.0.1:8786", "'ucx://127.0.0.1:8786' is not a Dask scheduler address"),
        ("inproc://x", "'inproc://x' is not a Dask scheduler address"),
        ("tcp://admin:s3cretpw@127.0.0.1:8786", "'tcp://127.0.0.1:8786' has user info"),
        ("tls://127.0.0.1:8786", "tls://127.0.0.1:8786 is a tls:// address, but Dask has no"),
    ],
)
def test_addresses_we_cannot_use_are_refused_before_connecting(
    tmp_path: Path, address: str, said: str
) -> None:
    spec = spec_for(tmp_path / "project")
    result = train(spec, tmp_path / "run", clean_env(MLOPS_DASK_SCHEDULER=address))
    assert result.returncode == 1, result.stdout + result.stderr  # not 2: the spec is valid
    assert said in result.stderr, result.stderr
    # Each says what would work: the forms we take, or the TLS settings a tls:// one needs.
    assert "expected tcp://HOST:PORT" in result.stderr or (
        "DASK_DISTRIBUTED__COMM__TLS__CA_FILE" in result.stderr
    ), result.stderr
    assert "(the address is from MLOPS_DASK_SCHEDULER)" in result.stderr
    assert "s3cretpw" not in result.stdout + result.stderr
    assert "training failed" not in result.stderr and "Traceback" not in result.stderr


def test_an_error_about_the_spec_s_address_is_located_there(tmp_path: Path) -> None:
    spec = spec_for(tmp_path / "project")
    spec.write_text(
        spec.read_text().replace("backend: dask", 'backend: dask\n    scheduler: "tls://h:8786"')
    )
    line = 1 + spec.read_text().splitlines().index('    scheduler: "tls://h:8786"')
    result = train(spec, tmp_path / "run", clean_env())
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{spec}:{line}:16: tls://h:8786 is a tls:// address" in result.stderr


def test_without_distributed_installed_says_what_to_install(tmp_path: Path) -> None:
    """As on a runner with gitops-mlops[ml] only: `distributed` cannot be imported."""
    blocker = tmp_path / "site"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\n\n\n"
        "class NoDistributed:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'distributed' or name.startswith('distributed.'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "        return None\n\n\n"
        "sys.meta_path.insert(0, NoDistributed())\n"
    )
    env = clean_env(MLOPS_DASK_SCHEDULER="tcp://127.0.0.1:8786", PYTHONPATH=str(blocker))
    probe = subprocess.run(
        [sys.executable, "-c", "import distributed"], env=env, capture_output=True, check=False
    )
    assert probe.returncode != 0, "the blocker did not block"
    result = train(spec_for(tmp_path / "project"), tmp_path / "run", env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "needs distributed: pip install 'gitops-mlops[dask]'" in result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr


def test_no_scheduler_given_says_how_to_set_one(tmp_path: Path) -> None:
    result = train(spec_for(tmp_path / "project"), tmp_path / "run", clean_env())
    assert result.returncode == 1
    assert "set MLOPS_DASK_SCHEDULER=tcp://HOST:8786" in result.stderr


def estimator_module(folder: Path) -> Path:
    """A folder holding `mymodels.Forest`, a module only the processes given it can import."""
    folder.mkdir()
    (folder / "mymodels.py").write_text(
        "from sklearn.ensemble import RandomForestClassifier\n\n\n"
        "class Forest(RandomForestClassifier):\n    pass\n"
    )
    return folder


def test_workers_without_the_estimators_module(cluster: DaskCluster, tmp_path: Path) -> None:
    modules = estimator_module(tmp_path / "mods")
    spec = spec_for(tmp_path / "project", estimator="mymodels.Forest")
    # Importable here (PYTHONPATH), not on the workers, which were started without it.
    env = clean_env(MLOPS_DASK_SCHEDULER=cluster.address, PYTHONPATH=str(modules))
    result = train(spec, tmp_path / "run", env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"of {cluster.address} cannot import 'mymodels'" in result.stderr
    assert result.stderr.count("tcp://127.0.0.1:") == 3, result.stderr  # two workers, scheduler


def test_a_scheduler_without_the_estimators_module(tmp_path: Path) -> None:
    """The scheduler unpickles each fit's task, so it needs the estimator's module too."""
    modules = estimator_module(tmp_path / "mods")
    spec = spec_for(tmp_path / "project", estimator="mymodels.Forest")
    with dask_cluster(tmp_path / "cluster", worker_env=clean_env(PYTHONPATH=str(modules))) as own:
        env = clean_env(MLOPS_DASK_SCHEDULER=own.address, PYTHONPATH=str(modules))
        result = train(spec, tmp_path / "run", env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"the Dask scheduler at {own.address} cannot import 'mymodels'" in result.stderr
    assert "Traceback" not in result.stderr


def wait_until_fitting(cluster: DaskCluster, limit: float = 120) -> None:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if any("fit_and_score" in k for k in task_prefixes(cluster)):
            return
        time.sleep(0.2)
    raise TimeoutError("the search never reached the cluster")


def run_in_background(
    spec: Path, out: Path, env: dict[str, str]
) -> tuple[threading.Thread, list[subprocess.CompletedProcess[str]]]:
    done: list[subprocess.CompletedProcess[str]] = []
    thread = threading.Thread(target=lambda: done.append(train(spec, out, env)))
    thread.start()
    return thread, done


BIG_SEARCH = "space: {max_depth: [2, 3, 4, 5, 6, 8, 10, null], min_samples_leaf: [1, 2, 4, 8]}"


def big_spec(folder: Path, backend: str = "dask") -> Path:
    spec = spec_for(folder, backend=backend)
    small = "space: {max_depth: [2, 4, null], min_samples_leaf: [1, 4]}"
    spec.write_text(spec.read_text().replace(small, BIG_SEARCH))
    return spec


def test_a_worker_killed_mid_search_is_a_clear_error(tmp_path: Path) -> None:
    """The data joblib scattered to a worker dies with it: the search cannot finish."""
    with dask_cluster(tmp_path / "cluster") as own:
        env = clean_env(MLOPS_DASK_SCHEDULER=own.address, MLOPS_DASK_TIMEOUT="5")
        thread, done = run_in_background(big_spec(tmp_path / "project"), tmp_path / "run", env)
        wait_until_fitting(own)
        killed = own.worker_address(0)
        own.workers[0].stop(signal.SIGKILL)  # by its PID
        thread.join(timeout=300)
    assert done, "the run did not end"
    assert done[0].returncode == 1, done[0].stdout + done[0].stderr
    assert f"Dask worker {killed} of {own.address} left mid-search" in done[0].stderr
    assert "Traceback" not in done[0].stderr


def test_every_worker_dying_mid_search_is_a_clear_error(tmp_path: Path) -> None:
    with dask_cluster(tmp_path / "cluster") as own:
        env = clean_env(MLOPS_DASK_SCHEDULER=own.address, MLOPS_DASK_TIMEOUT="5")
        thread, done = run_in_background(big_spec(tmp_path / "project"), tmp_path / "run", env)
        wait_until_fitting(own)
        for worker in own.workers:
            worker.stop(signal.SIGKILL)
        thread.join(timeout=300)
    assert done, "the run did not end"
    assert done[0].returncode == 1, done[0].stdout + done[0].stderr
    assert f"of {own.address} left mid-search" in done[0].stderr
    assert "Traceback" not in done[0].stderr


def test_the_scheduler_lost_mid_search_is_a_clear_error(tmp_path: Path) -> None:
    with dask_cluster(tmp_path / "cluster") as own:
        env = clean_env(MLOPS_DASK_SCHEDULER=own.address, MLOPS_DASK_TIMEOUT="5")
        thread, done = run_in_background(big_spec(tmp_path / "project"), tmp_path / "run", env)
        wait_until_fitting(own)
        own.scheduler.stop(signal.SIGKILL)  # by its PID
        thread.join(timeout=300)
    assert done, "the run did not end"
    assert done[0].returncode == 1, done[0].stdout + done[0].stderr
    assert f"lost the Dask scheduler at {own.address} mid-search" in done[0].stderr
    assert "cancelled for reason" not in done[0].stderr and "Traceback" not in done[0].stderr


def test_workers_that_die_during_the_import_check_are_said_to_have_left(tmp_path: Path) -> None:
    """Not 'cannot import': the workers are gone, and installing modules would not help."""
    modules = tmp_path / "mods"
    modules.mkdir()
    (modules / "mymodels.py").write_text(
        "import os\n\n"
        "if os.environ.get('DIE_ON_IMPORT'):  # the workers' environment only\n"
        "    os._exit(1)\n\n"
        "from sklearn.ensemble import RandomForestClassifier\n\n\n"
        "class Forest(RandomForestClassifier):\n    pass\n"
    )
    spec = spec_for(tmp_path / "project", estimator="mymodels.Forest")
    with dask_cluster(
        tmp_path / "cluster",
        env=clean_env(PYTHONPATH=str(modules)),
        worker_env=clean_env(PYTHONPATH=str(modules), DIE_ON_IMPORT="1"),
    ) as own:
        workers = sorted(own.worker_address(i) for i in range(2))
        env = clean_env(
            MLOPS_DASK_SCHEDULER=own.address, PYTHONPATH=str(modules), MLOPS_DASK_TIMEOUT="5"
        )
        result = train(spec, tmp_path / "run", env)
    assert result.returncode == 1, result.stdout + result.stderr
    said = f"Dask workers {', '.join(workers)} of {own.address} left during the check"
    assert said in result.stderr, result.stderr
    assert "cannot import" not in result.stderr and "Traceback" not in result.stderr

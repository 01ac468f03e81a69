"""A hyper-parameter search's fits on a Dask cluster, through joblib's Dask backend.

scikit-learn parallelises a search with joblib; `distributed` ships the joblib backend that
sends each fit to the cluster as a task. We only connect, check the workers can run the
fits, watch that the cluster stays usable, and turn its failures into clear errors: every
wait is bounded by `timeout` seconds, so a lost cluster ends the run rather than hanging it.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from gitops_mlops.errors import MlopsError

SCHEDULER_ENV = "MLOPS_DASK_SCHEDULER"
TIMEOUT_ENV = "MLOPS_DASK_TIMEOUT"
DEFAULT_TIMEOUT = 30.0
# Versions that must match between here and the workers for the fits to be the same.
SAME_VERSIONS = ("scikit-learn",)


class DaskError(MlopsError):
    """The cluster could not run the search; the message names the scheduler."""


@dataclass(frozen=True)
class DaskSettings:
    address: str
    timeout: float  # seconds: connecting, waiting for a worker, a cluster without workers


def settings(scheduler: str | None, env: Mapping[str, str]) -> DaskSettings:
    """The spec's scheduler, else MLOPS_DASK_SCHEDULER; MLOPS_DASK_TIMEOUT bounds waits."""
    address = scheduler or env.get(SCHEDULER_ENV, "").strip()
    if not address:
        raise DaskError(
            "model.search.backend is dask, but no scheduler is given: set "
            f"{SCHEDULER_ENV}=tcp://HOST:8786 (or model.search.scheduler in the spec)"
        )
    raw = env.get(TIMEOUT_ENV, "").strip()
    try:
        timeout = float(raw) if raw else DEFAULT_TIMEOUT
    except ValueError:
        raise DaskError(f"{TIMEOUT_ENV}={raw!r} is not a number of seconds") from None
    if not 0 < timeout <= 3600:
        raise DaskError(f"{TIMEOUT_ENV}={raw!r} must be between 0 and 3600 seconds")
    return DaskSettings(address, timeout)


@contextmanager
def search_on_cluster(dask: DaskSettings, modules: Sequence[str]) -> Iterator[None]:
    """Inside this block, joblib (and so scikit-learn's searches) run on the cluster.

    `modules` are the modules the fits unpickle (the estimator's, its steps', the search's
    own): every worker imports them before any fit, which is the check that it can (a
    worker that cannot is named) and its warm-up, done on all workers at once instead of
    inside each one's first fit. Every worker must run the scikit-learn version we run.
    The training rows go to the cluster once per search (joblib scatters them to one
    worker; the others fetch them from there): measured, 0.03 s of transfers in all.
    """
    import joblib
    from distributed import Client, KilledWorker

    client = _connect(Client, dask)
    watch = _Watch(client, dask)
    try:
        _check_workers(client, dask, modules)
        watch.start()
        with joblib.parallel_config(backend=_backend(client, dask)):
            yield
        watch.refuse_losses()
    except KilledWorker as err:
        raise DaskError(
            f"a fit killed the Dask workers it ran on ({dask.address}): {err}; "
            "see the workers' logs (out of memory?)"
        ) from None
    except ModuleNotFoundError as err:
        raise DaskError(
            f"a Dask worker of {dask.address} cannot import {err.name!r}; "
            "install it where the workers run"
        ) from None
    except (OSError, TimeoutError, _cancelled()) as err:
        raise DaskError(watch.explain(err)) from None
    finally:
        watch.stop()
        client.close(timeout=dask.timeout)


def _backend(client: Any, dask: DaskSettings) -> Any:
    """joblib's Dask backend, except that each fit runs its own parallel loops (a forest's
    trees, a column transformer's columns) in its task, one thread, like a local fit.

    joblib's default sends every inner loop iteration to the cluster as one more task (one
    per tree), which made a 24-fit forest search 3x slower than running it on one core.
    """
    from joblib._dask import DaskDistributedBackend

    class FitsOnCluster(DaskDistributedBackend):  # type: ignore[misc]
        async def _to_func_args(self, func: Any) -> tuple[Any, list[Any]]:
            batch, tasks = await super()._to_func_args(func)
            return batch, [(_in_sequence(f), args, kwargs) for f, args, kwargs in tasks]

    return FitsOnCluster(client=client, wait_for_workers_timeout=dask.timeout)


def _in_sequence(function: Any) -> Any:
    """`function`, run with joblib's sequential backend. A closure on purpose: distributed
    sends it by value (cloudpickle), so the workers need joblib but not gitops-mlops."""

    def run(*args: Any, **kwargs: Any) -> Any:
        import joblib

        with joblib.parallel_config(backend="sequential"):
            return function(*args, **kwargs)

    return run


def _cancelled() -> type[BaseException]:
    from distributed.client import FutureCancelledError

    return FutureCancelledError


def _connect(client_class: Any, dask: DaskSettings) -> Any:
    try:
        return client_class(
            dask.address, timeout=dask.timeout, set_as_default=False, direct_to_workers=False
        )
    except (OSError, TimeoutError) as err:
        raise DaskError(
            f"cannot reach the Dask scheduler at {dask.address} within {dask.timeout:g} s "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'no answer'}); "
            f"check {SCHEDULER_ENV} and that the scheduler is up"
        ) from None
    except ValueError as err:
        raise DaskError(f"{dask.address!r} is not a Dask scheduler address: {err}") from None


def _check_workers(client: Any, dask: DaskSettings, modules: Sequence[str]) -> None:
    try:
        client.wait_for_workers(1, timeout=dask.timeout)
    except TimeoutError:
        raise DaskError(
            f"no Dask worker joined the scheduler at {dask.address} within {dask.timeout:g} s; "
            "start workers (`dask worker ADDRESS`)"
        ) from None
    # The scheduler unpickles each task too (its first search imported scikit-learn and
    # pandas there, 1.9 s before the first fit could start): it imports at the same time.
    with ThreadPoolExecutor(1) as pool:
        on_scheduler = pool.submit(client.run_on_scheduler, _importer(), list(modules))
        said = client.run(_importer(), list(modules), on_error="return")
        try:
            scheduler_said = on_scheduler.result()
        except Exception as err:  # the check itself failed there
            scheduler_said = err
    problems = {w: p for w, p in ((w, _import_problem(v)) for w, v in said.items()) if p}
    if problems:
        problem = min(problems.values())
        workers = sorted(w for w, p in problems.items() if p == problem)
        raise DaskError(
            f"Dask workers {', '.join(workers)} of {dask.address} cannot import {problem}, "
            "which the estimator needs; install it where the workers run"
        )
    missing = _import_problem(scheduler_said)
    if missing:
        raise DaskError(
            f"the Dask scheduler at {dask.address} cannot import {missing}, which the "
            "estimator needs (the scheduler unpickles each fit's task); install it there too"
        )
    for package in SAME_VERSIONS:
        ours = importlib.metadata.version(package)
        theirs = client.run(importlib.metadata.version, package, on_error="return")
        other = {w: v for w, v in theirs.items() if v != ours}
        if other:
            shown = ", ".join(
                f"{w} has {'none' if _failed(v) else v}" for w, v in sorted(other.items())
            )
            raise DaskError(
                f"Dask workers of {dask.address} must run {package} {ours} like this machine "
                f"(the fits would differ): {shown}"
            )


def _importer() -> Any:
    """A function that imports `modules` and says which one failed, or None. A closure on
    purpose: distributed sends it by value (cloudpickle), so the workers need no
    gitops-mlops to run it."""

    def import_all(modules: list[str]) -> tuple[str, str] | None:
        import importlib

        for module in modules:
            try:
                importlib.import_module(module)
            except ImportError as err:
                return err.name or module, f"{type(err).__name__}: {err}"
        return None

    return import_all


def _import_problem(value: Any) -> str | None:
    """What a worker's import check said, for the message (None: it imported everything)."""
    if value is None:
        return None
    if _failed(value):  # the check itself failed on that worker
        return f"the estimator's modules ({type(value).__name__}: {value})"
    name, detail = value
    return repr(name) if detail.startswith("ModuleNotFoundError") else f"{name!r} ({detail})"


def _failed(value: Any) -> bool:
    return isinstance(value, BaseException)


class _Watch:
    """Watches the workers while the search runs, to say why it failed, and ends it when the
    cluster has had no worker for `timeout` seconds.

    The data joblib scattered to a worker goes with it when it dies, so the fits that need
    it are cancelled and the search fails: the error names the workers that left. With no
    worker at all, tasks would wait forever: closing the client cancels them.
    """

    def __init__(self, client: Any, dask: DaskSettings) -> None:
        self.client = client
        self.dask = dask
        self.reason: str | None = None
        self.lost: set[str] = set()
        self._seen: set[str] = set()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dask-watch", daemon=True)

    def start(self) -> None:
        self._poll()
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()

    def refuse_losses(self) -> None:
        """A search that finished although a worker left is still refused: whether Dask
        could rerun the lost fits depends on whether another worker had fetched a copy of the
        data first, a race, and a run's outcome must not hang on a race. A worker dying
        mid-search (out of memory, a preempted node) is worth a look before a release."""
        with contextlib.suppress(Exception):  # the scheduler may be gone too
            self._poll()
        if self.lost:
            raise DaskError(
                f"{self._left()}; the cluster reran its fits, but a search that lost a worker "
                "is not used: rerun when the cluster is stable (see the workers' logs)"
            )

    def explain(self, err: BaseException) -> str:
        """Why the search stopped, for an error raised while it ran."""
        if self.reason is not None:
            return self.reason
        with contextlib.suppress(Exception):  # the scheduler may be gone too
            self._poll()
        if self.lost:
            return (
                f"{self._left()}, and the fits that needed the data it held were cancelled; "
                "rerun when the cluster is stable (see the workers' logs)"
            )
        detail = str(err).splitlines()[0] if str(err) else "no detail"
        return (
            f"the search on the Dask cluster at {self.dask.address} failed: "
            f"{type(err).__name__}: {detail}"
        )

    def _left(self) -> str:
        plural = "s" if len(self.lost) > 1 else ""
        return (
            f"Dask worker{plural} {', '.join(sorted(self.lost))} "
            f"of {self.dask.address} left mid-search"
        )

    def _poll(self) -> int:
        current = set(self.client.nthreads())
        self.lost |= self._seen - current
        self._seen |= current
        return len(current)

    def _run(self) -> None:
        empty_since: float | None = None
        while not self._done.wait(0.5):
            try:
                workers = self._poll()
            except Exception as err:  # the scheduler went away: the client says so too
                self.reason = (
                    f"lost the connection to the Dask scheduler at {self.dask.address} "
                    f"mid-search ({type(err).__name__})"
                )
                workers = 0
            now = time.monotonic()
            empty_since = None if workers else (empty_since or now)
            if empty_since is not None and now - empty_since >= self.dask.timeout:
                self.reason = self.reason or (
                    f"every Dask worker of {self.dask.address} left mid-search "
                    f"({', '.join(sorted(self.lost))}) and none came back within "
                    f"{self.dask.timeout:g} s; the search stopped"
                )
                self.client.close(timeout=self.dask.timeout)
                return

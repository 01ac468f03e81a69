"""A hyper-parameter search's fits on a Dask cluster, through joblib's Dask backend.

scikit-learn parallelises a search with joblib; `distributed` ships the joblib backend that
sends each fit to the cluster as a task. We only connect, check the workers can run the
fits, watch that the cluster stays usable, and turn its failures into clear errors: every
wait is bounded by `timeout` seconds, so a lost cluster ends the run rather than hanging it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from gitops_mlops.errors import MlopsError
from gitops_mlops.integrations import waits

SCHEDULER_ENV = "MLOPS_DASK_SCHEDULER"
TIMEOUT_ENV = "MLOPS_DASK_TIMEOUT"
DEFAULT_TIMEOUT = 30.0
# Versions that must match between here and the workers for the fits to be the same.
SAME_VERSIONS = ("scikit-learn",)


FORMS = "tcp://HOST:PORT (or HOST:PORT), or tls://HOST:PORT with Dask's TLS settings"
# What we connect to: distributed's other transports (ucx://, inproc://, ws://) need
# set-ups a CI runner does not have, and fail deep inside distributed when tried.
_ADDRESS = re.compile(r"(?:(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://)?(?P<host>[^\s/@]+):[0-9]+")
_USER_INFO = re.compile(r"^((?:[A-Za-z][A-Za-z0-9+.-]*://)?)[^/@]*@")
# Dask's TLS settings, as environment variables (dask reads them as its configuration).
TLS_SETTINGS = (
    "DASK_DISTRIBUTED__COMM__TLS__CA_FILE, DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT "
    "and DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY"
)


class DaskError(MlopsError):
    """The cluster could not run the search; the message names the scheduler."""


@dataclass(frozen=True)
class DaskSettings:
    address: str
    timeout: float  # seconds: connecting, waiting for a worker, a cluster without workers
    # Where the address comes from, for errors about it: "FILE:LINE:COL" of the spec's
    # model.search.scheduler, or "" for MLOPS_DASK_SCHEDULER (the message names it).
    located: str = ""

    def about_address(self, message: str) -> str:
        """`message`, located where the address was given."""
        if self.located:
            return f"{self.located}: {message}"
        return f"{message} (the address is from {SCHEDULER_ENV})"


def shown(address: str) -> str:
    """The address without user info: Dask addresses have none, so anything there is a
    mistake, and may be a password."""
    return _USER_INFO.sub(r"\1", address)


def settings(scheduler: str | None, env: Mapping[str, str], located: str = "") -> DaskSettings:
    """The spec's scheduler (given at `located`), else MLOPS_DASK_SCHEDULER;
    MLOPS_DASK_TIMEOUT bounds waits."""
    address = scheduler or env.get(SCHEDULER_ENV, "").strip()
    located = located if scheduler else ""
    if not address:
        raise DaskError(
            "model.search.backend is dask, but no scheduler is given: set "
            f"{SCHEDULER_ENV}=tcp://HOST:8786 (or model.search.scheduler in the spec)"
        )
    form = _ADDRESS.fullmatch(address)
    where = DaskSettings(address, DEFAULT_TIMEOUT, located)
    if shown(address) != address:
        raise DaskError(
            where.about_address(
                f"the Dask scheduler address {shown(address)!r} has user info (a name or "
                f"password before @), which Dask addresses never have; expected {FORMS}"
            )
        )
    if form is None or (form["scheme"] or "tcp").lower() not in ("tcp", "tls"):
        raise DaskError(
            where.about_address(
                f"{address!r} is not a Dask scheduler address we can connect to; expected {FORMS}"
            )
        )
    timeout = waits.seconds(env, TIMEOUT_ENV, DEFAULT_TIMEOUT, DaskError)
    return DaskSettings(address, timeout, located)


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
    try:
        import joblib
        from distributed import Client, KilledWorker
    except ModuleNotFoundError as err:
        raise DaskError(
            f"model.search.backend dask needs {err.name or 'distributed'}: "
            "pip install 'gitops-mlops[dask]'"
        ) from None

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
    connection = _connection_args(dask)
    _ask_scheduler(dask, connection)
    try:
        return client_class(
            dask.address, timeout=dask.timeout, set_as_default=False, direct_to_workers=False
        )
    except (OSError, TimeoutError) as err:
        raise DaskError(_unreachable(dask, err)) from None
    except (ValueError, TypeError) as err:
        raise DaskError(
            dask.about_address(f"cannot connect to the Dask scheduler at {dask.address}: {err}")
        ) from None


def _connection_args(dask: DaskSettings) -> dict[str, Any]:
    """What distributed connects with, from Dask's own configuration, as its Client does."""
    from distributed.security import Security

    try:
        connection: dict[str, Any] = Security().get_connection_args("client")  # type: ignore[no-untyped-call]
    except (OSError, ValueError) as err:  # a TLS file that is missing or not PEM
        raise DaskError(
            dask.about_address(f"Dask's TLS settings cannot be used for {dask.address}: {err}")
        ) from None
    if dask.address.lower().startswith("tls://") and connection.get("ssl_context") is None:
        raise DaskError(
            dask.about_address(
                f"{dask.address} is a tls:// address, but Dask has no TLS settings here: set "
                f"{TLS_SETTINGS} (or use tcp://)"
            )
        )
    return connection


def _ask_scheduler(dask: DaskSettings, connection: Mapping[str, Any]) -> None:
    """Connects and asks who answers, all within the timeout, before the Client does.

    distributed's own connect bounds opening the connection, but not reading the peer's
    handshake: a port that accepts and never answers (a half-dead host, a firewall or proxy
    that accepts for anyone) held the Client forever, and an HTTP server there (the
    dashboard's port) answers with a line distributed reads as a frame length. Asking the
    peer its identity also tells a worker's address from the scheduler's.
    """
    from distributed.comm.core import connect

    async def identity() -> Any:
        comm = await connect(dask.address, timeout=dask.timeout, **connection)  # type: ignore[no-untyped-call]
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    async def bounded() -> Any:
        # A second beyond connect's own bound, so that a refused or unknown address still
        # fails with connect's own (more telling) error; a silent peer ends here.
        return await asyncio.wait_for(identity(), dask.timeout + 1)

    try:
        answer = asyncio.run(bounded())
    except (TimeoutError, asyncio.TimeoutError):  # one class from Python 3.11, two before
        raise DaskError(
            dask.about_address(
                f"the Dask scheduler at {dask.address} accepted the connection but did not "
                f"answer within {dask.timeout:g} s ({TIMEOUT_ENV}); check the address points "
                "at the scheduler's port (8786 by default) and that it is not overloaded"
            )
        ) from None
    except OSError as err:
        raise DaskError(_unreachable(dask, err)) from None
    except (ValueError, TypeError) as err:
        raise DaskError(
            dask.about_address(f"cannot connect to the Dask scheduler at {dask.address}: {err}")
        ) from None
    except Exception:  # whatever else its answer makes distributed raise: not a scheduler's
        answer = None  # (a MemoryError for an HTTP server's "HTTP/1.1 400 ...")
    kind = answer.get("type") if isinstance(answer, dict) else None
    if kind != "Scheduler":
        what = f"a Dask {kind}" if isinstance(kind, str) else "something else"
        raise DaskError(
            dask.about_address(
                f"{dask.address} is not a Dask scheduler: it answers as {what} "
                "(an HTTP server, such as the dashboard on port 8787?); give the "
                "scheduler's own address, tcp://HOST:8786 by default"
            )
        )


def _unreachable(dask: DaskSettings, err: BaseException) -> str:
    cause = err.__cause__ or err  # distributed's "timed out" wraps the last refusal
    detail = str(cause).splitlines()[0] if str(cause) else "no answer"
    return dask.about_address(
        f"cannot reach the Dask scheduler at {dask.address} within {dask.timeout:g} s "
        f"({type(cause).__name__}: {detail}); check the address and that the scheduler is up"
    )


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
    # A worker that died or lost its connection during the check answers with the comm's
    # error, not the import's: it left, and its modules say nothing.
    current = set(client.nthreads())
    left = sorted(w for w, v in said.items() if _failed(v) and (w not in current or _is_comm(v)))
    if left:
        plural = "s" if len(left) > 1 else ""
        raise DaskError(
            f"Dask worker{plural} {', '.join(left)} of {dask.address} left during the check "
            "that the workers can import the estimator's modules; rerun when the cluster is "
            "stable (see the workers' logs)"
        )
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


def _is_comm(value: Any) -> bool:
    """An error of the connection to a worker (its process died, the network dropped)."""
    from distributed.comm.core import CommClosedError

    return isinstance(value, (CommClosedError, ConnectionError, TimeoutError))


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
        if getattr(err, "reason", None) == "scheduler-connection-lost":
            return self._scheduler_lost()
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

    def _scheduler_lost(self) -> str:
        return (
            f"lost the Dask scheduler at {self.dask.address} mid-search (it stopped, or the "
            "connection to it broke), and the search's fits were cancelled; check the "
            "scheduler (its logs), then rerun"
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
            except Exception:  # the scheduler went away: the client says so too
                self.reason = self._scheduler_lost()
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

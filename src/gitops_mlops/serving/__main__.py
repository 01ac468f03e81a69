"""`python -m gitops_mlops.serving --model-dir DIR [--port N]`: the serving image's command.

Settings come from the command line, else from the environment (the image sets them; a
Kubernetes manifest can override them), resolved once here:

    MLOPS_MODEL_DIR, MLOPS_HOST, MLOPS_PORT
    MLOPS_WORKERS          processes; `auto` (default): one per CPU the container is given
    MLOPS_HEADER_TIMEOUT   seconds for a request's headers to arrive (10)
    MLOPS_BODY_TIMEOUT     seconds for its body, once the headers are in (30)
    MLOPS_IDLE_TIMEOUT     seconds a kept-alive connection may wait for its next request (5)
    MLOPS_MAX_CONNECTIONS  open connections per process (4096, and always fewer than the
                           process's file descriptor limit)
    MLOPS_MAX_BODY_BYTES   the largest request body (8 MiB)

The server handles SIGTERM (it is PID 1 in the container): readiness turns false, the
listening sockets are closed in every process (new connections are refused), requests in
flight are answered, then it exits 0 (those still open after DRAIN_SECONDS are cut).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import os
import resource
import signal
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gitops_mlops.serving import http, runtimes, workers
from gitops_mlops.serving.errors import UntrustedModelError
from gitops_mlops.serving.metrics import Metrics, shared_table

DRAIN_SECONDS = 10.0  # then the rest are cut: within Kubernetes' default 30 s grace period


@dataclass(frozen=True)
class Settings:
    model_dir: Path
    host: str
    port: int
    workers: int
    limits: http.Limits


def settings(argv: list[str] | None, env: Mapping[str, str]) -> Settings:
    parser = argparse.ArgumentParser(prog="python -m gitops_mlops.serving")
    parser.add_argument(
        "--model-dir", type=Path, default=Path(env.get("MLOPS_MODEL_DIR", "/model"))
    )
    parser.add_argument("--host", default=env.get("MLOPS_HOST", "0.0.0.0"))  # noqa: S104
    parser.add_argument("--port", type=int, default=env.get("MLOPS_PORT", "8080"))
    parser.add_argument("--workers", default=env.get("MLOPS_WORKERS", "auto"))
    args = parser.parse_args(argv)
    defaults = http.Limits()
    try:
        count = workers.available_cpus() if args.workers == "auto" else int(args.workers)
        limits = http.Limits(
            header_bytes=defaults.header_bytes,
            body_bytes=int(env.get("MLOPS_MAX_BODY_BYTES", defaults.body_bytes)),
            header_seconds=float(env.get("MLOPS_HEADER_TIMEOUT", defaults.header_seconds)),
            body_seconds=float(env.get("MLOPS_BODY_TIMEOUT", defaults.body_seconds)),
            idle_seconds=float(env.get("MLOPS_IDLE_TIMEOUT", defaults.idle_seconds)),
            max_connections=int(env.get("MLOPS_MAX_CONNECTIONS", defaults.max_connections)),
        )
    except ValueError as err:
        parser.error(f"a setting is not a number: {err}")
    if count < 1:
        parser.error("--workers must be `auto` or at least 1")
    return Settings(args.model_dir, args.host, args.port, count, limits)


def _descriptors() -> int:
    """The file descriptor limit, raised to the hard limit first (it costs nothing)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def _listen(host: str, port: int, workers: int) -> list[socket.socket]:
    """One listening socket per worker on Linux, in one SO_REUSEPORT group; elsewhere one
    socket that every worker accepts from.

    With one shared socket, the worker that wakes first accepts every connection waiting:
    64 clients that connect at once often all land on one worker, and one core serves them
    while the other idles (measured: 7,300 against 12,500 100-row requests/s). A
    SO_REUSEPORT group spreads new connections over its sockets by a hash of their
    addresses.

    Any process of the same user (in the same network namespace) may join a group, and take
    its share of the connections; Linux has no way to close a group. What can be checked is
    that nobody is on the port before the group is formed: a socket without SO_REUSEPORT
    cannot bind where another listens, so a second server started on a port in use fails,
    as it would without SO_REUSEPORT, instead of silently taking part of the first's traffic.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    count = workers if sys.platform == "linux" and workers > 1 else 1
    if count > 1 and port != 0:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))  # OSError (address in use) when anyone listens there
    sockets: list[socket.socket] = []
    for _ in range(count):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sockets.append(sock)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if count > 1:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((host, port))
        except OSError:
            for opened in sockets:
                opened.close()
            raise
        port = sock.getsockname()[1]  # port 0: the others join the port the first was given
        sock.listen(2048)
        sock.setblocking(False)
    return sockets


def _event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # libuv: about twice asyncio's throughput for small requests
    except ImportError:  # pragma: no cover - a dependency, but the server runs without it
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def prepare_workers() -> None:
    """Import what every worker runs (the app, the event loop) once, before they fork: the
    workers then share the pages and start serving without importing anything."""
    importlib.import_module("gitops_mlops.serving.app")
    with contextlib.suppress(ImportError):
        importlib.import_module("uvloop")


def serve_worker(
    config: Settings, runtime: runtimes.Runtime, sock: socket.socket, metrics: Metrics
) -> int:
    """One worker: load the model, serve until SIGTERM or SIGINT, drain, return the status."""
    from gitops_mlops.serving.app import Server

    metrics.set_ready(False)
    try:
        loaded = runtime.load(config.model_dir)
    except Exception as err:  # whatever a broken or refused model folder raises: say it, exit 1
        print(f"error: cannot serve {config.model_dir}: {err}", file=sys.stderr)
        return 1
    app = Server(loaded, metrics)
    loop = _event_loop()
    asyncio.set_event_loop(loop)
    stopping = asyncio.Event()

    def stop() -> None:
        app.ready = False
        stopping.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop)
    metrics.set_ready(True)
    try:
        loop.run_until_complete(
            http.serve(app.handle, sock, config.limits, metrics.closed, stopping, DRAIN_SECONDS)
        )
    finally:
        loop.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    config = settings(argv, os.environ)
    try:  # a refused model is an error message and exit 1, not a traceback from each worker
        runtime = runtimes.of(config.model_dir)
        runtime.check(config.model_dir)
    except UntrustedModelError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    limits = config.limits.fitted(_descriptors())
    config = Settings(config.model_dir, config.host, config.port, config.workers, limits)
    try:
        sockets = _listen(config.host, config.port, config.workers)
    except OSError as err:
        print(f"error: cannot listen on {config.host}:{config.port}: {err}", file=sys.stderr)
        return 1
    runtime.preload()  # before forking, so that the workers share the pages
    prepare_workers()
    table = shared_table(config.workers)
    if config.workers == 1:
        return serve_worker(config, runtime, sockets[0], Metrics(table, 0))

    def work(index: int) -> int:
        # A restarted worker takes its predecessor's socket, and the connections queued on it.
        own = sockets[index % len(sockets)]
        for sock in sockets:
            if sock is not own:  # inherited from the parent: held, they would never close
                sock.close()
        return serve_worker(config, runtime, own, Metrics(table, index))

    def release() -> None:
        for sock in sockets:
            sock.close()

    return workers.supervise(
        config.workers,
        work,
        lambda index: bool(Metrics(table, index).ready_rows()[index]),
        release,
    )


if __name__ == "__main__":
    sys.exit(main())

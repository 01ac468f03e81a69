"""Our model server (both runtimes) against MLflow's and MLServer's, same model, same client.

    python benchmarks/serving.py --mlflow-python VENV/bin/python --mlserver VENV/bin/mlserver
    python benchmarks/serving.py --profile     # ours (onnx, one worker) under cProfile

Serves the iris example (a scikit-learn Pipeline: imputation, scaling, a 100-tree random
forest) with:
- ours, `sklearn` runtime: the scikit-learn model;
- ours, `onnx` runtime: the same model converted and proven at build time, with JSON
  requests and with the binary requests `tritonclient` sends (its own request builder makes
  the body: a JSON header and raw little-endian tensors);
- MLflow's scoring server (`mlflow models serve`, one gunicorn/uvicorn worker per CPU);
- MLServer with mlserver-sklearn: as installed (one inference worker process, no batching),
  with its adaptive batching on (up to 64 requests, waiting at most 5 ms) and one inference
  worker per CPU, and with adaptive batching and inference in its server process
  (`parallel_workers: 0`). Its per-request access log is off in all three (`debug: false`,
  as in production).
Each server may use every CPU of the machine (ours: one process per CPU). wrk (one thread)
drives each with 1-row and 100-row requests in the server's own format, over 8 and 64
connections, for --seconds each; the answers are class labels only.
Target (issue 14): at least 10x the best peer's throughput at a lower p99.

MLflow and MLServer live in their own virtual environments outside this repository (their
pins clash with ours):
    python -m venv /tmp/bench-mlflow && /tmp/bench-mlflow/bin/pip install mlflow-skinny \\
        flask gunicorn scikit-learn==<ours> pandas
    python -m venv /tmp/bench-mlserver && /tmp/bench-mlserver/bin/pip install mlserver \\
        mlserver-sklearn scikit-learn==<ours> 'uvloop<0.22'
MLServer 1.7's inference workers call `asyncio.get_event_loop()` in a fresh process; uvloop
0.22 made that raise ("There is no current event loop in thread 'MainThread'"), so with a
newer uvloop every worker dies at start and MLServer stops: pin uvloop below 0.22.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pstats
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
ROW = [5.9, 3.0, 4.2, 1.5]
ROWS = (1, 100)
CONNECTIONS = (8, 64)
ADAPTIVE_BATCHING = {"max_batch_size": 64, "max_batch_time": 0.005}
LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "{content_type}"
{headers}
wrk.body = "{body}"
"""


@dataclass(frozen=True)
class Load:
    """One kind of request: its path, body for N rows, and extra headers."""

    path: str
    body: Callable[[int], tuple[bytes, dict[str, str]]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait(url: str, process: Any, log: Path, deadline: float = 180) -> None:
    """Until `url` answers 200; the server's own words if it exits or never gets there."""
    end = time.monotonic() + deadline
    while time.monotonic() < end and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
    state = "not ready" if process.poll() is None else f"exited {process.returncode}"
    raise RuntimeError(f"{url}: {state} after {deadline:.0f} s. Its log ends:\n{tail}")


def _json(data: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    return json.dumps(data).encode(), {}


def v2_columns(rows: int) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": n, "shape": [rows], "datatype": "FP64", "data": [ROW[i]] * rows}
            for i, n in enumerate(FEATURES)
        ]
    }


def ours_json(rows: int) -> tuple[bytes, dict[str, str]]:
    return _json(v2_columns(rows) | {"outputs": [{"name": "predict"}]})


def ours_binary(rows: int) -> tuple[bytes, dict[str, str]]:
    """The body tritonclient sends for one [rows, 4] FP64 tensor, asking for `predict`."""
    import numpy as np
    import tritonclient.http as triton
    from tritonclient.http._utils import _get_inference_request

    tensor = triton.InferInput("x", [rows, 4], "FP64")
    tensor.set_data_from_numpy(np.array([ROW] * rows, dtype=np.float64))
    output = triton.InferRequestedOutput("predict", binary_data=True)
    body, header_length = _get_inference_request(
        [tensor], "", [output], 0, False, False, 0, None, None
    )
    return body, {"Inference-Header-Content-Length": str(header_length)}


def mlflow_body(rows: int) -> tuple[bytes, dict[str, str]]:
    return _json({"dataframe_split": {"columns": FEATURES, "data": [ROW] * rows}})


def mlserver_body(rows: int) -> tuple[bytes, dict[str, str]]:
    return _json(v2_columns(rows) | {"parameters": {"content_type": "pd"}})


def drive(
    url: str, load: Load, rows: int, connections: int, folder: Path, seconds: int
) -> tuple[float, float, float, int]:
    """(requests/s, p50 ms, p99 ms, requests timed out) from wrk."""
    body, headers = load.body(rows)
    script = folder / "post.lua"
    script.write_text(
        LUA.format(
            content_type="application/octet-stream" if headers else "application/json",
            headers="\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()),
            body="".join(f"\\{byte}" for byte in body),  # Lua decimal escapes: any bytes
        )
    )
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if "Non-2xx" in out or (errors and any(int(n) for n in errors.groups()[:3])):
        raise RuntimeError(f"{url} answered errors:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    # Requests still unanswered after wrk's 2 s are timeouts: the p99 then understates the
    # wait, so the table says how many there were.
    timeouts = int(errors[4]) if errors else 0
    return rps, _ms(out, "50%"), _ms(out, "99%"), timeouts


def _ms(out: str, percentile: str) -> float:
    value, unit = re.search(rf"{percentile}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def mlserver_model(folder: Path, model: Path, settings: dict[str, Any]) -> None:
    folder.mkdir()
    shutil.copy(model, folder / "model.joblib")
    (folder / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "iris-classifier",
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib"},
            }
            | settings
        )
    )


@dataclass(frozen=True)
class Prepared:
    sklearn_dir: Path
    onnx_dir: Path
    joblib: Path


def prepare(folder: Path) -> Prepared:
    """Train once; convert and prove the ONNX model as `mlops build` does."""
    from gitops_mlops import bundle, image_runtime
    from gitops_mlops.cli import main as mlops
    from gitops_mlops.rundir import RunDir
    from gitops_mlops.stages.validate import load

    shutil.copytree(ROOT / "examples" / "iris", folder / "iris")
    shutil.copytree(ROOT / "examples" / "gitops", folder / "gitops")
    spec = folder / "iris" / "mlops.yaml"
    assert mlops(["run", str(spec), "--until", "train", "--out", str(folder / "run")]) == 0
    run = RunDir(folder / "run")
    manifest = bundle.read_manifest(run.model_dir)
    choice = image_runtime.choose(load(spec), run, manifest, requested="onnx")
    print(image_runtime.summary(choice.to_json()))
    import joblib

    joblib.dump(bundle.load_model(run.model_file), folder / "model.joblib")
    return Prepared(run.model_dir, choice.model_dir, folder / "model.joblib")


def ours(model_dir: Path, workers: str = "auto") -> Callable[[int], list[str]]:
    return lambda port: [
        sys.executable,
        "-m",
        "gitops_mlops.serving",
        "--model-dir",
        str(model_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        workers,
    ]


def servers(
    args: argparse.Namespace, folder: Path, prepared: Prepared
) -> dict[str, tuple[Callable[[int], list[str]], str, dict[str, Load]]]:
    infer = "/v2/models/iris-classifier/infer"
    found: dict[str, tuple[Callable[[int], list[str]], str, dict[str, Load]]] = {
        "ours sklearn": (
            ours(prepared.sklearn_dir),
            "/v2/health/ready",
            {"ours sklearn": Load(infer, ours_json)},
        ),
        "ours onnx": (
            ours(prepared.onnx_dir),
            "/v2/health/ready",
            {
                "ours onnx": Load(infer, ours_json),
                "ours onnx, tritonclient binary": Load(infer, ours_binary),
            },
        ),
    }
    cpus = len(os.sched_getaffinity(0))
    if args.mlflow_python:
        mlflow_dir = folder / "mlflow-model"
        subprocess.run(
            [
                args.mlflow_python,
                "-c",
                "import joblib, sys, mlflow.sklearn; "
                "mlflow.sklearn.save_model(joblib.load(sys.argv[1]), sys.argv[2], "
                "serialization_format='cloudpickle')",
                str(prepared.joblib),
                str(mlflow_dir),
            ],
            check=True,
            capture_output=True,
        )
        found["mlflow"] = (
            lambda port: [
                args.mlflow_python,
                "-m",
                "mlflow",
                "models",
                "serve",
                "-m",
                str(mlflow_dir),
                "--env-manager",
                "local",
                "-w",
                str(cpus),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            "/ping",
            {"mlflow": Load("/invocations", mlflow_body)},
        )
    if args.mlserver:
        variants: list[tuple[str, dict[str, Any], int | None]] = [
            ("mlserver", {}, None),  # its default: one inference worker process
            (f"mlserver, {cpus} workers, adaptive batching", ADAPTIVE_BATCHING, cpus),
            ("mlserver, in-process, adaptive batching", ADAPTIVE_BATCHING, 0),
        ]
        for name, settings, workers in variants:
            model_dir = folder / re.sub(r"[^a-z0-9]+", "-", name)
            mlserver_model(model_dir, prepared.joblib, settings)
            found[name] = (
                _mlserver(args.mlserver, model_dir, workers),
                # Its server is ready before its model is: wait for the model.
                "/v2/models/iris-classifier/ready",
                {name: Load(infer, mlserver_body)},
            )
    return found


def _mlserver(executable: str, model_dir: Path, workers: int | None) -> Callable[[int], list[str]]:
    def command(port: int) -> list[str]:
        settings: dict[str, Any] = {
            "http_port": port,
            "grpc_port": free_port(),
            "metrics_port": free_port(),
            "host": "127.0.0.1",
            "debug": False,  # no access log line per request
        }
        if workers is not None:
            settings["parallel_workers"] = workers
        (model_dir / "settings.json").write_text(json.dumps(settings))
        return [executable, "start", str(model_dir)]

    return command


def start(name: str, command: list[str], folder: Path, mlflow_python: str) -> Any:
    env = dict(os.environ)
    if name == "mlflow":  # it runs `uvicorn` or `gunicorn` from PATH: make it the venv's
        env["PATH"] = f"{Path(mlflow_python).parent}:{env['PATH']}"
    log = (folder / f"{re.sub(r'[^a-z0-9]+', '-', name)}.log").open("wb")
    # Its own session, so that stopping it stops the worker processes it started too.
    return subprocess.Popen(
        command, cwd=folder, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )


def stop(process: Any) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # workers left behind by their parent


def benchmark(args: argparse.Namespace) -> int:
    results: dict[str, dict[tuple[int, int], tuple[float, float, float, int]]] = {}
    # The 1-minute load average before any server starts (the machine's other work) and
    # at the end (ours included): figures from a loaded machine are not comparable.
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        prepared = prepare(folder)
        for name, (command, health, loads) in servers(args, folder, prepared).items():
            port = free_port()
            process = start(name, command(port), folder, args.mlflow_python or "")
            log = folder / f"{re.sub(r'[^a-z0-9]+', '-', name)}.log"
            try:
                wait(f"http://127.0.0.1:{port}{health}", process, log)
                for label, load in loads.items():
                    url = f"http://127.0.0.1:{port}{load.path}"
                    results[label] = {}
                    for rows in ROWS:
                        for connections in CONNECTIONS:
                            measured = drive(url, load, rows, connections, folder, args.seconds)
                            results[label][(rows, connections)] = measured
                            print(
                                f"{label}, {rows} rows, {connections}: {measured}", file=sys.stderr
                            )
            finally:
                stop(process)
    print(
        f"\nload average (1 min) {load_before:.2f} before, {os.getloadavg()[0]:.2f} at the end, "
        f"{os.cpu_count()} CPUs"
    )
    print("\n| server | rows | connections | req/s | p50 ms | p99 ms | timeouts |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, by_load in results.items():
        for (rows, connections), (rps, p50, p99, late) in by_load.items():
            print(
                f"| {label} | {rows} | {connections} | {rps:.0f} | {p50:.2f} | {p99:.2f} | {late} |"
            )
    peers = [label for label in results if not label.startswith("ours")]
    if not peers:
        return 0
    met = True
    print()
    for rows in ROWS:
        for connections in CONNECTIONS:
            key = (rows, connections)
            mine = [label for label in results if label.startswith("ours")]
            best_ours = max(mine, key=lambda label: results[label][key][0])
            best_peer = max(peers, key=lambda label: results[label][key][0])
            rps, _, p99, _ = results[best_ours][key]
            peer_rps, _, peer_p99, _ = results[best_peer][key]
            ok = rps >= 10 * peer_rps and p99 < peer_p99
            met &= ok
            print(
                f"{rows:3d} row(s), {connections:2d} connections: {best_ours} "
                f"{rps / peer_rps:.1f}x {best_peer}'s throughput, p99 {p99:.2f} vs "
                f"{peer_p99:.2f} ms: {'met' if ok else 'NOT met'}"
            )
    return 0 if met else 1


def profile(args: argparse.Namespace) -> int:
    """Ours (onnx runtime, one worker) under cProfile while wrk drives it with 1-row binary
    requests: where a request's time goes once the model costs microseconds."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        prepared = prepare(folder)
        port = free_port()
        stats = folder / "profile.out"
        command = ours(prepared.onnx_dir, workers="1")(port)
        command[1:1] = ["-m", "cProfile", "-o", str(stats)]
        log = folder / "server.log"
        process = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        try:
            wait(f"http://127.0.0.1:{port}/v2/health/ready", process, log)
            load = Load("/v2/models/iris-classifier/infer", ours_binary)
            rps, p50, p99, _ = drive(
                f"http://127.0.0.1:{port}{load.path}", load, 1, 8, folder, args.seconds
            )
            print(f"under cProfile: {rps:.0f} req/s, p50 {p50:.2f} ms, p99 {p99:.2f} ms")
        finally:
            process.send_signal(signal.SIGINT)  # drains and returns: cProfile writes its stats
            process.wait(timeout=60)
        pstats.Stats(str(stats)).sort_stats("tottime").print_stats(25)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mlflow-python", help="python of a venv with MLflow")
    parser.add_argument("--mlserver", help="the mlserver executable of a venv with MLServer")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    return profile(args) if args.profile else benchmark(args)


if __name__ == "__main__":
    sys.exit(main())

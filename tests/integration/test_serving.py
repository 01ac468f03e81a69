"""The model server, run for real (`mlops serve`), speaking the Open Inference Protocol."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris

from gitops_mlops import bundle
from tests.conftest import ROOT
from tests.integration.helpers import copy_example, run_until
from tests.integration.server_helpers import free_port, request, serving, wait_ready


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("iris")
    return run_until(copy_example(folder), folder / "run", "train")


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("csv")
    return run_until(ROOT / "examples" / "diabetes-csv" / "mlops.yaml", folder / "run", "train")


def start(run: Path) -> tuple[list[str], int]:
    port = free_port()
    return [sys.executable, "-m", "gitops_mlops", "serve", str(run), "--port", str(port)], port


@pytest.fixture(scope="module")
def iris_server(iris_run: Path) -> Iterator[int]:
    command, port = start(iris_run)
    with serving(command, port):
        yield port


@pytest.fixture(scope="module")
def csv_server(csv_run: Path) -> Iterator[int]:
    command, port = start(csv_run)
    with serving(command, port):
        yield port


IRIS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


def per_feature(rows: list[list[float]]) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": n, "shape": [len(rows)], "datatype": "FP64", "data": [r[i] for r in rows]}
            for i, n in enumerate(IRIS)
        ]
    }


def test_predictions_equal_the_local_models(iris_server: int, iris_run: Path) -> None:
    model = bundle.load_model(iris_run / "model" / "model.skops")
    frame = pd.DataFrame(ROWS, columns=IRIS)
    status, body = request(
        iris_server, "POST", "/v2/models/iris-classifier/infer", per_feature(ROWS) | {"id": "req-1"}
    )
    assert status == 200, body
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["predict"]["data"] == model.predict(frame).tolist()
    assert outputs["predict_proba"]["shape"] == [3, 3]
    assert outputs["predict_proba"]["data"] == pytest.approx(model.predict_proba(frame).ravel())
    assert body["id"] == "req-1" and body["model_name"] == "iris-classifier"


def test_one_two_dimensional_tensor_and_output_selection(iris_server: int, iris_run: Path) -> None:
    version = bundle.read_manifest(iris_run / "model")["model_version"]
    status, body = request(
        iris_server,
        "POST",
        f"/v2/models/iris-classifier/versions/{version}/infer",
        {
            "inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP32", "data": ROWS}],
            "outputs": [{"name": "predict"}],
        },
    )
    assert status == 200, body
    assert [o["name"] for o in body["outputs"]] == ["predict"]
    flat = request(
        iris_server,
        "POST",
        "/v2/models/iris-classifier/infer",
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [3, 4],
                    "datatype": "FP64",
                    "data": [v for r in ROWS for v in r],
                }
            ]
        },
    )
    assert flat[1]["outputs"][0]["data"] == body["outputs"][0]["data"]


def test_metadata_and_health(iris_server: int, iris_run: Path) -> None:
    assert request(iris_server, "GET", "/v2/health/live") == (200, {"live": True})
    assert request(iris_server, "GET", "/v2/health/ready") == (200, {"ready": True})
    assert request(iris_server, "GET", "/v2")[0] == 200
    status, meta = request(iris_server, "GET", "/v2/models/iris-classifier")
    assert status == 200
    assert [i["name"] for i in meta["inputs"]] == IRIS
    assert {i["datatype"] for i in meta["inputs"]} == {"FP64"}
    assert meta["outputs"] == [
        {"name": "predict", "datatype": "INT64", "shape": [-1]},
        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]},
    ]
    assert request(iris_server, "GET", "/v2/models/iris-classifier/ready")[1]["ready"] is True


def test_raw_rows_with_text_and_missing_values(csv_server: int, csv_run: Path) -> None:
    model = bundle.load_model(csv_run / "model" / "model.skops")
    raw = pd.read_csv(ROOT / "examples" / "diabetes-csv" / "data" / "diabetes.csv").head(4)
    raw = raw.drop(columns="progression")
    raw.loc[0, "bmi"] = float("nan")
    raw.loc[1, "sex"] = float("nan")  # imputed, as in training (not an unknown category)
    status, meta = request(csv_server, "GET", "/v2/models/diabetes-progression")
    types = {i["name"]: i["datatype"] for i in meta["inputs"]}
    assert types["sex"] == "BYTES" and types["bmi"] == "FP64"
    inputs = [
        {
            "name": c,
            "shape": [4],
            "datatype": types[c],
            "data": [
                None if pd.isna(v) else (v.item() if hasattr(v, "item") else v) for v in raw[c]
            ],
        }
        for c in raw.columns
    ]
    status, body = request(
        csv_server, "POST", "/v2/models/diabetes-progression/infer", {"inputs": inputs}
    )
    assert status == 200, body
    assert [o["name"] for o in body["outputs"]] == ["predict"]
    assert body["outputs"][0]["data"] == pytest.approx(model.predict(raw).tolist())


MALFORMED: list[tuple[str, str, Any, int, str]] = [
    ("bad-json", "POST", b"{", 400, "not valid JSON"),
    ("array-body", "POST", [], 400, "JSON object"),
    ("no-inputs", "POST", {}, 400, "`inputs`"),
    ("empty-inputs", "POST", {"inputs": []}, 400, "`inputs`"),
    ("inputs-object", "POST", {"inputs": {"a": 1}}, 400, "`inputs`"),
    ("tensor-string", "POST", {"inputs": ["x"]}, 400, "must be an object"),
    (
        "no-datatype",
        "POST",
        {"inputs": [{"name": IRIS[0], "shape": [1], "data": [1.0]}]},
        400,
        "missing datatype",
    ),
    (
        "shape-string",
        "POST",
        {"inputs": [{"name": "x", "shape": "1", "datatype": "FP64", "data": [1]}]},
        400,
        "shape",
    ),
    (
        "shape-negative",
        "POST",
        {"inputs": [{"name": "x", "shape": [-1, 4], "datatype": "FP64", "data": []}]},
        400,
        "shape",
    ),
    (
        "shape-3d",
        "POST",
        {
            "inputs": [
                {"name": "x", "shape": [1, 1, 4], "datatype": "FP64", "data": [[[1, 2, 3, 4]]]}
            ]
        },
        400,
        "shape",
    ),
    (
        "datatype-unknown",
        "POST",
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP128", "data": [1, 2, 3, 4]}]},
        400,
        "FP128",
    ),
    (
        "data-not-list",
        "POST",
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": 1}]},
        400,
        "data must be a list",
    ),
    (
        "count-mismatch",
        "POST",
        {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}]},
        400,
        "needs 8",
    ),
    (
        "text-in-fp64",
        "POST",
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, "a", 3, 4]}]},
        400,
        "not a FP64 value",
    ),
    (
        "bool-in-fp64",
        "POST",
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, True, 3, 4]}]},
        400,
        "not a FP64 value",
    ),
    (
        "float-in-int64",
        "POST",
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "INT64", "data": [1, 2.5, 3, 4]}]},
        400,
        "not a INT64 value",
    ),
    (
        "unknown-input",
        "POST",
        {"inputs": [{"name": "colour", "shape": [1], "datatype": "FP64", "data": [1]}]},
        400,
        "unknown input 'colour'",
    ),
    (
        "missing-feature",
        "POST",
        {"inputs": per_feature(ROWS)["inputs"][:3]},
        400,
        "missing input(s): petal width (cm)",
    ),
    (
        "row-mismatch",
        "POST",
        {
            "inputs": [
                *per_feature(ROWS)["inputs"][:3],
                {"name": IRIS[3], "shape": [1], "datatype": "FP64", "data": [0.2]},
            ]
        },
        400,
        "rows",
    ),
    (
        "wrong-width",
        "POST",
        {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]},
        400,
        "shape [N, 4]",
    ),
    (
        "unknown-output",
        "POST",
        per_feature(ROWS) | {"outputs": [{"name": "explain"}]},
        400,
        "unknown output 'explain'",
    ),
    (
        "outputs-object",
        "POST",
        per_feature(ROWS) | {"outputs": {"name": "predict"}},
        400,
        "`outputs` must be a list",
    ),
    ("get-infer", "GET", None, 405, "use POST"),
    # Found by attacking the server (issue 10): each of these answered 500 before.
    (
        "datatype-list",
        "POST",
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": [], "data": [1, 2, 3, 4]}]},
        400,
        "datatype [] is not one of",
    ),
    (
        "datatype-object",
        "POST",
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": {}, "data": [1, 2, 3, 4]}]},
        400,
        "datatype {} is not one of",
    ),
    (
        "huge-integer-fp64",
        "POST",
        {
            "inputs": [
                {"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [10**400, 2, 3, 4]}
            ]
        },
        400,
        "beyond the range of FP64",
    ),
    (
        "huge-integer-fp32",
        "POST",
        {
            "inputs": [
                {"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, -(10**400)]}
            ]
        },
        400,
        "beyond the range of FP64",
    ),
    (
        "huge-integer-int64-with-null",
        "POST",
        {
            "inputs": [
                {"name": "x", "shape": [1, 4], "datatype": "INT64", "data": [10**400, None, 3, 4]}
            ]
        },
        400,
        "beyond the range of FP64",
    ),
    (
        "deeply-nested",
        "POST",
        b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        400,
        "nested too deeply",
    ),
]


@pytest.mark.parametrize(
    ("case", "method", "body", "status", "fragment"), MALFORMED, ids=[c[0] for c in MALFORMED]
)
def test_malformed_requests_get_a_4xx_and_the_server_stays_up(
    iris_server: int, case: str, method: str, body: Any, status: int, fragment: str
) -> None:
    got, answer = request(iris_server, method, "/v2/models/iris-classifier/infer", body)
    assert got == status, answer
    assert set(answer) == {"error"} and fragment in answer["error"]
    assert request(iris_server, "GET", "/v2/health/live")[0] == 200


def test_unknown_model_version_route_and_size(iris_server: int) -> None:
    assert request(iris_server, "POST", "/v2/models/other/infer", per_feature(ROWS))[0] == 404
    assert (
        request(
            iris_server, "POST", "/v2/models/iris-classifier/versions/nope/infer", per_feature(ROWS)
        )[0]
        == 404
    )
    assert request(iris_server, "GET", "/v2/models/other")[0] == 404
    assert request(iris_server, "GET", "/nothing")[0] == 404
    status, answer = request(
        iris_server, "POST", "/v2/models/iris-classifier/infer", b" " * (9 * 1024 * 1024)
    )
    assert status == 413 and "over" in answer["error"]


def test_text_for_a_numeric_feature_is_refused(csv_server: int) -> None:
    status, meta = request(csv_server, "GET", "/v2/models/diabetes-progression")
    sample = {"BYTES": "x", "INT64": 1, "FP64": 1.0}
    inputs = [
        {
            "name": i["name"],
            "shape": [1],
            "datatype": i["datatype"],
            "data": [sample[i["datatype"]]],
        }
        for i in meta["inputs"]
    ]
    inputs[2]["data"] = [3]  # `sex` is BYTES: a number is not a string
    status, answer = request(
        csv_server, "POST", "/v2/models/diabetes-progression/infer", {"inputs": inputs}
    )
    assert status == 400 and "not a BYTES value" in answer["error"]


def test_prometheus_metrics_count_requests_and_errors(iris_server: int) -> None:
    request(iris_server, "POST", "/v2/models/iris-classifier/infer", per_feature(ROWS))
    request(iris_server, "POST", "/v2/models/iris-classifier/infer", b"{")
    status, text = request(iris_server, "GET", "/metrics")
    assert status == 200
    assert 'mlops_requests_total{route="infer",status="200"}' in text
    assert 'mlops_request_errors_total{route="infer"}' in text
    assert 'mlops_request_seconds_bucket{route="infer",le="+Inf"}' in text


def test_concurrent_requests_each_get_their_own_predictions(
    iris_server: int, iris_run: Path
) -> None:
    """Requests that arrive while the model is busy share a call; the answers stay per request."""
    model = bundle.load_model(iris_run / "model" / "model.skops")
    frame = load_iris(as_frame=True).data
    chunks = [frame.iloc[i : i + 1 + i % 5] for i in range(40)]

    def ask(chunk: pd.DataFrame) -> tuple[int, Any]:
        rows = chunk.to_numpy().tolist()
        return request(iris_server, "POST", "/v2/models/iris-classifier/infer", per_feature(rows))

    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(ask, chunks))
    for chunk, (status, body) in zip(chunks, answers, strict=True):
        assert status == 200, body
        outputs = {o["name"]: o["data"] for o in body["outputs"]}
        assert outputs["predict"] == model.predict(chunk).tolist()
        assert outputs["predict_proba"] == model.predict_proba(chunk).ravel().tolist()
    text = request(iris_server, "GET", "/metrics")[1]
    assert re.search(r"^mlops_model_calls_total \d+$", text, re.MULTILINE)


def test_an_overloaded_server_answers_503_with_retry_after(
    iris_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In process: the app over the real model, with room for two waiting requests."""
    from gitops_mlops.serving import batching, sklearn_runtime
    from gitops_mlops.serving.app import Server
    from gitops_mlops.serving.http import Request, Response

    monkeypatch.setattr(batching, "MAX_QUEUED_REQUESTS", 2)
    server = Server(sklearn_runtime.load(iris_run / "model"))
    body = json.dumps(per_feature(ROWS)).encode()

    async def ask() -> Response:
        answer = server.handle(Request("POST", "/v2/models/iris-classifier/infer", {}, body))
        return answer if isinstance(answer, Response) else await answer

    async def four_at_once() -> list[Response]:
        return await asyncio.gather(*(ask() for _ in range(4)))

    responses = asyncio.run(four_at_once())
    assert sorted(r.status for r in responses) == [200, 200, 503, 503]
    busy = [r for r in responses if r.status == 503]
    assert all((b"retry-after", b"1") in r.headers for r in busy)
    assert all("retry shortly" in json.loads(r.body)["error"] for r in busy)


def test_sigterm_stops_the_server_cleanly(iris_run: Path) -> None:
    command, port = start(iris_run)
    with serving(command, port) as process:
        process.send_signal(signal.SIGTERM)
        # The server drains in-flight requests and exits: promptly, instead of Docker's
        # SIGKILL 10 s later.
        assert process.wait(timeout=20) in (0, -signal.SIGTERM)


# Slow and stalled clients (issue 10). The server's limits come from its environment; these
# tests shorten the timeouts so that a client that stalls is seen to be dropped.
QUICK = {"MLOPS_HEADER_TIMEOUT": "1", "MLOPS_BODY_TIMEOUT": "1", "MLOPS_IDLE_TIMEOUT": "1"}


@contextmanager
def limited_server(
    run: Path, env: dict[str, str], descriptors: int | None = None
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    command, port = start(run)
    command += ["--workers", "1"]

    def limit() -> None:
        if descriptors is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (descriptors, descriptors))

    process = subprocess.Popen(
        command,
        env={**os.environ, **env},
        preexec_fn=limit,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_ready(port)
        yield port, process
    finally:
        process.terminate()
        process.wait(timeout=30)


def closed_by_server(sock: socket.socket, within: float) -> bytes:
    """What the server sent before closing the connection; fails if it stays open."""
    sock.settimeout(within)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        pytest.fail(f"the server kept the connection open for {within} s; got {received!r}")
    except ConnectionResetError:
        pass
    return received


def test_stalled_headers_slow_bodies_and_idle_connections_are_closed(iris_run: Path) -> None:
    with limited_server(iris_run, QUICK) as (port, _):
        silent = socket.create_connection(("127.0.0.1", port))
        partial = socket.create_connection(("127.0.0.1", port))
        partial.sendall(b"POST /v2/models/iris-classifier/infer HTTP/1.1\r\nHost: x\r\n")
        slow_body = socket.create_connection(("127.0.0.1", port))
        slow_body.sendall(
            b"POST /v2/models/iris-classifier/infer HTTP/1.1\r\nHost: x\r\n"
            b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"inputs"'
        )
        idle = socket.create_connection(("127.0.0.1", port))
        idle.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        # Each timeout is 1 s; the server checks twice a second.
        assert closed_by_server(silent, 4) == b""
        assert closed_by_server(partial, 4).startswith(b"HTTP/1.1 408 ")
        assert closed_by_server(slow_body, 4).startswith(b"HTTP/1.1 408 ")
        answer = closed_by_server(idle, 4)  # the answer, then the close after 1 s idle
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b'{"live":true}')
        for sock in (silent, partial, slow_body, idle):
            sock.close()
        assert request(port, "GET", "/v2/health/ready") == (200, {"ready": True})


def test_health_answers_with_1100_stalled_connections_under_1024_descriptors(
    iris_run: Path,
) -> None:
    """Headers that never finish, from more clients than the server has descriptors: the
    oldest stalled connection makes room for each new one, so health checks still answer."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1500:  # this test holds the 1,100 client ends itself
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    stalled: list[socket.socket] = []
    with limited_server(iris_run, {}, descriptors=1024) as (port, process):
        try:
            for _ in range(1100):
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                sock.sendall(b"POST /v2/models/iris-classifier/infer HTTP/1.1\r\nHost: x\r\n")
                stalled.append(sock)
            for _ in range(3):
                assert request(port, "GET", "/v2/health/ready", timeout=5) == (200, {"ready": True})
            status, body = request(
                port, "POST", "/v2/models/iris-classifier/infer", per_feature(ROWS), timeout=5
            )
            assert status == 200, body
            metrics = request(port, "GET", "/metrics", timeout=5)[1]
            evicted = re.search(
                r'mlops_connections_closed_total\{reason="evicted"\} (\d+)', metrics
            )
            assert evicted and int(evicted[1]) >= 1100 - 1024
        finally:
            for sock in stalled:
                sock.close()
        assert process.poll() is None


def test_oversized_headers_get_431_and_malformed_http_400(iris_server: int) -> None:
    with socket.create_connection(("127.0.0.1", iris_server)) as sock:
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
        assert closed_by_server(sock, 10).startswith(b"HTTP/1.1 431 ")
    with socket.create_connection(("127.0.0.1", iris_server)) as sock:
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\n" + b"X-A: b\r\n" * 200 + b"\r\n")
        assert closed_by_server(sock, 10).startswith(b"HTTP/1.1 431 ")
    with socket.create_connection(("127.0.0.1", iris_server)) as sock:
        sock.sendall(b"\x16\x03\x01 not http at all\r\n\r\n")  # e.g. TLS sent to plain HTTP
        assert closed_by_server(sock, 10).startswith(b"HTTP/1.1 400 ")
    assert request(iris_server, "GET", "/v2/health/live")[0] == 200


def test_keep_alive_pipelining_and_expect_continue(iris_server: int) -> None:
    body = json.dumps(per_feature(ROWS)).encode()
    infer = (
        b"POST /v2/models/iris-classifier/infer HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    with socket.create_connection(("127.0.0.1", iris_server), timeout=30) as sock:
        # Three requests in one write: three answers, in order, on the same connection.
        sock.sendall(infer + b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n" + infer)
        received = b""
        while received.count(b"HTTP/1.1 200 OK") < 3:
            received += sock.recv(65536)
        first, second, third = received.split(b"HTTP/1.1 200 OK")[1:]
        assert b'"predict"' in first and second.endswith(b'{"live":true}') and first == third
        # curl sends `Expect: 100-continue` before bodies over 1 KiB and waits for the go-ahead.
        sock.sendall(infer.replace(b"Host: x\r\n", b"Host: x\r\nExpect: 100-continue\r\n", 1))
        received = b""
        while b'"outputs"' not in received:
            received += sock.recv(65536)
        assert received.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK")


def refused_from_now_on(port: int, within: float) -> None:
    """New connections to `port` are refused within `within` seconds, and then every one."""
    deadline = time.monotonic() + within
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            break
        # Accepted by the kernel: queued for a worker that will never take it.
        assert time.monotonic() < deadline, f"port {port} still accepts connections"
        time.sleep(0.05)
    for _ in range(50):  # each a new source port: spread over every socket the group had
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_sigterm_answers_the_request_in_flight_refuses_new_connections_then_exits(
    iris_run: Path,
) -> None:
    """What Kubernetes expects of a pod it stops: the request in flight is answered, a new
    connection is refused at once (not queued until the process exits), exit 0."""
    command, port = start(iris_run)
    with serving([*command, "--workers", "2"], port) as process:
        body = json.dumps(per_feature(ROWS)).encode()
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(
            b"POST /v2/models/iris-classifier/infer HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body[:-10])
        )
        time.sleep(0.5)  # the request is in the server before the signal
        process.send_signal(signal.SIGTERM)
        refused_from_now_on(port, within=2)
        sock.sendall(body[-10:])
        answer = closed_by_server(sock, 20)
        assert answer.startswith(b"HTTP/1.1 200 OK") and b"connection: close" in answer
        assert b'"predict"' in answer
        assert process.wait(timeout=5) == 0


def test_metrics_are_the_totals_of_every_worker(iris_run: Path) -> None:
    """A scrape reaches one worker process; its answer counts what all of them answered."""
    command, port = start(iris_run)
    with serving([*command, "--workers", "2"], port):
        sent = 0
        per_worker: list[int] = []
        while sent < 400 and (len(per_worker) < 2 or min(per_worker) < 2):
            # New connections: the kernel gives each to whichever worker accepts it first.
            assert request(port, "GET", "/v2/models/iris-classifier")[0] == 200
            sent += 1
            text = request(port, "GET", "/metrics")[1]
            per_worker = [
                int(n)
                for n in re.findall(
                    r'^mlops_worker_requests_total\{worker="\d"\} (\d+)$', text, re.MULTILINE
                )
            ]
        assert len(per_worker) == 2 and min(per_worker) >= 2, per_worker
        assert "mlops_workers 2" in text
        metadata = re.search(
            r'^mlops_requests_total\{route="metadata",status="200"\} (\d+)$', text, re.MULTILINE
        )
        scrapes = re.search(
            r'^mlops_requests_total\{route="metrics",status="200"\} (\d+)$', text, re.MULTILINE
        )
        assert metadata and int(metadata[1]) == sent
        assert scrapes and int(scrapes[1]) == sent - 1  # this scrape is counted once answered
        every = re.findall(r"^mlops_requests_total\{.*\} (\d+)$", text, re.MULTILINE)
        assert sum(per_worker) == sum(int(n) for n in every)  # health checks too


def test_connections_that_arrive_together_are_spread_over_the_workers(iris_run: Path) -> None:
    """64 clients connecting at once: each worker gets a share, not one worker all of them
    (with one shared listening socket, the first worker to wake accepted every one)."""
    command, port = start(iris_run)
    with serving([*command, "--workers", "2"], port):
        clients = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(64)]
        try:
            for client in clients:
                client.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: test\r\n\r\n")
            for client in clients:
                assert client.recv(4096).startswith(b"HTTP/1.1 200")
        finally:
            for client in clients:
                client.close()
        text = request(port, "GET", "/metrics")[1]
    per_worker = [
        int(n)
        for n in re.findall(r'^mlops_worker_requests_total\{worker="\d"\} (\d+)$', text, re.M)
    ]
    # Spread by a hash of each connection's address: under 16 of 64 on either side is a
    # 1-in-40,000 draw.
    assert len(per_worker) == 2 and min(per_worker) >= 16, per_worker


def test_a_second_server_on_the_port_of_a_running_one_fails(iris_run: Path) -> None:
    """Any process of the same user may join a SO_REUSEPORT group: a second server started
    by mistake on a busy port would share its connections (half of them answered by another
    model). It is refused, as a port in use is without SO_REUSEPORT."""
    command, port = start(iris_run)
    with serving([*command, "--workers", "2"], port):
        second = subprocess.Popen(
            [*command, "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            _, err = second.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            second.terminate()  # SIGTERM: its workers stop too
            second.communicate(timeout=30)
            pytest.fail("a second server started on the port of a running one")
        assert second.returncode == 1, err
        assert f"cannot listen on 127.0.0.1:{port}" in err
        assert "Address already in use" in err and "Traceback" not in err


# tritonclient, the reference V2 client: binary tensors by default, JSON when asked.
def triton_infer(
    port: int, model: str, inputs: list[tuple[str, np.ndarray, str, bool]], binary_out: bool
) -> Any:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=f"127.0.0.1:{port}")
    tensors = []
    for name, values, datatype, binary in inputs:
        tensor = triton.InferInput(name, list(values.shape), datatype)
        tensor.set_data_from_numpy(values, binary_data=binary)
        tensors.append(tensor)
    outputs = [
        triton.InferRequestedOutput(name, binary_data=binary_out)
        for name in ("predict", "predict_proba")
        if model == "iris-classifier" or name == "predict"
    ]
    return client.infer(model, tensors, outputs=outputs)


def test_tritonclient_binary_and_json_tensors(iris_server: int, iris_run: Path) -> None:
    import tritonclient.http as triton

    model = bundle.load_model(iris_run / "model" / "model.skops")
    rows = load_iris(as_frame=True).data.iloc[::7]
    expected = model.predict(rows)
    client = triton.InferenceServerClient(url=f"127.0.0.1:{iris_server}")
    assert client.is_server_ready() and client.is_model_ready("iris-classifier")
    assert client.get_model_metadata("iris-classifier")["inputs"][0]["name"] == IRIS[0]
    matrix = rows.to_numpy(dtype=np.float64)
    for binary_in in (True, False):
        for binary_out in (True, False):
            result = triton_infer(
                iris_server,
                "iris-classifier",
                [("x", matrix, "FP64", binary_in)],
                binary_out,
            )
            assert result.as_numpy("predict").tolist() == expected.tolist()
            assert result.as_numpy("predict_proba") == pytest.approx(model.predict_proba(rows))
    # One tensor per feature; no outputs named: every output comes back binary.
    tensors = []
    for name in IRIS:
        tensor = triton.InferInput(name, [len(rows)], "FP64")
        tensor.set_data_from_numpy(rows[name].to_numpy())
        tensors.append(tensor)
    result = client.infer("iris-classifier", tensors)
    assert result.get_output("predict")["parameters"]["binary_data_size"] == 8 * len(rows)
    assert result.as_numpy("predict").tolist() == expected.tolist()


def test_tritonclient_text_columns(csv_server: int, csv_run: Path) -> None:
    model = bundle.load_model(csv_run / "model" / "model.skops")
    raw = pd.read_csv(ROOT / "examples" / "diabetes-csv" / "data" / "diabetes.csv").head(6)
    raw = raw.drop(columns="progression")
    raw.loc[2, "bmi"] = float("nan")
    inputs = []
    for column in raw.columns:
        values = raw[column].to_numpy()
        if values.dtype.kind in "iu":
            inputs.append((column, values.astype(np.int64), "INT64", True))
        elif values.dtype.kind == "f":
            inputs.append((column, values.astype(np.float64), "FP64", True))
        else:
            inputs.append((column, values.astype(object), "BYTES", column == "sex"))
    result = triton_infer(csv_server, "diabetes-progression", inputs, binary_out=True)
    assert result.as_numpy("predict") == pytest.approx(model.predict(raw))


def test_malformed_binary_requests_get_a_4xx(iris_server: int) -> None:
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [1, 4],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": 32},
                }
            ]
        }
    ).encode()
    values = np.array([5.1, 3.5, 1.4, 0.2]).tobytes()
    cases = [
        (head + values[:-8], str(len(head)), "runs past"),
        (head + values + b"\0", str(len(head)), "add up to"),
        (head + values, str(len(head) + 999), "not a length within"),
        (head + values, "-5", "not a length within"),
    ]
    for body, length, fragment in cases:
        connection = http.client.HTTPConnection("127.0.0.1", iris_server, timeout=30)
        connection.request(
            "POST",
            "/v2/models/iris-classifier/infer",
            body=body,
            headers={"Inference-Header-Content-Length": length},
        )
        response = connection.getresponse()
        answer = json.loads(response.read())
        connection.close()
        assert response.status == 400 and fragment in answer["error"], answer
    status, answer = request(
        iris_server, "POST", "/v2/models/iris-classifier/infer", b"\x1f\x8b gzip?"
    )
    assert status == 400  # not JSON; and a compressed body is refused by its header:
    connection = http.client.HTTPConnection("127.0.0.1", iris_server, timeout=30)
    connection.request(
        "POST",
        "/v2/models/iris-classifier/infer",
        body=b"\x1f\x8b",
        headers={"Content-Encoding": "gzip"},
    )
    response = connection.getresponse()
    assert response.status == 415 and "uncompressed" in json.loads(response.read())["error"]

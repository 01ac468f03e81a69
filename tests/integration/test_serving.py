"""The model server, run for real (`mlops serve`), speaking the Open Inference Protocol."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from collections.abc import Iterator, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.datasets import load_iris

from gitops_mlops import bundle
from tests.conftest import ROOT
from tests.integration.helpers import copy_example, run_until
from tests.integration.server_helpers import free_port, request, serving


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
    from gitops_mlops.serving import batching
    from gitops_mlops.serving.app import Server
    from gitops_mlops.serving.model import load

    monkeypatch.setattr(batching, "MAX_QUEUED_REQUESTS", 2)
    server = Server(load(iris_run / "model"))
    body = json.dumps(per_feature(ROWS)).encode()
    sent: list[dict[str, Any]] = []

    async def ask() -> None:
        scope = {"type": "http", "method": "POST", "path": "/v2/models/iris-classifier/infer"}

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(dict(message))

        await server(scope, receive, send)

    async def four_at_once() -> None:
        await asyncio.gather(*(ask() for _ in range(4)))

    asyncio.run(four_at_once())
    starts = [m for m in sent if m["type"] == "http.response.start"]
    bodies = [json.loads(m["body"]) for m in sent if m["type"] == "http.response.body"]
    assert sorted(m["status"] for m in starts) == [200, 200, 503, 503]
    busy = [m for m in starts if m["status"] == 503]
    assert all((b"retry-after", b"1") in m["headers"] for m in busy)
    assert sum("retry shortly" in b.get("error", "") for b in bodies) == 2


def test_sigterm_stops_the_server_cleanly(iris_run: Path) -> None:
    command, port = start(iris_run)
    with serving(command, port) as process:
        process.send_signal(signal.SIGTERM)
        # uvicorn drains in-flight requests, then re-raises the signal: the conventional
        # "terminated by SIGTERM" status, promptly, instead of Docker's 10 s SIGKILL.
        assert process.wait(timeout=20) in (0, -signal.SIGTERM)

"""MLflow tracking against a real `mlflow server` (SQLite store) on loopback, read back
through MLflow's own client."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.integration.helpers import copy_example
from tests.integration.server_helpers import free_port
from tests.integration.services import clean_env, mlflow_server

pytest.importorskip("mlflow", reason="needs mlflow (the server) and gitops-mlops[mlflow]")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as uri:
        yield uri


def tracked_example(folder: Path, required: bool = False) -> Path:
    spec = copy_example(folder)
    # Without the latency threshold: a loaded machine must not change the verdict here.
    text = re.sub(r"(?m)^ *- \{metric: latency_p95_ms, max: [0-9.]+\}.*\n", "", spec.read_text())
    text += "tracking:\n  mlflow: {experiment: iris-experiments}\n"
    if required:
        text += "  required: true\n"
    spec.write_text(text)
    return spec


def test_a_pull_request_run_is_logged_and_linked(mlflow_uri: str, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    spec = tracked_example(tmp_path)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)  # the spec's repository
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 7}}))
    summary = tmp_path / "summary.md"
    env = clean_env(
        MLFLOW_TRACKING_URI=mlflow_uri,
        GITHUB_ACTIONS="true",
        GITHUB_EVENT_NAME="pull_request",
        GITHUB_EVENT_PATH=str(event),
        GITHUB_STEP_SUMMARY=str(summary),
        GITHUB_SHA="0123456789abcdef0123456789abcdef01234567",
    )
    env = {k: v for k, v in env.items() if k not in ("GITHUB_TOKEN", "MLOPS_GITHUB_TOKEN")}
    result = run_cli("run", str(spec), "--out", str(tmp_path / "run"), env=env)
    assert result.code == 0, result.out + result.err

    client = MlflowClient(tracking_uri=mlflow_uri)
    experiment = client.get_experiment_by_name("iris-experiments")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], "tags.`mlops.pull_request` = '7'")
    assert len(runs) == 1
    run = runs[0]
    manifest = json.loads((tmp_path / "run" / "model" / "manifest.json").read_text())
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())

    assert "{metric: latency_p95_ms" not in spec.read_text()
    assert run.data.params["n_estimators"] == "100"
    assert run.data.params["estimator"] == "sklearn.ensemble.RandomForestClassifier"
    accuracy = metrics["metrics"]["accuracy"]
    assert run.data.metrics["accuracy"] == pytest.approx(accuracy["value"])
    assert run.data.metrics["accuracy_ci_low"] == pytest.approx(accuracy["ci_low"])
    assert run.data.metrics["accuracy_ci_high"] == pytest.approx(accuracy["ci_high"])
    assert "slice/long-petals/accuracy" in run.data.metrics
    assert "latency_p95_ms" in run.data.metrics
    assert "latency_p95_ms_ci_low" not in run.data.metrics  # latency has no interval
    tags = run.data.tags
    assert tags["mlops.model_version"] == manifest["model_version"]
    assert tags["mlops.verdict"] == "passed"
    assert tags["mlops.spec"] == "iris/mlops.yaml"
    assert tags["mlops.event"] == "pull_request"
    assert tags["mlops.commit"] == env["GITHUB_SHA"]
    assert run.info.status == "FINISHED"
    logged = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert logged == {"manifest.json", "metrics.json", "verdict.json", "report.md", "model-card.md"}
    card = Path(client.download_artifacts(run.info.run_id, "model-card.md", str(tmp_path)))
    assert card.read_text() == (tmp_path / "run" / "model-card.md").read_text()
    assert manifest["model_version"] in card.read_text()

    link = f"{mlflow_uri}/#/experiments/{experiment.experiment_id}/runs/{run.info.run_id}"
    assert link in (tmp_path / "run" / "report.md").read_text()
    assert link in summary.read_text()
    report = Path(client.download_artifacts(run.info.run_id, "report.md", str(tmp_path)))
    assert link in report.read_text()  # the logged report has the link too


def test_a_search_s_best_params_are_logged(mlflow_uri: str, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    spec = tracked_example(tmp_path)
    text = spec.read_text().replace(
        "  preprocess: auto\n",
        "  preprocess: auto\n  search: {cv: 3, space: {max_depth: [2, 4]}}\n",
    )
    spec.write_text(text)
    env = clean_env(MLFLOW_TRACKING_URI=mlflow_uri)
    result = run_cli("run", str(spec), "--until", "gate", "--out", str(tmp_path / "r"), env=env)
    assert result.code == 0, result.out + result.err
    manifest = json.loads((tmp_path / "r" / "model" / "manifest.json").read_text())
    client = MlflowClient(tracking_uri=mlflow_uri)
    version = manifest["model_version"]
    experiment = client.get_experiment_by_name("iris-experiments")
    assert experiment is not None
    runs = client.search_runs(
        [experiment.experiment_id],
        f"tags.`mlops.model_version` = '{version}' and tags.`mlops.event` = 'push'",
    )
    assert runs and runs[0].data.params["best.max_depth"] == str(
        manifest["best_params"]["max_depth"]
    )


def test_a_server_that_is_down_only_warns(tmp_path: Path) -> None:
    spec = tracked_example(tmp_path)
    down = f"http://127.0.0.1:{free_port()}"
    env = clean_env(MLFLOW_TRACKING_URI=down)
    result = run_cli("run", str(spec), "--until", "gate", "--out", str(tmp_path / "r"), env=env)
    assert result.code == 0, result.out + result.err
    assert f"warning: MLflow at {down} refuses connections: nothing listens there" in result.out
    assert "the run was not tracked (tracking.required: false)" in result.out
    assert "MLflow run" not in (tmp_path / "r" / "report.md").read_text()
    # The stage's line says it did not track; `ok` would read as tracked.
    assert re.search(r"(?m)^track +warn ", result.out), result.out
    assert not re.search(r"(?m)^track +ok ", result.out)


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A port that accepts connections and never answers (a hung server, a dropped route)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        server.close()


def test_a_server_that_never_answers_is_bounded_and_only_warns(tmp_path: Path) -> None:
    spec = tracked_example(tmp_path)
    with silent_listener() as port:
        env = clean_env(MLFLOW_TRACKING_URI=f"http://127.0.0.1:{port}")
        started = time.monotonic()
        result = run_cli("run", str(spec), "--until", "gate", "--out", str(tmp_path / "r"), env=env)
        took = time.monotonic() - started
    assert result.code == 0, result.out + result.err
    assert f"warning: MLflow at http://127.0.0.1:{port} does not answer within 5 s" in result.out
    assert took < 120, took  # the health check's 5 s, plus training


# Each is a mistake someone makes in mlflow-tracking-uri; none may fail a pull request's gate.
ODD_URIS = {
    "no scheme, with port": ("localhost:5000", "'localhost:5000' is not a URL"),
    "no scheme": ("mlflow.example.com", "'mlflow.example.com' is not a URL"),
    "no scheme, user info": ("bob:s3cr3tpw@mlflow:5000", "'mlflow:5000' is not a URL"),
    "file store": ("file:///{tmp}/mlruns", "needs MLFLOW_ALLOW_FILE_STORE=true"),
    "basic auth in the URI": (
        "http://bob:s3cr3tpw@127.0.0.1:{port}",
        "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD instead",
    ),
}


@pytest.mark.parametrize("required", [False, True], ids=["optional", "required"])
def test_a_tracking_uri_mlflow_cannot_use_warns_or_fails_located(
    tmp_path: Path, required: bool
) -> None:
    spec = tracked_example(tmp_path, required=required)
    out = tmp_path / "r"
    trained = run_cli("run", str(spec), "--until", "evaluate", "--out", str(out), env=clean_env())
    assert trained.code == 0, trained.out + trained.err
    for name, (uri, said) in ODD_URIS.items():
        uri = uri.format(tmp=tmp_path, port=free_port())
        result = run_cli("gate", str(out), env=clean_env(MLFLOW_TRACKING_URI=uri))
        text = result.out + result.err
        assert "internal error" not in text and "Traceback" not in text, (name, text)
        assert said in text, (name, text)
        assert "s3cr3tpw" not in text and "bob" not in text, (name, text)
        if required:
            assert result.code == 1, (name, text)
            assert "(tracking.required is true)" in result.err, (name, text)
        else:
            assert result.code == 0, (name, text)
            assert "the run was not tracked (tracking.required: false)" in result.out, name


def test_a_required_tracker_that_is_down_fails_the_run(tmp_path: Path) -> None:
    spec = tracked_example(tmp_path, required=True)
    down = f"http://user:pa55word@127.0.0.1:{free_port()}"
    env = clean_env(MLFLOW_TRACKING_URI=down)
    result = run_cli("run", str(spec), "--until", "gate", "--out", str(tmp_path / "r"), env=env)
    assert result.code == 1, result.out + result.err
    assert "error: MLflow at http://127.0.0.1:" in result.err
    assert "(tracking.required is true)" in result.err
    assert "pa55word" not in result.out + result.err


def test_no_tracking_uri_is_a_warning_that_says_what_to_set(tmp_path: Path) -> None:
    spec = tracked_example(tmp_path)
    result = run_cli(
        "run", str(spec), "--until", "gate", "--out", str(tmp_path / "r"), env=clean_env()
    )
    assert result.code == 0, result.out + result.err
    assert "tracking.mlflow is set, but MLFLOW_TRACKING_URI is not" in result.out

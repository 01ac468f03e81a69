"""Serving images on a real Docker engine and registry, for both serving runtimes."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from gitops_mlops.integrations import docker
from gitops_mlops.reporting import markdown
from gitops_mlops.serving.runtimes import RUNTIMES
from tests.conftest import run_cli
from tests.image_setup import BASE_IMAGE, installed_packages, pip_name, require
from tests.integration.helpers import copy_example, run_until
from tests.integration.server_helpers import free_port, request, serving, wait_ready
from tests.integration.test_serving import MALFORMED, ROWS, per_feature

BASE = BASE_IMAGE
# A repository of its own per test session, so the first push is always a build (a registry
# that already holds this model would be reused) and the session's images can be removed.
IMAGE = f"localhost:5000/test/iris-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def engine() -> Any:
    """The engine, with the base image to build on and the registry to push to."""
    return require(base_image=True, registry=True)


def project(folder: Path, n_estimators: int = 50, budget: int = 450) -> Path:
    spec = copy_example(folder)
    text = spec.read_text().replace("localhost:5000/acme/iris-classifier", IMAGE)
    text = text.replace("n_estimators: 100", f"n_estimators: {n_estimators}")
    text = text.replace("size_budget_mb: 500", f"size_budget_mb: {budget}")
    # These tests are about images; a busy machine's prediction latency must not gate them.
    text = text.replace("{metric: latency_p95_ms, max: 50}", "{metric: latency_p95_ms, max: 1e4}")
    spec.write_text(text)
    return spec


def train(spec: Path, out: Path) -> Path:
    # A build needs the model, not the verdict: no latency gate to trip on a busy machine.
    return run_until(spec, out, "evaluate")


@pytest.fixture(scope="module")
def pushed(engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("build")
    run = train(project(folder), folder / "run")
    result = run_cli("build", str(run), "--base-image", BASE, "--push")
    assert result.code == 0, result.out + result.err
    data: dict[str, Any] = json.loads((run / "build.json").read_text())
    data["run"] = run
    data["folder"] = folder
    # The image itself: the sklearn image of the same model version gets the same tag.
    data["image_id"] = engine.images.get(data["reference"]).id
    data["out"] = result.out
    yield data
    _remove_session_images(engine)


def _remove_session_images(engine: Any) -> None:
    from docker.errors import DockerException

    from gitops_mlops.integrations.registry import Reference, Registry

    reference = Reference.parse(IMAGE)
    registry = Registry(reference.registry, {})
    for tag in registry.tags(reference.repository):
        found = registry.resolve(reference.repository, tag)
        if found is not None:
            registry.delete(reference.repository, found.digest)
    for image in engine.images.list(name=IMAGE):
        for tag in image.tags:
            with contextlib.suppress(DockerException):
                engine.images.remove(tag)


def test_build_smoke_push_remove_pull_compare(engine: Any, pushed: dict[str, Any]) -> None:
    assert pushed["pushed"] is True and pushed["smoke_test"]["passed"] is True
    assert pushed["digest"].startswith("sha256:") and len(pushed["digest"]) == 71
    engine.images.remove(pushed["reference"], force=True)
    pulled = engine.images.pull(IMAGE, tag=pushed["tag"])
    assert f"{IMAGE}@{pushed['digest']}" in pulled.attrs["RepoDigests"]
    assert engine.images.get_registry_data(pushed["reference"]).id == pushed["digest"]


def test_image_runs_as_non_root_with_healthcheck_and_labels(
    engine: Any, pushed: dict[str, Any]
) -> None:
    config = engine.images.get(pushed["reference"]).attrs["Config"]
    assert config["User"] == "65532:65532"
    assert "/v2/health/ready" in " ".join(config["Healthcheck"]["Test"])
    labels = config["Labels"]
    manifest = json.loads((pushed["run"] / "model" / "manifest.json").read_text())
    assert labels["org.opencontainers.image.version"] == manifest["model_version"]
    assert labels["io.gitops-mlops.model.digest"] == manifest["model_digest"]
    assert labels["io.gitops-mlops.spec.digest"] == manifest["spec_digest"]
    assert labels["io.gitops-mlops.data.digest"] == manifest["data_digest"]
    assert labels["io.gitops-mlops.requirements"].split() == sorted(
        pushed["requirements"], key=str.lower
    )
    assert labels["org.opencontainers.image.base.name"] == BASE
    # Labels hold only what is fixed for a model version: no metrics, no latency, and no
    # build time (the run is not in a git repository, so there is no commit time either).
    assert not [key for key in labels if "metric" in key or "latency" in key]
    assert "org.opencontainers.image.created" not in labels
    for key in ("source", "revision", "title"):
        assert f"org.opencontainers.image.{key}" in labels
    assert pushed["size_bytes"] <= 450 * 1024 * 1024


def test_the_build_record_lists_what_pip_sees_in_the_image(
    engine: Any, pushed: dict[str, Any]
) -> None:
    recorded = {(pip_name(p["name"]), p["version"]) for p in pushed["packages"]}
    assert recorded == installed_packages(engine, pushed["reference"])
    wheels = {p["name"].lower(): p for p in pushed["packages"]}
    for pin in pushed["requirements"]:
        name = pin.split("==")[0].lower()
        assert wheels[name]["wheel"].endswith(".whl") and len(wheels[name]["sha256"]) == 64


def test_a_rebuild_of_the_same_model_reuses_the_pushed_digest(
    engine: Any, pushed: dict[str, Any], tmp_path: Path
) -> None:
    assert pushed["reused"] is False and "reused" not in pushed["out"]
    # The same spec and data, trained again elsewhere: the same model version and file.
    run = train(project(tmp_path), tmp_path / "run")
    result = run_cli("build", str(run), "--base-image", BASE, "--push")
    assert result.code == 0, result.out + result.err
    assert f"build     reused {pushed['digest']}" in result.out
    again = json.loads((run / "build.json").read_text())
    assert (again["reused"], again["digest"]) == (True, pushed["digest"])
    assert again["smoke_test"]["passed"] is True


def test_source_date_epoch_dates_the_image(engine: Any, tmp_path: Path) -> None:
    run = train(project(tmp_path, n_estimators=61), tmp_path / "run")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    env["SOURCE_DATE_EPOCH"] = "1700000000"
    assert run_cli("build", str(run), "--base-image", BASE, env=env).code == 0
    reference = json.loads((run / "build.json").read_text())["reference"]
    labels = engine.images.get(reference).attrs["Config"]["Labels"]
    assert labels["org.opencontainers.image.created"] == "2023-11-14T22:13:20Z"


def test_a_retrain_rebuilds_only_the_model_layer(
    engine: Any, pushed: dict[str, Any], tmp_path: Path
) -> None:
    # Build the first model again (the pull test replaced its local image), then a retrain.
    assert run_cli("build", str(pushed["run"]), "--base-image", BASE).code == 0
    run = train(project(tmp_path, n_estimators=60), tmp_path / "run")
    result = run_cli("build", str(run), "--base-image", BASE)
    assert result.code == 0, result.out + result.err
    rebuilt = json.loads((run / "build.json").read_text())
    assert rebuilt["tag"] != pushed["tag"]
    old = engine.images.get(IMAGE + ":" + pushed["tag"]).attrs["RootFS"]["Layers"]
    new = engine.images.get(rebuilt["reference"]).attrs["RootFS"]["Layers"]
    assert len(old) == len(new) and old[:-1] == new[:-1] and old[-1] != new[-1]


@pytest.fixture(scope="module")
def container_port(engine: Any, pushed: dict[str, Any]) -> Iterator[int]:
    with docker.running(engine, pushed["image_id"], 8080) as (container, port):
        docker.wait_ready(container, port, 90)
        yield port


def test_the_container_answers_and_refuses_malformed_requests(container_port: int) -> None:
    status, body = request(
        container_port, "POST", "/v2/models/iris-classifier/infer", per_feature(ROWS)
    )
    assert status == 200 and len(body["outputs"][0]["data"]) == 3
    for case, method, payload, expected, fragment in MALFORMED:
        got, answer = request(container_port, method, "/v2/models/iris-classifier/infer", payload)
        assert (got, fragment in answer.get("error", "")) == (expected, True), case
    assert request(container_port, "GET", "/v2/health/live")[0] == 200
    wait_ready(container_port)


def test_size_budget(engine: Any, tmp_path: Path) -> None:
    run = train(project(tmp_path, budget=50), tmp_path / "run")
    result = run_cli("build", str(run), "--base-image", BASE)
    assert result.code == 5
    assert "over container.size_budget_mb (50)" in result.err


def test_without_an_engine_the_context_is_written_and_build_exits_5(tmp_path: Path) -> None:
    run = train(project(tmp_path), tmp_path / "run")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    env["DOCKER_HOST"] = f"unix://{tmp_path}/no-docker.sock"
    result = run_cli("build", str(run), "--base-image", BASE, env=env)
    assert result.code == 5
    assert "no Docker engine answers" in result.err
    context = run / "image"
    assert any((context / "packages" / "wheels").glob("*.whl"))
    assert "--no-index" in (context / "packages" / "Dockerfile").read_text()
    dockerfile = (context / "model-image" / "Dockerfile").read_text()
    assert (
        dockerfile.index("COPY --from=packages")
        < dockerfile.index("COPY app/")
        < dockerfile.index("COPY model/")
    )
    pins = (context / "packages" / "requirements.txt").read_text().split()
    # container.runtime: auto, and the iris forest converts: the ONNX runtime's packages,
    # exactly (no dependencies pulled in), and the converted model.
    assert f"onnxruntime=={metadata.version('onnxruntime')}" in pins
    assert not any(pin.startswith(("scikit-learn", "scipy", "pandas")) for pin in pins)
    assert "--no-deps" in (context / "packages" / "Dockerfile").read_text()
    assert sorted(p.name for p in (context / "model-image" / "model").iterdir()) == [
        "manifest.json",
        "model.onnx",
        "runtime.json",
    ]


def test_push_builds_pushes_and_promotes_the_digest(engine: Any, tmp_path: Path) -> None:
    import yaml

    from tests.fake_github import FakeGitHub
    from tests.integration.test_promote import REPO, SOURCE, gitops_files

    spec = project(tmp_path)
    spec.write_text(spec.read_text().replace("repository: ../gitops ", f"repository: {REPO} "))
    with FakeGitHub() as github:
        github.create_repo(REPO, gitops_files())
        env = {
            **github.env(SOURCE),
            "GITHUB_EVENT_NAME": "push",
            "PATH": os.environ["PATH"],
            "HOME": os.environ.get("HOME", "/root"),
        }
        result = run_cli(
            "run", str(spec), "--out", str(tmp_path / "run"), "--base-image", BASE, env=env
        )
        assert result.code == 0, result.out + result.err
        build = json.loads((tmp_path / "run" / "build.json").read_text())
        pull = github.pulls[REPO][1]
        record = yaml.safe_load(
            github.read(REPO, pull.head, "apps/iris/staging/model-release.yaml")
        )
        report = (tmp_path / "run" / "report.md").read_text()
        assert "### Serving image" in report and "runtime **onnx**" in report
        head, requests = github.head(REPO, pull.head), len(github.requests)
        # The same push again (a rerun, or a commit that does not change the model): the
        # image is reused with the same digest, so nothing is committed and nothing opened.
        again = run_cli(
            "run", str(spec), "--out", str(tmp_path / "again"), "--base-image", BASE, env=env
        )
        assert again.code == 0, again.out + again.err
        assert f"reused {IMAGE}@{build['digest']}" in again.out
        # No new commit on the promotion branch, no second pull request (the open one's
        # body may be refreshed with this run's report).
        assert github.head(REPO, pull.head) == head and list(github.pulls[REPO]) == [1]
        assert [r for r in github.requests[requests:] if r[0] == "POST"] == []
    assert record["image"] == f"{IMAGE}@{build['digest']}"
    assert engine.images.get_registry_data(record["image"]).id == build["digest"]


# The ONNX runtime (container.runtime: auto converts the iris forest) and the sklearn one.
def test_the_onnx_image_holds_numpy_and_onnxruntime_not_scikit_learn(
    engine: Any, pushed: dict[str, Any]
) -> None:
    runtime = pushed["runtime"]
    assert (runtime["requested"], runtime["runtime"]) == ("auto", "onnx")
    comparison = runtime["comparison"]
    n_test = json.loads((pushed["run"] / "metrics.json").read_text())["n_test"]
    assert comparison["passed"] and comparison["rows"] == n_test
    assert comparison["label_agreement"] == 1.0
    assert comparison["max_abs_difference"] <= comparison["tolerance"]
    assert "runtime   onnx:" in pushed["out"] and "labels identical" in pushed["out"]
    # The report gets the image's section (replaced, not repeated, by a rebuild).
    report = markdown.with_image(markdown.with_image("## the gate's report\n", pushed), pushed)
    assert report.count("### Serving image") == 1 and "runtime **onnx**" in report
    assert f"ONNX against scikit-learn: {n_test} test rows" in report
    script = (
        "import importlib.util as u, json; "
        "print(json.dumps({m: u.find_spec(m) is not None for m in "
        "('sklearn', 'scipy', 'pandas', 'skops', 'google', 'numpy', 'onnxruntime')}))"
    )
    found = json.loads(
        engine.containers.run(
            pushed["image_id"], ["python", "-c", script], remove=True, network_mode="none"
        )
    )
    assert found == {
        "sklearn": False,
        "scipy": False,
        "pandas": False,
        "skops": False,
        "google": False,  # protobuf, which onnxruntime declares but does not use
        "numpy": True,
        "onnxruntime": True,
    }
    assert pushed["size_bytes"] <= 300 * 2**20  # issue 14's target, on the CI base image
    # What the server imports to start (as its command does, but the socket): not the
    # skops audit the sklearn runtime needs, and code compiled at build time, not at start.
    start = (
        "import json, os, sys; from pathlib import Path; "
        "from gitops_mlops.serving import __main__ as main, runtimes; "
        "d = Path('/model'); r = runtimes.of(d); r.check(d); r.preload(); "
        "main.prepare_workers(); r.load(d); "
        "print(json.dumps({n: os.path.isfile(m.__cached__) for n, m in sys.modules.items() "
        "if n.startswith('gitops_mlops')}))"
    )
    imported = engine.containers.run(
        pushed["image_id"], ["python", "-c", start], remove=True, network_mode="none"
    )
    compiled = json.loads(imported.decode().splitlines()[-1])
    assert {"gitops_mlops.serving.onnx_runtime", "gitops_mlops.serving.app"} <= set(compiled)
    assert not {"gitops_mlops.serving.trust", "gitops_mlops.serving.structure"} & set(compiled)
    assert all(compiled.values()), compiled


def test_tritonclient_against_the_image(container_port: int, pushed: dict[str, Any]) -> None:
    import numpy as np
    from sklearn.datasets import load_iris

    from gitops_mlops import bundle
    from tests.integration.test_serving import triton_infer

    model = bundle.load_model(pushed["run"] / "model" / "model.skops")
    rows = load_iris(as_frame=True).data
    for binary in (True, False):
        result = triton_infer(
            container_port,
            "iris-classifier",
            [("x", rows.to_numpy(dtype=np.float64), "FP64", binary)],
            binary_out=binary,
        )
        assert result.as_numpy("predict").tolist() == model.predict(rows).tolist()
        assert np.abs(result.as_numpy("predict_proba") - model.predict_proba(rows)).max() <= 1e-5


@pytest.fixture(scope="module")
def sklearn_image(engine: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("sklearn")
    spec = project(folder)
    spec.write_text(
        spec.read_text().replace("size_budget_mb:", "runtime: sklearn\n  size_budget_mb:")
    )
    run = train(spec, folder / "run")
    result = run_cli("build", str(run), "--base-image", BASE)
    assert result.code == 0, result.out + result.err
    assert "runtime   sklearn: container.runtime: sklearn" in result.out
    data: dict[str, Any] = json.loads((run / "build.json").read_text())
    data["run"] = run
    data["image_id"] = engine.images.get(data["reference"]).id
    return data


def test_clients_cannot_tell_the_runtimes_apart(
    engine: Any, pushed: dict[str, Any], sklearn_image: dict[str, Any], container_port: int
) -> None:
    """The same model version as the sklearn image and as the ONNX one: same metadata, same
    answers to good and to malformed requests, same /metrics series."""
    assert sklearn_image["tag"] == pushed["tag"]  # the same trained model
    assert sklearn_image["runtime"]["runtime"] == "sklearn"
    assert any(p.startswith("scikit-learn==") for p in sklearn_image["requirements"])
    with docker.running(engine, sklearn_image["image_id"], 8080) as (container, port):
        docker.wait_ready(container, port, 90)
        for path in ("/v2", "/v2/models/iris-classifier", "/v2/models/iris-classifier/ready"):
            assert request(port, "GET", path) == request(container_port, "GET", path)
        ours, theirs = (
            request(p, "POST", "/v2/models/iris-classifier/infer", per_feature(ROWS))[1]
            for p in (port, container_port)
        )
        assert [o["name"] for o in ours["outputs"]] == [o["name"] for o in theirs["outputs"]]
        assert ours["outputs"][0] == theirs["outputs"][0]  # predict: the same labels
        assert ours["outputs"][1]["data"] == pytest.approx(theirs["outputs"][1]["data"], abs=1e-5)
        for case, method, payload, expected, _ in MALFORMED:
            one = request(port, method, "/v2/models/iris-classifier/infer", payload)[0]
            other = request(container_port, method, "/v2/models/iris-classifier/infer", payload)[0]
            assert one == other == expected, case
        series = [
            {line.split(" ")[0] for line in request(p, "GET", "/metrics")[1].splitlines()}
            for p in (port, container_port)
        ]
        assert {s for s in series[0] if "_total{" in s} == {s for s in series[1] if "_total{" in s}


@pytest.mark.parametrize(("cpus", "workers"), [(1.0, 1), (1.5, 2)])
def test_one_worker_per_cpu_the_container_is_given(
    engine: Any, pushed: dict[str, Any], cpus: float, workers: int
) -> None:
    if len(os.sched_getaffinity(0)) < workers:
        pytest.skip(f"this machine has fewer than {workers} CPUs")
    options = {"nano_cpus": int(cpus * 1e9)}
    with docker.running(engine, pushed["image_id"], 8080, **options) as (container, port):
        docker.wait_ready(container, port, 90)
        assert f"\nmlops_workers {workers}\n" in request(port, "GET", "/metrics")[1]
        started = time.monotonic()
        container.stop(timeout=20)  # SIGTERM; SIGKILL only after 20 s
        container.reload()
        assert container.attrs["State"]["ExitCode"] == 0  # drained and exited, not killed
        assert time.monotonic() - started < 15
        logs = container.logs().decode(errors="replace")
        assert "telemetry" not in logs.lower() and "Traceback" not in logs, logs


def _exchange(
    port: int, method: str, path: str, body: bytes | None, headers: dict[str, str]
) -> tuple[int, str, bytes]:
    """(status, Content-Type, body bytes): what a client sees, but the Date."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        connection.close()


def _same_requests() -> list[tuple[str, str, str, bytes | None, dict[str, str]]]:
    """(case, method, path, body, headers): metadata, predictions (JSON and tritonclient's
    binary tensors), every malformed request of the server's tests, and errors of the
    protocol's own (unknown model, version, route; binary sizes that do not add up)."""
    import numpy as np
    import tritonclient.http as triton
    from tritonclient.http._utils import _get_inference_request

    infer = "/v2/models/iris-classifier/infer"
    as_json = {"Content-Type": "application/json"}
    cases: list[tuple[str, str, str, bytes | None, dict[str, str]]] = [
        (path, "GET", path, None, {})
        for path in (
            "/v2",
            "/v2/health/live",
            "/v2/health/ready",
            "/v2/models/iris-classifier",
            "/v2/models/iris-classifier/ready",
            "/v2/models/iris-classifier/versions/nope",
            "/v2/models/no-such-model",
            "/v3",
        )
    ]
    cases.append(("per-feature", "POST", infer, json.dumps(per_feature(ROWS)).encode(), as_json))
    matrix = {"inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP64", "data": ROWS}]}
    matrix["outputs"] = [{"name": "predict_proba"}]
    cases.append(("matrix", "POST", infer, json.dumps(matrix).encode(), as_json))
    for case, method, payload, _, _ in MALFORMED:
        body = payload if isinstance(payload, bytes) or payload is None else None
        body = json.dumps(payload).encode() if body is None and payload is not None else body
        cases.append((case, method, infer, body, as_json))
    tensor = triton.InferInput("x", [3, 4], "FP64")
    tensor.set_data_from_numpy(np.array(ROWS, dtype=np.float64))
    outputs = [triton.InferRequestedOutput(n, binary_data=True) for n in ("predict_proba",)]
    binary, length = _get_inference_request([tensor], "", outputs, 0, False, False, 0, None, None)
    header = {"Inference-Header-Content-Length": str(length)}
    cases.append(("binary", "POST", infer, binary, header))
    cases.append(("binary-short", "POST", infer, binary[:-8], header))
    too_long = {"Inference-Header-Content-Length": str(len(binary) + 1)}
    cases.append(("binary-header-beyond-body", "POST", infer, binary, too_long))
    return cases


def _series(text: bytes) -> set[str]:
    """The /metrics series (name and labels), without their values."""
    return {line.rsplit(" ", 1)[0] for line in text.decode().splitlines() if line}


def test_each_runtime_image_answers_as_mlops_serve_does(
    engine: Any, pushed: dict[str, Any], sklearn_image: dict[str, Any]
) -> None:
    """Differential: for every runtime of the registry, its image and `mlops serve --runtime`
    on the same run give the same status, Content-Type and bytes to the same requests, and
    then the same /metrics series. One worker each: the series have a row per worker."""
    images = {"onnx": pushed, "sklearn": sklearn_image}
    assert set(images) == set(RUNTIMES)  # a new runtime needs an image here
    requests = _same_requests()
    for runtime, image in images.items():
        assert image["runtime"]["runtime"] == runtime
        port = free_port()
        local = [sys.executable, "-m", "gitops_mlops", "serve", str(image["run"])]
        local += ["--port", str(port), "--runtime", runtime, "--workers", "1"]
        environment = {"MLOPS_WORKERS": "1"}
        # The container starts while `mlops serve` does.
        with (
            docker.running(engine, image["image_id"], 8080, environment=environment) as (
                container,
                container_port,
            ),
            serving(local, port),
        ):
            docker.wait_ready(container, container_port, 90)
            for case, method, path, body, headers in requests:
                ours = _exchange(port, method, path, body, headers)
                theirs = _exchange(container_port, method, path, body, headers)
                assert ours == theirs, (runtime, case)
                assert ours[0] < 500, (runtime, case, ours)
            served = [_exchange(p, "GET", "/metrics", None, {}) for p in (port, container_port)]
        assert served[0][:2] == served[1][:2] == (200, served[0][1])
        assert _series(served[0][2]) == _series(served[1][2]), runtime

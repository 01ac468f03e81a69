"""Every command that loads a model checks its sha256 first and builds only trusted types.

Attacked as an attacker would: a crafted model.skops, with the manifest beside it rewritten
to match (integrity passes; only trust can refuse), or a model swapped without touching the
manifest (only integrity can refuse). Refusals are errors that say what and why: exit 1, no
traceback, never "a bug in mlops", and the payload never runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from gitops_mlops import bundle
from tests import hostile_models as hostile
from tests.conftest import ROOT, run_cli
from tests.integration.helpers import copy_example, run_until, write_spec
from tests.integration.server_helpers import free_port, request, serving

IRIS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("iris")
    return run_until(copy_example(folder), folder / "run", "evaluate")


@pytest.fixture
def run(trained: Path, tmp_path: Path) -> Path:
    shutil.copytree(trained, tmp_path / "run")
    return tmp_path / "run"


def no_engine(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    return env | {"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}


def plant(run: Path, data: bytes, *, rewrite_manifest: bool) -> None:
    """Replace the model; an attacker who can write it can rewrite the manifest too."""
    (run / "model" / "model.skops").write_bytes(data)
    if rewrite_manifest:
        manifest_path = run / "model" / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        manifest["files"]["model.skops"] = hashlib.sha256(data).hexdigest()
        manifest_path.write_text(json.dumps(manifest))


def finished(command: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a command that must exit by itself (a server that starts is a failure here)."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"{command} started serving instead of refusing:\n{out}{err}")
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def assert_refused(code: int, output: str, *fragments: str) -> None:
    assert code == 1, output
    assert "refusing" in output, output
    for fragment in fragments:
        assert fragment in output, output
    for bug in ("bug in mlops", "internal error", "Traceback"):
        assert bug not in output, output


SERVERS = {
    "mlops serve": lambda run: [sys.executable, "-m", "gitops_mlops", "serve", str(run)],
    "serving image": lambda run: [
        sys.executable,
        "-m",
        "gitops_mlops.serving",
        "--model-dir",
        str(run / "model"),
    ],
}


@pytest.mark.parametrize("server", sorted(SERVERS))
def test_servers_refuse_the_issue_exploit_and_never_run_its_payload(
    server: str, run: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "payload-ran"
    plant(run, hostile.runstring(marker), rewrite_manifest=True)
    command = [*SERVERS[server](run), "--port", str(free_port())]
    result = finished(command)
    assert_refused(result.returncode, result.stdout + result.stderr, "runstring")
    assert not marker.exists()


@pytest.mark.parametrize(
    "command",
    [
        ["evaluate", "{run}"],
        ["gate", "{run}"],
        ["build", "{run}"],
        ["promote", "{run}", "-e", "staging", "--image", "r@sha256:" + "a" * 64],
        ["serve", "{run}", "--port", "{port}"],
    ],
)
def test_every_command_checks_the_sha256_before_it_reads_the_model(
    command: list[str], run: Path, tmp_path: Path
) -> None:
    # The manifest is left alone, so the sha256 check refuses the file; had the model been
    # read first, the type audit would have refused it (naming runstring) or, without one,
    # the payload would have run.
    marker = tmp_path / "payload-ran"
    plant(run, hostile.runstring(marker), rewrite_manifest=False)
    argv = [part.format(run=run, port=free_port()) for part in command]
    if argv[0] == "serve":
        done = finished([sys.executable, "-m", "gitops_mlops", *argv])
        code, output = done.returncode, done.stdout + done.stderr
    else:
        result = run_cli(*argv, env=no_engine(tmp_path))
        code, output = result.code, result.out + result.err
    assert_refused(code, output, "sha256", "model.skops")
    assert "runstring" not in output
    assert not marker.exists()


def test_a_manifest_may_not_trust_more_modules_than_the_spec(run: Path, tmp_path: Path) -> None:
    manifest_path = run / "model" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps(manifest | {"allow_modules": ["tests"]}))
    built = run_cli("build", str(run), env=no_engine(tmp_path))
    assert_refused(built.code, built.out + built.err, "model.allow_modules does not list (tests)")
    served = finished([*SERVERS["mlops serve"](run), "--port", str(free_port())])
    assert_refused(
        served.returncode, served.stdout + served.stderr, "allow_modules does not list (tests)"
    )


def test_a_model_trained_with_allow_modules_is_evaluated_and_served(tmp_path: Path) -> None:
    spec = write_spec(
        tmp_path,
        "task: classification\ndata:\n  train: {builtin: iris}\n"
        "model:\n  estimator: tests.fixture_models.NearestMean\n  allow_modules: [tests]\n"
        "evaluation:\n  metrics: [accuracy]\n  latency: false\n",
    )
    run = run_until(spec, tmp_path / "run", "evaluate")
    assert json.loads((run / "model" / "manifest.json").read_text())["allow_modules"] == ["tests"]
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "gitops_mlops", "serve", str(run), "--port", str(port)]
    with serving(command, port, env=env):
        rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
        inputs = [
            {"name": n, "shape": [2], "datatype": "FP64", "data": [r[i] for r in rows]}
            for i, n in enumerate(IRIS)
        ]
        status, body = request(port, "POST", "/v2/models/test-model/infer", {"inputs": inputs})
    assert status == 200, body
    model = bundle.load_verified(run / "model", ("tests",))
    predicted = next(o["data"] for o in body["outputs"] if o["name"] == "predict")
    assert predicted == model.predict(pd.DataFrame(rows, columns=IRIS)).tolist()

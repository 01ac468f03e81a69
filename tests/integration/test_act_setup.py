"""actions/setup/install.sh, as every composite action sources it: the CLI in a venv under
RUNNER_TEMP, with the optional features the `extras` input names, installed for real (from
.ci/run's wheelhouse when there is one, as the act tests do)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.integration.test_tracking import tracked_example

pytestmark = pytest.mark.slow

INSTALL = Path("actions") / "setup" / "install.sh"
WHEELHOUSE = Path.home() / ".cache" / "gitops-mlops" / "ci-wheels"


def source_install(checkout: Path, tmp: Path, extras: str) -> subprocess.CompletedProcess[str]:
    """`. install.sh` in a bash step, as the actions run it."""
    wheels = Path(os.environ.get("MLOPS_WHEELHOUSE") or WHEELHOUSE)
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", str(tmp)),
        "RUNNER_TEMP": str(tmp / "runner"),
        "GITHUB_PATH": str(tmp / "github_path"),
        "MLOPS_EXTRAS": extras,
        "PIP_CACHE_DIR": str(Path.home() / ".cache" / "pip"),
    }
    if wheels.is_dir():
        env |= {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels)}
    (tmp / "runner").mkdir(exist_ok=True)
    return subprocess.run(
        ["bash", "-c", f'. "{checkout / INSTALL}" && mlops --version'],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def imports(venv: Path, module: str) -> bool:
    found = subprocess.run(
        [str(venv / "bin" / "python"), "-c", f"import {module}"],
        capture_output=True,
        timeout=120,
        check=False,
    )
    return found.returncode == 0


def test_extras_are_installed_and_a_later_action_adds_more(checkout: Path, tmp_path: Path) -> None:
    installed = source_install(checkout, tmp_path, "s3, dask")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    venv = tmp_path / "runner" / "gitops-mlops"
    assert (tmp_path / "github_path").read_text().strip() == str(venv / "bin")
    assert imports(venv, "s3fs") and imports(venv, "distributed") and imports(venv, "sklearn")
    assert not imports(venv, "mlflow")

    # Without MLflow's client, tracking says which extra to add, and where.
    spec = tracked_example(tmp_path)
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",
    }
    run = subprocess.run(
        [str(venv / "bin" / "mlops"), "run", str(spec), "--until", "gate", "--out", "r"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "pip install 'gitops-mlops[mlflow]'" in run.stdout, run.stdout
    assert "add mlflow to their `extras` input" in run.stdout, run.stdout

    # The gate action of the same job asks for mlflow too: installed on top, the rest kept.
    again = source_install(checkout, tmp_path, "mlflow")
    assert again.returncode == 0, again.stdout + again.stderr
    assert imports(venv, "mlflow") and imports(venv, "s3fs") and imports(venv, "distributed")


@pytest.mark.parametrize("extras", ["s3,foo", "s3;touch PWNED", "$(touch PWNED)", "ml[x]"])
def test_an_unknown_extra_is_refused_before_anything_is_installed(
    checkout: Path, tmp_path: Path, extras: str
) -> None:
    result = source_install(checkout, tmp_path, extras)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "::error::setup: extras: '" in result.stderr
    assert "is not one of dask, s3, gs, az, https, mlflow" in result.stderr
    assert not (tmp_path / "runner" / "gitops-mlops").exists()
    assert not list(tmp_path.rglob("PWNED")) and not Path("PWNED").exists()

"""The composite actions and workflows follow the project's conventions and security rules
(docs/architecture.md: GitHub Actions)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

ACTIONS = sorted(ROOT.glob("actions/*/action.yml"))
WORKFLOWS = sorted(ROOT.glob(".github/workflows/*.yml")) + sorted(
    ROOT.glob("examples/*/.github/workflows/*.yml")
)
SHA_PIN = re.compile(r"^[^@]+@[0-9a-f]{40}$")


def load(path: Path) -> dict[str, Any]:
    # `on:` must stay a key: PyYAML's YAML 1.1 would read it as True.
    from gitops_mlops.spec.document import load_file

    return load_file(path).data


def test_there_is_an_action_per_stage() -> None:
    names = {p.parent.name for p in ACTIONS}
    assert names == {
        "setup",
        "plan",
        "validate",
        "train",
        "gate",
        "build",
        "promote",
        "report",
        "summary",
    }


@pytest.mark.parametrize("path", ACTIONS, ids=lambda p: p.parent.name)
def test_composite_actions(path: Path) -> None:
    action = load(path)
    assert action["runs"]["using"] == "composite"
    assert action.get("branding")
    for name, spec in action.get("inputs", {}).items():
        assert spec.get("description"), name
    for name, spec in action.get("outputs", {}).items():
        assert spec.get("description") and "steps." in spec["value"], name
    for step in action["runs"]["steps"]:
        if "run" in step:
            assert step.get("shell") == "bash"
            assert "${{" not in step["run"], "inputs reach scripts only through env:"


def uses_of(workflow: dict[str, Any]) -> list[str]:
    found = []
    for job in workflow["jobs"].values():
        if "uses" in job:
            found.append(job["uses"])
        found += [step["uses"] for step in job.get("steps", []) if "uses" in step]
    return found


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflows(path: Path) -> None:
    workflow = load(path)
    assert workflow["permissions"] == {}, "permissions: {} at the top; jobs ask for what they need"
    assert "pull_request_target" not in workflow["on"]
    for job in workflow["jobs"].values():
        for step in job.get("steps", []):
            assert "${{" not in step.get("run", "")
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False
    for uses in uses_of(workflow):
        first_party = uses.startswith("gitops-mlops/gitops-mlops/")
        assert first_party or SHA_PIN.match(uses), f"{uses} is not pinned by commit hash"


def test_reusable_workflow_interface() -> None:
    workflow = load(ROOT / ".github" / "workflows" / "mlops.yml")
    call = workflow["on"]["workflow_call"]
    assert set(call["outputs"]) == {"models", "model-version", "verdict", "image-digest", "pr-url"}
    assert set(call["secrets"]) >= {"promotion-token", "registry-username", "registry-password"}
    assert all(spec.get("type") for spec in call["inputs"].values())
    assert workflow["jobs"]["dispatch"]["concurrency"]["group"].startswith("mlops-promote-")
    model = workflow["jobs"]["model"]
    assert model["needs"] == "plan" and model["strategy"]["fail-fast"] is False
    assert "needs.plan.outputs.matrix" in model["strategy"]["matrix"]
    assert "mlops-promote-{0}-{1}" in model["concurrency"]["group"]


def test_yaml_1_1_readers_see_the_same_keys() -> None:
    """What GitHub reads: the files parse with a YAML 1.1 loader too."""
    for path in WORKFLOWS + ACTIONS:
        assert isinstance(yaml.safe_load(path.read_text()), dict)


# What each step of the model job may see, beyond its own `with:`: the data credentials go to
# every step that reads the data (train; gate, which re-evaluates the champion on the test
# rows), the cluster to train alone (the search), the tracking server to gate alone (the run
# is logged after the gate). No step gets more.
DATA = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}
DATA |= {"AWS_ENDPOINT_URL", "AWS_REGION"}
CLUSTER = {"MLOPS_DASK_SCHEDULER", "MLOPS_DASK_TIMEOUT"}
TRACKING = {"MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN"}
TRACKING |= {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"}
STEP_ENV = {"train": DATA | CLUSTER, "gate": DATA | TRACKING}


def test_each_step_gets_the_variables_it_needs_and_no_more() -> None:
    workflow = load(ROOT / ".github" / "workflows" / "mlops.yml")
    call = workflow["on"]["workflow_call"]
    for name, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            env = set(step.get("env", {}))
            wanted = STEP_ENV.get(step.get("id", "")) if name == "model" else None
            if wanted is not None:
                assert env == wanted, (step["id"], env ^ wanted)
            else:
                assert not env & (DATA | CLUSTER | TRACKING), (name, step.get("id"), env)
            # A secret only where it is named in env: or with:, never at job level.
            text = str(step.get("with", {})) + str(step.get("env", {}))
            for secret in re.findall(r"secrets\.([a-z-]+)", text):
                assert secret in call["secrets"] or secret == "GITHUB_TOKEN", secret
        assert "secrets." not in str(job.get("env", {})), name
    used = re.findall(r"secrets\.([a-z-]+)", (ROOT / ".github/workflows/mlops.yml").read_text())
    assert set(call["secrets"]) == set(used), "every declared secret reaches a step"
    # The features these variables serve are installed by the `extras` input, through the
    # job's environment (the first action installs), never spliced into a script.
    assert workflow["jobs"]["model"]["env"] == {"MLOPS_EXTRAS": "${{ inputs.extras }}"}


def test_the_integration_inputs_are_documented() -> None:
    call = load(ROOT / ".github" / "workflows" / "mlops.yml")["on"]["workflow_call"]
    readme = (ROOT / "README.md").read_text()
    names = ["extras", "dask-scheduler", "dask-timeout", "aws-endpoint-url", "aws-region"]
    names += ["mlflow-tracking-uri", "mlflow-tracking-token", "mlflow-tracking-username"]
    names += ["mlflow-tracking-password", "aws-access-key-id", "aws-secret-access-key"]
    names += ["aws-session-token"]
    for name in names:
        assert name in call["inputs"] or name in call["secrets"], name
        assert f"`{name}`" in readme, f"README does not name `{name}`"
    setup = load(ROOT / "actions" / "setup" / "action.yml")
    assert "extras" in setup["inputs"]
    allowed = "dask, s3, gs, az, https, mlflow"
    assert allowed in setup["inputs"]["extras"]["description"]
    assert allowed in call["inputs"]["extras"]["description"]
    assert allowed in (ROOT / "actions" / "setup" / "install.sh").read_text()

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

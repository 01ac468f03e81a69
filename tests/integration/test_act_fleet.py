"""The reusable workflow on a repository of three models, end to end under act.

The consumer repository is tests/fleet_repo.py's (churn and fraud use libs/features/**);
its caller workflow passes no `spec`, so the workflow plans. GitHub is the fake API, the
GitOps repository lives there, images go to the local registry.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.fake_github import TOKEN, FakeGitHub, Pull, git
from tests.fleet_repo import commit_all, gitops_layout, model_repo, write
from tests.integration.test_act import SOURCE, checkout, pr_event, run_act

__all__ = ["checkout"]  # the module fixture: a snapshot of this checkout for act

GITOPS = "acme/gitops"
pytestmark = pytest.mark.skipif(os.environ.get("MLOPS_SKIP_ACT") == "1", reason="MLOPS_SKIP_ACT=1")


def caller() -> str:
    """The example caller workflow, planning every model (no `spec`), with a model input."""
    text = (ROOT / "examples" / "iris" / ".github" / "workflows" / "model.yml").read_text()
    text = text.replace("      spec: examples/iris/mlops.yaml\n", "")
    text = text.replace("      registry: ghcr.io\n", "")
    text = text.replace(
        "      environment:\n        description:",
        "      model:\n        description: Model to promote.\n        type: string\n"
        "        required: false\n      environment:\n        description:",
    )
    return text.replace(
        "      environment: ${{ inputs.environment || '' }}\n",
        "      model: ${{ inputs.model || '' }}\n"
        "      environment: ${{ inputs.environment || '' }}\n",
    )


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        fake.create_repo(GITOPS, gitops_layout())
        fake.create_repo(SOURCE, {"README.md": "models\n"})
        yield fake


def fleet_consumer(folder: Path) -> Path:
    repo = model_repo(folder / "consumer", GITOPS)
    write(repo, {".github/workflows/model.yml": caller()})
    commit_all(repo, "the caller workflow")
    return repo


def head(repo: Path) -> str:
    return git("rev-parse", "HEAD", cwd=repo).strip()


def model_jobs(log: str) -> list[str]:
    """The models whose train step ran, in order (from the train action's progress lines)."""
    return re.findall(r"model ([a-z0-9-]+) version [0-9a-f]{12} in", log)


def models_output(log: str) -> dict[str, dict[str, str]]:
    found = re.findall(r"models=(\{.*\})", log)
    assert found, log[-3000:]
    loaded: dict[str, dict[str, str]] = json.loads(found[-1])
    return loaded


def test_a_pull_request_touching_one_model_runs_one_model_job(
    checkout: Path, github: FakeGitHub, tmp_path: Path
) -> None:
    repo = fleet_consumer(tmp_path)
    base = head(repo)
    git("checkout", "--quiet", "-b", "feature", cwd=repo)
    spec = repo / "models" / "fraud" / "mlops.yaml"
    write(repo, {"models/fraud/mlops.yaml": spec.read_text().replace("min: 0.8", "min: 0.75")})
    commit_all(repo, "fraud: a lower bar")
    github.commit(SOURCE, "feature", {"x": "1"}, "a change")
    github.pulls[SOURCE][7] = Pull(7, "feature", "main", "Tune fraud", "", False)
    event = pr_event(title="Tune fraud")
    event["pull_request"]["base"]["sha"] = base  # type: ignore[index]
    code, jobs, log = run_act(checkout, repo, github, "pull_request", event, tmp_path)
    assert code == 0, log[-4000:]
    assert jobs == {"plan": "success", "model": "success", "summary": "success"}, jobs
    assert model_jobs(log) == ["fraud"]
    models = models_output(log)
    assert list(models) == ["fraud"] and models["fraud"]["verdict"] == "passed"
    comments = github.comments[SOURCE]
    assert len(comments) == 1 and "model=fraud" in comments[0].body
    assert github.pulls[GITOPS] == {}  # pull requests never promote


def test_a_readme_change_runs_no_model_job(
    checkout: Path, github: FakeGitHub, tmp_path: Path
) -> None:
    repo = fleet_consumer(tmp_path)
    base = head(repo)
    write(repo, {"README.md": "Our models, better documented\n"})
    push = {"ref": "refs/heads/main", "before": base, "after": commit_all(repo, "docs")}
    code, jobs, log = run_act(checkout, repo, github, "push", push, tmp_path)
    assert code == 0, log[-4000:]
    assert jobs["plan"] == "success" and "model" not in jobs, jobs
    assert models_output(log) == {}
    assert "nothing ran" in log


def test_a_push_to_the_shared_library_promotes_the_two_models_using_it_and_a_rerun_hits(
    checkout: Path, github: FakeGitHub, tmp_path: Path
) -> None:
    from gitops_mlops.integrations import docker as engine

    client, why = engine.connect(os.environ)
    if client is None:
        if os.environ.get("MLOPS_REQUIRE_DOCKER"):
            pytest.fail(why)
        pytest.skip(why)
    base_image = os.environ.get("MLOPS_BASE_IMAGE", "127.0.0.1:5000/mlops/python:3.11-bookworm")
    extra = ["--env", f"MLOPS_BASE_IMAGE={base_image}", "-s", f"MLOPS_PROMOTION_TOKEN={TOKEN}"]
    repo = fleet_consumer(tmp_path)
    base = head(repo)
    write(repo, {"libs/features/scaling.py": "def scale(x):\n    return 2 * x\n"})
    push = {"ref": "refs/heads/main", "before": base, "after": commit_all(repo, "features")}
    code, jobs, log = run_act(checkout, repo, github, "push", push, tmp_path, extra)
    assert code == 0, log[-4000:]
    assert set(jobs.values()) == {"success"}, jobs
    assert model_jobs(log) == ["churn", "fraud"]
    heads = sorted(p.head for p in github.pulls[GITOPS].values())
    assert heads == ["mlops/promote/staging/churn", "mlops/promote/staging/fraud"]
    models = models_output(log)
    assert sorted(models) == ["churn", "fraud"]
    numbers = {p.head.rpartition("/")[2]: n for n, p in github.pulls[GITOPS].items()}
    for name, row in models.items():
        assert row["verdict"] == "passed" and row["image-digest"].startswith("sha256:")
        assert row["pr-url"].endswith(f"/{GITOPS}/pull/{numbers[name]}")

    code, jobs, log = run_act(checkout, repo, github, "push", push, tmp_path, extra)
    assert code == 0, log[-4000:]
    assert len(re.findall(r"train\s+cached [0-9a-f]{64}", log)) == 2, log[-4000:]
    assert model_jobs(log) == []  # nothing trained
    assert len(github.pulls[GITOPS]) == 2  # and nothing new opened

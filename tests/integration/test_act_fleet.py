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
import yaml

from tests.conftest import ROOT
from tests.fake_github import TOKEN, FakeGitHub, Pull, git
from tests.fleet_repo import commit_all, gitops_layout, model_repo, write
from tests.integration.test_act import SOURCE, pr_event, run_act

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
    from tests.image_setup import BASE_IMAGE, require

    require(base_image=True, registry=True)  # the push builds on one and pushes to the other
    base_image = BASE_IMAGE
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


def test_a_rollback_holds_production_until_the_hold_is_released(
    checkout: Path, github: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gitops_mlops.integrations.registry import Registry
    from tests.conftest import run_cli
    from tests.image_setup import BASE_IMAGE, require
    from tests.integration.registry_helpers import SHARED, push_image

    require(base_image=True, registry=True)  # the push builds on one and pushes to the other
    base_image = BASE_IMAGE
    extra = ["--env", f"MLOPS_BASE_IMAGE={base_image}", "-s", f"MLOPS_PROMOTION_TOKEN={TOKEN}"]
    repo = fleet_consumer(tmp_path)
    monkeypatch.chdir(repo)
    env = {**github.env(SOURCE), "PATH": os.environ["PATH"]}
    spec = repo / "models" / "churn" / "mlops.yaml"

    def merge_open(head: str) -> None:
        [number] = [
            n for n, p in github.pulls[GITOPS].items() if p.head == head and p.state == "open"
        ]
        github.merge(GITOPS, number)

    def reseed(seed: int) -> None:
        """Another split of the data: another model, another version."""
        text = re.sub(r"seed: \d+\}", f"seed: {seed}}}", spec.read_text())
        write(repo, {"models/churn/mlops.yaml": text})

    def push(seed: int) -> tuple[int, dict[str, str], str]:
        base = head(repo)
        reseed(seed)
        event = {"ref": "refs/heads/main", "before": base, "after": commit_all(repo, f"{seed}")}
        return run_act(checkout, repo, github, "push", event, tmp_path, extra)

    def dispatch() -> tuple[int, dict[str, str], str]:
        event = {"inputs": {"environment": "production", "model": "churn"}}
        return run_act(checkout, repo, github, "workflow_dispatch", event, tmp_path, extra)

    # v1: trained, built and promoted to staging by a push, then to production.
    code, jobs, log = push(11)
    assert code == 0 and model_jobs(log) == ["churn"], log[-4000:]
    merge_open("mlops/promote/staging/churn")
    out = str(tmp_path / "cli-dispatch")
    done = run_cli(
        "run", str(spec), "--event", "workflow_dispatch", "-e", "production", "--out", out, env=env
    )
    assert done.code == 0, done.err
    merge_open("mlops/promote/production/churn")
    # v2, released the same way (its image pushed through the registry API).
    reseed(99)
    trained = run_cli("run", str(spec), "--until", "gate", "--out", str(tmp_path / "v2"), env=env)
    assert trained.code == 0, trained.err
    git("checkout", "--", ".", cwd=repo)
    pushed = push_image(Registry(SHARED, {}), "fleet/churn", "v2", [{"model": b"v2"}])
    image_v2 = f"localhost:5000/fleet/churn@{pushed.digest}"
    for environment in ("staging", "production"):
        done = run_cli(
            "promote", str(tmp_path / "v2"), "-e", environment, "--image", image_v2, env=env
        )
        assert done.code == 0, done.err
        merge_open(f"mlops/promote/{environment}/churn")

    rolled = run_cli("rollback", "churn", "-e", "production", "--reason", "drift", env=env)
    assert rolled.code == 0, rolled.out + rolled.err
    merge_open("mlops/rollback/production/churn")

    # A push still trains, builds and promotes staging; production stays held.
    code, jobs, log = push(12)
    assert code == 0 and model_jobs(log) == ["churn"], log[-4000:]
    merge_open("mlops/promote/staging/churn")
    code, jobs, log = dispatch()
    assert code != 0 and jobs.get("dispatch") == "failure", jobs
    assert "production is on hold for churn" in log
    assert not any(
        p.head == "mlops/promote/production/churn" and p.state == "open"
        for p in github.pulls[GITOPS].values()
    )

    lifted = run_cli("release-hold", "churn", "-e", "production", env=env)
    assert lifted.code == 0, lifted.out + lifted.err
    merge_open("mlops/release-hold/production/churn")
    code, jobs, log = dispatch()
    assert code == 0 and jobs == {"plan": "success", "dispatch": "success"}, log[-4000:]
    [opened] = [
        p
        for p in github.pulls[GITOPS].values()
        if p.head == "mlops/promote/production/churn" and p.state == "open"
    ]
    record = "apps/churn/{}/model-release.yaml"
    staging = yaml.safe_load(github.read(GITOPS, "main", record.format("staging")))
    production = yaml.safe_load(github.read(GITOPS, opened.head, record.format("production")))
    assert production["version"] == staging["version"] and "hold" not in production

"""Promotion against real git and the fake GitHub API."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, run_cli
from tests.fake_github import FakeGitHub, Fault
from tests.integration.helpers import without_latency_gate

REPO = "acme/gitops"
SOURCE = "acme/models"
IMAGE = "localhost:5000/acme/iris-classifier@sha256:" + "a" * 64
OTHER_IMAGE = "localhost:5000/acme/iris-classifier@sha256:" + "b" * 64


def gitops_files() -> dict[str, str]:
    base = ROOT / "examples" / "gitops"
    return {str(p.relative_to(base)): p.read_text() for p in base.rglob("*.yaml")}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gated iris run whose spec promotes to acme/gitops on the fake GitHub."""
    folder = tmp_path_factory.mktemp("project")
    spec = (ROOT / "examples" / "iris" / "mlops.yaml").read_text()
    spec = spec.replace("repository: ../gitops ", f"repository: {REPO} ")
    spec = spec.replace("latency: {batch_size: 1, repeats: 100}", "latency: false")
    spec = without_latency_gate(spec)
    (folder / "mlops.yaml").write_text(spec)
    with FakeGitHub() as fake:  # the gate reads its champion from acme/gitops
        fake.create_repo(REPO, gitops_files())
        result = run_cli(
            "run",
            str(folder / "mlops.yaml"),
            "--until",
            "gate",
            "--out",
            str(folder / "run"),
            env=fake.env(SOURCE),
        )
    assert result.code == 0, result.out + result.err
    return folder


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        fake.create_repo(REPO, gitops_files())
        yield fake


def copy_run(trained: Path, tmp_path: Path) -> Path:
    shutil.copytree(trained / "run", tmp_path / "run")
    return tmp_path / "run"


def promote(
    github: FakeGitHub, run: Path, environment: str, *extra: str, image: str = IMAGE
) -> tuple[int, str, dict[str, Any]]:
    result = run_cli(
        "promote", str(run), "-e", environment, "--image", image, *extra, env=github.env(SOURCE)
    )
    promotion = run / "promotion.json"
    data = json.loads(promotion.read_text()) if promotion.is_file() else {}
    return result.code, result.out + result.err, data


def test_a_new_promotion_opens_one_pull_request(
    trained: Path, github: FakeGitHub, tmp_path: Path
) -> None:
    run = copy_run(trained, tmp_path)
    code, out, data = promote(github, run, "staging")
    assert code == 0, out
    pull = github.pulls[REPO][1]
    branch = "mlops/promote/staging/iris-classifier"
    assert (pull.head, pull.base, pull.state) == (branch, "main", "open")
    assert pull.title.startswith("Promote iris-classifier ")
    assert pull.labels == ["model-promotion"]
    assert "<!-- gitops-mlops:promotion model=iris-classifier env=staging -->" in pull.body
    assert IMAGE in pull.body and "passed the gate" in pull.body
    kustomization = github.read(REPO, branch, "apps/iris/staging/kustomization.yaml")
    assert kustomization == gitops_files()["apps/iris/staging/kustomization.yaml"].replace(
        "    newName: localhost:5000/acme/iris-classifier\n",
        "    newName: localhost:5000/acme/iris-classifier\n    digest: sha256:" + "a" * 64 + "\n",
    )
    record = yaml.safe_load(github.read(REPO, branch, "apps/iris/staging/model-release.yaml"))
    assert record["kind"] == "ModelRelease" and record["image"] == IMAGE
    assert record["source"]["repository"] == SOURCE
    assert record["source"]["run_url"].endswith("/acme/models/actions/runs/4242")
    message = github.commits(REPO, branch)
    assert message == 2  # the initial layout and exactly one promotion commit
    assert data["pull_request"] == {
        "number": 1,
        "url": f"{github.url}/{REPO}/pull/1",
        "created": True,
    }
    assert data["files_changed"] == [
        "apps/iris/staging/kustomization.yaml",
        "apps/iris/staging/model-card.md",
        "apps/iris/staging/model-release.yaml",
    ]
    assert data["api_calls"] == github.api_calls() <= 10
    # The run's model card, beside the release record, about the version it records.
    card = github.read(REPO, branch, "apps/iris/staging/model-card.md")
    assert card == (run / "model-card.md").read_text()
    assert card.startswith(
        f"<!-- gitops-mlops:model-card model=iris-classifier version={record['version']} -->\n"
    )


def test_an_identical_rerun_changes_nothing(
    trained: Path, github: FakeGitHub, tmp_path: Path
) -> None:
    run = copy_run(trained, tmp_path)
    assert promote(github, run, "staging")[0] == 0
    head = github.head(REPO, "mlops/promote/staging/iris-classifier")
    before = len(github.requests)
    code, out, data = promote(github, run, "staging")
    assert code == 0, out
    assert github.head(REPO, "mlops/promote/staging/iris-classifier") == head
    assert len(github.pulls[REPO]) == 1 and github.comments[REPO] == []
    assert data["pull_request"]["created"] is False
    assert len(github.requests) - before == data["api_calls"] <= 4


def test_a_new_image_updates_the_open_pull_request(
    trained: Path, github: FakeGitHub, tmp_path: Path
) -> None:
    run = copy_run(trained, tmp_path)
    assert promote(github, run, "staging")[0] == 0
    code, _, data = promote(github, run, "staging", image=OTHER_IMAGE)
    assert code == 0
    assert len(github.pulls[REPO]) == 1
    assert OTHER_IMAGE in github.pulls[REPO][1].body
    branch = "mlops/promote/staging/iris-classifier"
    assert "b" * 64 in github.read(REPO, branch, "apps/iris/staging/kustomization.yaml")
    assert github.commits(REPO, branch) == 2  # rebuilt on main: still one promotion commit
    assert data["pull_request"]["created"] is False


def test_production_waits_for_staging(trained: Path, github: FakeGitHub, tmp_path: Path) -> None:
    run = copy_run(trained, tmp_path)
    code, out, _ = promote(github, run, "production")
    assert code == 6
    assert "production requires staging to run" in out and "has no release" in out
    assert github.pulls[REPO] == {}
    assert promote(github, run, "staging")[0] == 0
    github.merge(REPO, 1)
    code, out, data = promote(github, run, "production")
    assert code == 0, out
    pull = github.pulls[REPO][2]
    assert pull.reviewers == [] and pull.team_reviewers == ["ml-leads"]
    values = github.read(REPO, pull.head, "apps/iris/production/values.yaml")
    assert 'digest: "sha256:' + "a" * 64 + '"' in values
    assert data["files_changed"] == [
        "apps/iris/production/model-card.md",
        "apps/iris/production/model-release.yaml",
        "apps/iris/production/values.yaml",
    ]


def test_production_refused_while_staging_runs_another_version(
    trained: Path, github: FakeGitHub, tmp_path: Path
) -> None:
    record = {"apiVersion": "mlops/v1", "kind": "ModelRelease", "version": "0123456789ab"}
    github.commit(
        REPO,
        "main",
        {"apps/iris/staging/model-release.yaml": yaml.safe_dump(record)},
        "staging runs an older model",
    )
    code, out, _ = promote(github, copy_run(trained, tmp_path), "production")
    assert code == 6 and "but staging runs 0123456789ab" in out


def test_a_failed_gate_is_not_promoted_without_force_and_reason(
    trained: Path, github: FakeGitHub, tmp_path: Path
) -> None:
    run = copy_run(trained, tmp_path)
    verdict = json.loads((run / "verdict.json").read_text())
    verdict["passed"] = False
    (run / "verdict.json").write_text(json.dumps(verdict))
    code, out, _ = promote(github, run, "staging")
    assert code == 6 and "the gate failed" in out
    code, out, _ = promote(github, run, "staging", "--force")
    assert code == 1 and "--force needs --reason" in out
    code, out, _ = promote(github, run, "staging", "--force", "--reason", "hotfix for INC-42")
    assert code == 0, out
    assert "Reason: hotfix for INC-42" in github.pulls[REPO][1].body
    record = yaml.safe_load(
        github.read(REPO, github.pulls[REPO][1].head, "apps/iris/staging/model-release.yaml")
    )
    assert record["gate"]["forced"] is True and record["gate"]["reason"] == "hotfix for INC-42"


def test_retries_a_502_then_succeeds(trained: Path, github: FakeGitHub, tmp_path: Path) -> None:
    github.faults.append(Fault("POST", r"/pulls$", 502))
    code, out, _ = promote(github, copy_run(trained, tmp_path), "staging")
    assert code == 0, out
    assert [r for r in github.requests if r[0] == "POST" and r[1].endswith("/pulls")] == [
        ("POST", "/api/v3/repos/acme/gitops/pulls")
    ] * 2
    assert len(github.pulls[REPO]) == 1


def test_honours_retry_after_on_a_secondary_rate_limit(
    trained: Path, github: FakeGitHub, tmp_path: Path
) -> None:
    import time

    github.faults.append(
        Fault(
            "GET",
            r"/pulls$",
            403,
            {"Retry-After": "1"},
            {"message": "You have exceeded a secondary rate limit."},
        )
    )
    started = time.monotonic()
    code, out, _ = promote(github, copy_run(trained, tmp_path), "staging")
    assert code == 0, out
    assert time.monotonic() - started >= 1.0
    assert len(github.pulls[REPO]) == 1


def test_rebuilds_on_a_base_branch_that_moved_during_the_push(
    trained: Path, github: FakeGitHub, tmp_path: Path
) -> None:
    def someone_pushes() -> None:
        github.commit(REPO, "main", {"README.md": "moved\n"}, "a concurrent change")

    github.before_push.append(someone_pushes)
    code, out, _ = promote(github, copy_run(trained, tmp_path), "staging")
    assert code == 0, out
    branch = "mlops/promote/staging/iris-classifier"
    assert github.read(REPO, branch, "README.md") == "moved\n"  # based on the moved main
    assert github.commits(REPO, branch) == github.commits(REPO, "main") + 1


def test_older_promotion_pull_requests_are_superseded(
    trained: Path, github: FakeGitHub, tmp_path: Path
) -> None:
    github.commit(REPO, "old-promotion", {"x": "1"}, "an older promotion")
    from tests.fake_github import Pull

    marker = "<!-- gitops-mlops:promotion model=iris-classifier env=staging -->"
    github.pulls[REPO][1] = Pull(1, "old-promotion", "main", "old", marker, False)
    code, out, data = promote(github, copy_run(trained, tmp_path), "staging")
    assert code == 0, out
    assert github.pulls[REPO][1].state == "closed"
    assert github.comments[REPO][0].body == "Superseded by #2."
    assert data["superseded"] == [1]


def test_a_target_that_does_not_resolve_writes_nothing(
    trained: Path, github: FakeGitHub, tmp_path: Path
) -> None:
    run = copy_run(trained, tmp_path)
    version = json.loads((run / "model" / "manifest.json").read_text())["model_version"]
    staging = {"apiVersion": "mlops/v1", "kind": "ModelRelease", "version": version}
    github.commit(
        REPO,
        "main",
        {
            "apps/iris/production/values.yaml": "replicaCount: 1\n",
            "apps/iris/staging/model-release.yaml": yaml.safe_dump(staging),
        },
        "values without image.digest",
    )
    code, out, _ = promote(github, run, "production")
    assert code == 1
    assert "apps/iris/production/values.yaml: image.digest does not exist" in out
    assert github.head(REPO, "mlops/promote/production/iris-classifier") is None
    assert github.pulls[REPO] == {}


def test_a_token_is_required(trained: Path, tmp_path: Path) -> None:
    run = copy_run(trained, tmp_path)
    result = run_cli(
        "promote", str(run), "-e", "staging", "--image", IMAGE, env={"PATH": "/usr/bin:/bin"}
    )
    assert result.code == 1
    assert "needs a GitHub token" in result.err


def test_an_image_must_be_pinned_by_digest(
    trained: Path, github: FakeGitHub, tmp_path: Path
) -> None:
    code, out, _ = promote(
        github, copy_run(trained, tmp_path), "staging", image="localhost:5000/acme/iris:latest"
    )
    assert code == 2 and "not pinned by digest; expected REPOSITORY@sha256:<64 hex>" in out


def test_a_local_repository_gets_a_branch_and_a_printed_pull_request(
    trained: Path, tmp_path: Path
) -> None:
    from tests.fake_github import git

    gitops = tmp_path / "gitops"
    for path, text in gitops_files().items():
        (gitops / path).parent.mkdir(parents=True, exist_ok=True)
        (gitops / path).write_text(text)
    git("init", "--quiet", "-b", "main", cwd=gitops)
    git("add", "-A", cwd=gitops)
    git("commit", "--quiet", "-m", "layout", cwd=gitops)
    project = tmp_path / "project"
    project.mkdir()
    spec = (
        (trained / "mlops.yaml")
        .read_text()
        .replace(f"repository: {REPO} ", "repository: ../gitops ")
    )
    (project / "mlops.yaml").write_text(spec)
    run = copy_run(trained, project)
    (run / "run.json").write_text(json.dumps({"spec": str(project / "mlops.yaml")}))
    result = run_cli("promote", str(run), "-e", "staging", "--image", IMAGE)
    assert result.code == 0, result.out + result.err
    assert "pull request it would open" in result.out
    assert "title: Promote iris-classifier" in result.out
    assert "+    digest: sha256:" + "a" * 64 in result.out
    branches = git("branch", "--list", cwd=gitops)
    assert "mlops/promote/staging/iris-classifier" in branches
    assert git("status", "--porcelain", cwd=gitops) == ""  # the user's work tree is untouched


def test_draft_reviewers_and_auto_merge(trained: Path, github: FakeGitHub, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    spec = (trained / "mlops.yaml").read_text()
    spec = spec.replace(
        "pull_request: {labels: [model-promotion]}",
        "pull_request: {labels: [model-promotion, ml], draft: true, auto_merge: squash}",
    )
    spec = spec.replace(
        "      on: push\n", "      on: push\n      reviewers: [alice, acme/ml-leads]\n"
    )
    (project / "mlops.yaml").write_text(spec)
    run = copy_run(trained, project)
    (run / "run.json").write_text(json.dumps({"spec": str(project / "mlops.yaml")}))
    code, out, data = promote(github, run, "staging")
    assert code == 0, out
    pull = github.pulls[REPO][1]
    assert pull.draft is True and pull.labels == ["model-promotion", "ml"]
    assert (pull.reviewers, pull.team_reviewers) == (["alice"], ["ml-leads"])
    assert pull.auto_merge == "SQUASH"
    assert data["api_calls"] <= 10


def test_titles_and_bodies_are_cut_to_what_github_accepts() -> None:
    from gitops_mlops.integrations.github import BODY_LIMIT, fit

    text = "x" * 70_000
    cut = fit(text, BODY_LIMIT, "*see the job summary*")
    assert len(cut) <= BODY_LIMIT < 65_536
    assert cut.endswith("*see the job summary*")
    assert fit("short", BODY_LIMIT, "p") == "short"

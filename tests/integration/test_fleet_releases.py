"""`mlops status` and `mlops history` over real promotions into a local GitOps repository
and into the fake GitHub (real git behind it)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitops_mlops.reporting.numbers import NONE
from tests.conftest import run_cli
from tests.fake_github import FakeGitHub, git
from tests.fleet_repo import (
    checked_out,
    commit_all,
    gitops_layout,
    local_gitops,
    model_repo,
    working_directory,
)

GITOPS = "../../../gitops"
IMAGE = "localhost:5000/fleet/{name}@sha256:{digest}"


def image(name: str, fill: str) -> str:
    return IMAGE.format(name=name, digest=fill * 64)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A gated run of churn and of fraud (trained once for the module)."""
    folder = tmp_path_factory.mktemp("fleet-runs")
    local_gitops(folder / "gitops")
    repo = model_repo(folder / "repo", GITOPS)
    found = {}
    for name in ("churn", "fraud"):
        out = folder / f"run-{name}"
        result = run_cli(
            "run", str(repo / "models" / name / "mlops.yaml"), "--until", "gate", "--out", str(out)
        )
        assert result.code == 0, result.out + result.err
        found[name] = out
    return found


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(models repository, local GitOps repository); the cwd is the models repository."""
    with checked_out(tmp_path, GITOPS) as found:
        yield found


def use_run(run: Path, repo: Path, name: str, tmp_path: Path) -> Path:
    """A copy of a module run whose run.json points at this test's spec."""
    copy = tmp_path / f"run-{name}-{len(list(tmp_path.iterdir()))}"
    shutil.copytree(run, copy)
    (copy / "run.json").write_text(
        json.dumps({"spec": str(repo / "models" / name / "mlops.yaml"), "spec_digest": ""})
    )
    return copy


def promote(run: Path, environment: str, reference: str) -> None:
    result = run_cli("promote", str(run), "--environment", environment, "--image", reference)
    assert result.code == 0, result.out + result.err


def merge(gitops: Path, branch: str, number: int) -> None:
    git(
        "merge",
        "--quiet",
        "--no-ff",
        "-m",
        f"Merge pull request #{number} from {branch}",
        branch,
        cwd=gitops,
    )


def release(
    runs: dict[str, Path], fleet: tuple[Path, Path], tmp_path: Path, name: str, fill: str, n: int
) -> None:
    repo, gitops = fleet
    run = use_run(runs[name], repo, name, tmp_path)
    # A different image per release: promotion pins what it is given.
    promote(run, "staging", image(name, fill))
    merge(gitops, f"mlops/promote/staging/{name}", n)


def status_json(*paths: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = run_cli("status", "--format", "json", *paths, env=env)
    assert result.code == 0, result.out + result.err
    loaded: dict[str, Any] = json.loads(result.out)
    return loaded


def test_status_has_one_row_per_model_and_environment_from_one_clone(
    runs: dict[str, Path], fleet: tuple[Path, Path], tmp_path: Path
) -> None:
    repo, _ = fleet
    release(runs, fleet, tmp_path, "churn", "a", 1)
    run = use_run(runs["fraud"], repo, "fraud", tmp_path)
    promote(run, "staging", image("fraud", "b"))  # not merged: an open promotion
    report = status_json()
    rows = {(r["model"], r["environment"]): r for r in report["releases"]}
    assert sorted(rows) == [
        (m, e) for m in ("churn", "fraud", "iris") for e in ("production", "staging")
    ]
    churn = rows[("churn", "staging")]
    manifest = json.loads((runs["churn"] / "model" / "manifest.json").read_text())
    assert churn["version"] == manifest["model_version"]
    assert churn["digest"] == "a" * 12 and churn["image"] == image("churn", "a")
    assert set(churn["metrics"]) == {"accuracy"} and churn["metrics"]["accuracy"] > 0.8
    assert churn["released"] and churn["hold"] is None and churn["pull_request"] is None
    fraud = rows[("fraud", "staging")]
    assert fraud["version"] is None
    assert fraud["pull_request"] == "branch mlops/promote/staging/fraud"
    assert report["cost"] == {"clones": 1, "git_processes": 3, "api_requests": 0}
    text = run_cli("status")
    assert text.code == 0
    assert any(
        line.split()[:3] == ["churn", "staging", manifest["model_version"]]
        for line in text.out.splitlines()
    ), text.out


def test_status_writes_an_absent_metric_as_every_report_does(
    runs: dict[str, Path], fleet: tuple[Path, Path], tmp_path: Path
) -> None:
    """A gated metric the record does not hold (written before the threshold was, or edited
    by hand) reads as the reports' and the fleet summary's "no value"."""
    _, gitops = fleet
    release(runs, fleet, tmp_path, "churn", "a", 1)
    record = gitops / "apps" / "churn" / "staging" / "model-release.yaml"
    loaded = yaml.safe_load(record.read_text())
    del loaded["metrics"]["accuracy"]
    record.write_text(yaml.safe_dump(loaded, sort_keys=False))
    commit_all(gitops, "a record without its accuracy")
    rows = {(r["model"], r["environment"]): r for r in status_json()["releases"]}
    assert rows[("churn", "staging")]["metrics"] == {"accuracy": None}
    text = run_cli("status")
    assert text.code == 0, text.out + text.err
    churn = [line for line in text.out.splitlines() if line.split()[:2] == ["churn", "staging"]]
    assert len(churn) == 1 and f"  accuracy {NONE}  released " in churn[0], text.out


def test_status_of_named_specs_only(
    runs: dict[str, Path], fleet: tuple[Path, Path], tmp_path: Path
) -> None:
    report = status_json("models/iris/mlops.yaml")
    assert {r["model"] for r in report["releases"]} == {"iris"}
    assert all(r["version"] is None for r in report["releases"])


def test_history_lists_releases_newest_first_and_survives_a_foreign_commit(
    runs: dict[str, Path], fleet: tuple[Path, Path], tmp_path: Path
) -> None:
    _, gitops = fleet
    release(runs, fleet, tmp_path, "churn", "a", 1)
    record = gitops / "apps" / "churn" / "staging" / "model-release.yaml"
    record.write_text("someone: edited this by hand\n")
    commit_all(gitops, "hand edit")
    release(runs, fleet, tmp_path, "churn", "c", 3)
    result = run_cli("history", "churn", "--environment", "staging", "--format", "json")
    assert result.code == 0, result.out + result.err
    found = json.loads(result.out)
    assert [e["image"] for e in found] == [image("churn", "c"), None, image("churn", "a")]
    assert [e["pull_request"] for e in found] == [3, None, 1]
    assert "not a release record" in found[1]["problem"]
    assert found[0]["gate"]["passed"] is True and found[0]["rollback_of"] is None
    text = run_cli("history", "churn", "--environment", "staging")
    assert text.code == 0 and len(text.out.splitlines()) == 3
    assert "(not a release: " in text.out.splitlines()[1]


def test_history_of_an_unknown_model_or_environment_says_what_exists(
    fleet: tuple[Path, Path],
) -> None:
    result = run_cli("history", "nope", "--environment", "staging")
    assert result.code == 1 and "models: churn, fraud, iris" in result.err
    result = run_cli("history", "churn", "--environment", "qa")
    assert result.code == 1 and "environments: staging, production" in result.err
    result = run_cli("history", "iris", "--environment", "staging")
    assert result.code == 0 and result.out.strip() == "no release yet"


@pytest.fixture
def github(tmp_path: Path) -> Iterator[tuple[FakeGitHub, Path]]:
    with FakeGitHub() as fake:
        fake.create_repo("acme/gitops", gitops_layout())
        repo = model_repo(tmp_path / "gh-repo", "acme/gitops")
        with working_directory(repo):
            yield fake, repo


def test_status_on_github_costs_one_clone_and_one_api_request_for_many_models(
    runs: dict[str, Path], github: tuple[FakeGitHub, Path], tmp_path: Path
) -> None:
    fake, repo = github
    env = fake.env("acme/models")
    for name in ("churn", "fraud"):
        run = use_run(runs[name], repo, name, tmp_path)
        result = run_cli("promote", str(run), "-e", "staging", "--image", image(name, "d"), env=env)
        assert result.code == 0, result.out + result.err
    fake.merge("acme/gitops", 1)
    before = len(fake.requests)
    report = status_json(env=env)
    assert report["cost"]["clones"] == 1 and report["cost"]["api_requests"] == 1
    assert len(fake.requests) - before == 1  # one list of open pull requests, for 3 models
    rows = {(r["model"], r["environment"]): r for r in report["releases"]}
    assert rows[("churn", "staging")]["digest"] == "d" * 12
    assert rows[("churn", "staging")]["pull_request"] is None
    assert rows[("fraud", "staging")]["pull_request"].endswith("/acme/gitops/pull/2")

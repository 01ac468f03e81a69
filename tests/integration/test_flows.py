"""`mlops run` per trigger, and `mlops report`, against real git and the fake GitHub API."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, run_cli
from tests.fake_github import FakeGitHub, Fault
from tests.integration.helpers import alias_bomb_record, without_latency_gate
from tests.integration.test_promote import IMAGE, REPO, SOURCE, gitops_files


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        fake.create_repo(REPO, gitops_files())
        fake.create_repo(SOURCE, {"README.md": "models\n"})
        yield fake


@pytest.fixture
def project(tmp_path: Path) -> Path:
    spec = (ROOT / "examples" / "iris" / "mlops.yaml").read_text()
    spec = spec.replace("repository: ../gitops ", f"repository: {REPO} ")
    spec = spec.replace("latency: {batch_size: 1, repeats: 100}", "latency: false")
    spec = without_latency_gate(spec)
    (tmp_path / "mlops.yaml").write_text(spec)
    return tmp_path


def actions_env(
    github: FakeGitHub, tmp_path: Path, event: str, pr: int | None = None
) -> dict[str, str]:
    event_path = tmp_path / "event.json"
    event_path.write_text(json.dumps({"pull_request": {"number": pr}} if pr else {}))
    return {
        **github.env(SOURCE),
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": event,
        "GITHUB_EVENT_PATH": str(event_path),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
        "GITHUB_OUTPUT": str(tmp_path / "output"),
    }


def open_source_pull(github: FakeGitHub) -> int:
    github.commit(SOURCE, "feature", {"change.txt": "x"}, "a change")
    from tests.fake_github import Pull

    github.pulls[SOURCE][7] = Pull(7, "feature", "main", "Tune the forest", "", False)
    return 7


def test_pull_request_posts_one_sticky_comment_then_updates_it(
    github: FakeGitHub, project: Path, tmp_path: Path
) -> None:
    number = open_source_pull(github)
    env = actions_env(github, tmp_path, "pull_request", number)
    env["MLOPS_REPORT_ARTIFACT"] = "mlops-report-iris-classifier"  # as the workflow sets it
    first = run_cli("run", str(project / "mlops.yaml"), "--out", str(tmp_path / "a"), env=env)
    assert first.code == 0, first.out + first.err
    assert "::add-mask::" in first.out
    assert "posted the report on pull request #7" in first.out
    assert "build" not in first.out.split("report")[0].split("gate")[-1]  # no build on PRs
    comments = github.comments[SOURCE]
    assert len(comments) == 1 and "passed the gate" in comments[0].body
    assert comments[0].body.startswith("<!-- gitops-mlops:report model=iris-classifier -->")
    # The comment and the job summary link the artifact the workflow uploads report.html as.
    link = f"[mlops-report-iris-classifier]({github.url}/{SOURCE}/actions/runs/4242#artifacts)"
    assert link in comments[0].body and link in (tmp_path / "summary").read_text()
    assert (tmp_path / "a" / "report.html").is_file()
    second = run_cli("run", str(project / "mlops.yaml"), "--out", str(tmp_path / "b"), env=env)
    assert second.code == 0
    assert "updated the report on pull request #7" in second.out
    assert len(github.comments[SOURCE]) == 1
    assert github.pulls[REPO] == {}  # pull requests never promote


def test_a_failing_gate_fails_the_check_and_annotates_the_spec_line(
    github: FakeGitHub, project: Path, tmp_path: Path
) -> None:
    spec = project / "mlops.yaml"
    spec.write_text(
        spec.read_text().replace("{metric: accuracy, min: 0.85}", "{metric: accuracy, min: 0.99}")
    )
    number = open_source_pull(github)
    result = run_cli(
        "run",
        str(spec),
        "--out",
        str(tmp_path / "a"),
        env=actions_env(github, tmp_path, "pull_request", number),
    )
    assert result.code == 4
    line = next(i for i, text in enumerate(spec.read_text().splitlines(), 1) if "0.99" in text)
    assert f"::error file={spec},line={line},col=7::gate: accuracy " in result.out
    assert "failed the gate" in github.comments[SOURCE][0].body
    output = (tmp_path / "output").read_text()
    assert "verdict<<" in output and "\nfailed\n" in output


def test_a_read_only_token_warns_instead_of_failing(
    github: FakeGitHub, project: Path, tmp_path: Path
) -> None:
    number = open_source_pull(github)
    github.faults.append(
        Fault(
            "GET",
            r"/issues/7/comments$",
            403,
            body={"message": "Resource not accessible by integration"},
        )
    )
    result = run_cli(
        "run",
        str(project / "mlops.yaml"),
        "--out",
        str(tmp_path / "a"),
        env=actions_env(github, tmp_path, "pull_request", number),
    )
    assert result.code == 0, result.out
    assert "::warning::could not comment on pull request #7" in result.out
    assert "passed the gate" in (tmp_path / "summary").read_text()


def test_push_promotes_every_on_push_environment(
    github: FakeGitHub, project: Path, tmp_path: Path
) -> None:
    env = actions_env(github, tmp_path, "push")
    result = run_cli(
        "run", str(project / "mlops.yaml"), "--out", str(tmp_path / "a"), "--image", IMAGE, env=env
    )
    assert result.code == 0, result.out + result.err
    assert [p.head for p in github.pulls[REPO].values()] == [
        "mlops/promote/staging/iris-classifier"
    ]
    assert "opened pull request #1" in result.out
    output = (tmp_path / "output").read_text()
    assert f"{github.url}/{REPO}/pull/1" in output


def test_push_without_a_docker_engine_says_what_it_skipped(
    github: FakeGitHub, project: Path, tmp_path: Path
) -> None:
    env = actions_env(github, tmp_path, "push") | {"DOCKER_HOST": f"unix://{tmp_path}/none.sock"}
    result = run_cli("run", str(project / "mlops.yaml"), "--out", str(tmp_path / "a"), env=env)
    assert result.code == 0, result.out + result.err
    assert "build     skip             no Docker engine answers at unix://" in result.out
    assert "promote   skip             no image was built, so there is no digest to pin" in (
        result.out
    )
    assert not (tmp_path / "a" / "image").exists()  # no wheels downloaded for nothing
    assert github.pulls[REPO] == {}


def test_workflow_dispatch_promotes_what_staging_runs(
    github: FakeGitHub, project: Path, tmp_path: Path
) -> None:
    env = actions_env(github, tmp_path, "workflow_dispatch")
    spec = str(project / "mlops.yaml")
    refused = run_cli("run", spec, "-e", "production", "--out", str(tmp_path / "d"), env=env)
    assert refused.code == 6, refused.out + refused.err  # a refused promotion, not a failure
    assert "staging has no release yet" in refused.err
    assert "promote to staging first (a push to the default branch" in refused.err
    pushed = run_cli(
        "run",
        spec,
        "--out",
        str(tmp_path / "a"),
        "--image",
        IMAGE,
        env=actions_env(github, tmp_path, "push"),
    )
    assert pushed.code == 0
    waiting = run_cli("run", spec, "-e", "production", "--out", str(tmp_path / "d"), env=env)
    assert waiting.code == 6
    assert f"merge pull request #1 ({github.url}/{REPO}/pull/1) first" in waiting.err
    github.merge(REPO, 1)
    version = json.loads((tmp_path / "a" / "model" / "manifest.json").read_text())["model_version"]
    wrong = run_cli(
        "run",
        spec,
        "-e",
        "production",
        "--version",
        "0123456789ab",
        "--out",
        str(tmp_path / "d"),
        env=env,
    )
    assert wrong.code == 1 and f"staging runs {version}, not 0123456789ab" in wrong.err
    result = run_cli(
        "run", spec, "-e", "production", "--version", version, "--out", str(tmp_path / "d"), env=env
    )
    assert result.code == 0, result.out + result.err
    pull = github.pulls[REPO][2]
    assert pull.head == "mlops/promote/production/iris-classifier"
    record = yaml.safe_load(github.read(REPO, pull.head, "apps/iris/production/model-release.yaml"))
    assert (record["version"], record["image"], record["environment"]) == (
        version,
        IMAGE,
        "production",
    )
    assert "train" not in result.out  # nothing is retrained for a dispatch
    # The model card goes with the version: staging's, written by the run that released it.
    card = github.read(REPO, pull.head, "apps/iris/production/model-card.md")
    assert card == github.read(REPO, "main", "apps/iris/staging/model-card.md")
    assert card == (tmp_path / "a" / "model-card.md").read_text()


def test_dispatch_refused_while_staging_holds_another_version(
    github: FakeGitHub, project: Path, tmp_path: Path
) -> None:
    staging = {
        "apiVersion": "mlops/v1",
        "kind": "ModelRelease",
        "version": "0123456789ab",
        "image": "r@sha256:" + "c" * 64,
    }
    github.commit(
        REPO, "main", {"apps/iris/staging/model-release.yaml": yaml.safe_dump(staging)}, "staging"
    )
    result = run_cli(
        "run",
        str(project / "mlops.yaml"),
        "-e",
        "production",
        "--version",
        "feedbeef0000",
        "--out",
        str(tmp_path / "d"),
        env=actions_env(github, tmp_path, "workflow_dispatch"),
    )
    assert result.code == 1 and "staging runs 0123456789ab, not feedbeef0000" in result.err


def test_dispatch_refuses_an_alias_bomb_in_the_required_release_record(
    github: FakeGitHub, project: Path, tmp_path: Path
) -> None:
    record = "apps/iris/staging/model-release.yaml"
    github.commit(REPO, "main", {record: alias_bomb_record("staging")}, "staging")
    result = run_cli(
        "run",
        str(project / "mlops.yaml"),
        "-e",
        "production",
        "--out",
        str(tmp_path / "d"),
        env=actions_env(github, tmp_path, "workflow_dispatch"),
    )
    assert result.code == 1, result.out + result.err
    assert f"error: {record}:8:" in result.err
    assert "more than 100000 values after expanding aliases" in result.err
    assert github.pulls[REPO] == {}


def test_report_command_prints_locally(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples" / "iris", tmp_path / "iris")
    shutil.copytree(ROOT / "examples" / "gitops", tmp_path / "gitops")
    run = tmp_path / "run"
    assert (
        run_cli(
            "run", str(tmp_path / "iris" / "mlops.yaml"), "--until", "gate", "--out", str(run)
        ).code
        == 0
    )
    result = run_cli("report", str(run))
    assert result.code == 0
    assert result.out.startswith("## ✅ iris-classifier")


def test_a_gitops_repository_that_is_neither_a_folder_nor_owner_name(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples" / "iris", tmp_path / "iris")
    result = run_cli("run", str(tmp_path / "iris" / "mlops.yaml"), "--out", str(tmp_path / "r"))
    assert result.code == 1
    assert "promotion.repository '../gitops' is neither a local git repository nor" in result.err


def test_an_unreachable_api_warns_instead_of_failing(
    github: FakeGitHub, project: Path, tmp_path: Path
) -> None:
    number = open_source_pull(github)
    env = actions_env(github, tmp_path, "pull_request", number)
    env["GITHUB_API_URL"] = "http://127.0.0.1:9/api/v3"  # nothing listens on port 9
    result = run_cli(
        "run", str(project / "mlops.yaml"), "--until", "gate", "--out", str(tmp_path / "a"), env=env
    )
    assert result.code == 0
    report = run_cli("report", str(tmp_path / "a"), env=env)
    assert report.code == 0, report.out + report.err
    assert "::warning::could not comment on pull request #7: cannot reach the GitHub API" in (
        report.out
    )

"""Promotion treats the GitOps repository as someone else's: nothing is read or written
through a symbolic link, each file keeps its line endings and byte order mark, and a digest
is never pinned under another repository's name. Real git, local and behind the fake GitHub.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, run_cli
from tests.fake_github import FakeGitHub, git
from tests.integration.helpers import run_until, write_spec

REPO = "acme/gitops"
IMAGE = "localhost:5000/acme/iris-classifier@sha256:" + "a" * 64
STAGING_RECORD = "apps/iris/staging/model-release.yaml"
PRODUCTION_VALUES = "apps/iris/production/values.yaml"
STAGING_BRANCH = "mlops/promote/staging/test-model"

SPEC = """task: classification
data: {{train: {{builtin: iris}}}}
model: {{estimator: sklearn.tree.DecisionTreeClassifier, params: {{max_depth: 3}}}}
evaluation: {{metrics: [accuracy], latency: false}}
gate: {{{champion}thresholds: [{{metric: accuracy, min: 0.5}}]}}
promotion:
  repository: {repository}
  environments:
    - name: staging
      on: push
      targets: [{{file: apps/iris/staging/kustomization.yaml, kustomize_image: iris-classifier}}]
      {staging_record}
    - name: production
      on: dispatch
      {requires}
      targets: {production_targets}
"""


def spec_text(
    repository: str,
    champion: bool = False,
    requires: bool = True,
    staging_record: str | None = None,
    production_targets: str = f"[{{file: {PRODUCTION_VALUES}, yaml_path: image.digest}}]",
) -> str:
    return SPEC.format(
        repository=repository,
        champion="champion: production, " if champion else "",
        requires="requires: staging" if requires else "",
        staging_record=f"release_record: {staging_record}" if staging_record else "",
        production_targets=production_targets,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("trained")
    return run_until(write_spec(folder, spec_text(REPO)), folder / "run", "gate")


def gitops_layout(folder: Path) -> Path:
    shutil.copytree(ROOT / "examples" / "gitops", folder)
    return folder


def commit_all(folder: Path, message: str = "layout") -> None:
    if not (folder / ".git").exists():
        git("init", "--quiet", "-b", "main", cwd=folder)
    git("add", "-A", cwd=folder)
    git("commit", "--quiet", "-m", message, cwd=folder)


def project(trained: Path, tmp_path: Path, repository: str, **spec: object) -> Path:
    """A project whose spec promotes to `repository`, with a copy of the trained run."""
    folder = tmp_path / "project"
    folder.mkdir()
    spec_file = write_spec(folder, spec_text(repository, **spec))  # type: ignore[arg-type]
    run = folder / "run"
    shutil.copytree(trained, run)
    (run / "run.json").write_text(json.dumps({"spec": str(spec_file)}))
    return run


def link(folder: Path, path: str, target: Path | str) -> None:
    where = folder / path
    if where.is_symlink() or where.is_file():
        where.unlink()
    elif where.is_dir():
        shutil.rmtree(where)
    where.parent.mkdir(parents=True, exist_ok=True)
    where.symlink_to(target)


def blob(folder: Path, ref: str, path: str) -> bytes:
    """A committed file's bytes exactly (no newline translation)."""
    return subprocess.run(
        ["git", "cat-file", "blob", f"{ref}:{path}"], cwd=folder, capture_output=True, check=True
    ).stdout


def branches(folder: Path) -> str:
    return git("branch", "--list", cwd=folder)


OUTSIDE = "precious: this file is outside the GitOps repository\n"


@pytest.mark.parametrize(
    ("linked", "record", "refused_path"),
    [
        # The exploit: the release record is a link to an absolute path outside.
        (STAGING_RECORD, None, STAGING_RECORD),
        # A folder above the release record is a link to a folder outside.
        ("records", "records/staging.yaml", "records/staging.yaml"),
        # The model card beside the record is a link to a file outside.
        ("apps/iris/staging/model-card.md", None, "apps/iris/staging/model-card.md"),
    ],
)
def test_promotion_never_writes_through_a_link(
    trained: Path, tmp_path: Path, linked: str, record: str | None, refused_path: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / ("staging.yaml" if record else "record.yaml")
    victim.write_text(OUTSIDE)
    gitops = gitops_layout(tmp_path / "gitops")
    link(gitops, linked, outside if record else victim)
    commit_all(gitops)
    run = project(trained, tmp_path, str(gitops), staging_record=record)
    result = run_cli("promote", str(run), "-e", "staging", "--image", IMAGE)
    output = result.out + result.err
    assert result.code == 1, output
    assert f"{gitops} (main): {refused_path}: a symbolic link" in output
    assert "Commit the real file" in output
    assert victim.read_text() == OUTSIDE  # untouched
    assert STAGING_BRANCH not in branches(gitops)  # nothing half-written either


def test_a_linked_target_is_refused(trained: Path, tmp_path: Path) -> None:
    gitops = gitops_layout(tmp_path / "gitops")
    kustomization = "apps/iris/staging/kustomization.yaml"
    (gitops / "real-kustomization.yaml").write_text((gitops / kustomization).read_text())
    link(gitops, kustomization, "../../../real-kustomization.yaml")
    commit_all(gitops)
    run = project(trained, tmp_path, str(gitops))
    result = run_cli("promote", str(run), "-e", "staging", "--image", IMAGE)
    assert result.code == 1
    assert f"{kustomization}: a symbolic link" in result.err
    assert STAGING_BRANCH not in branches(gitops)


def test_the_required_environment_record_is_not_read_through_a_link(
    trained: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.yaml"
    secret.write_text("kind: ModelRelease\nversion: leaked-from-outside\n")
    gitops = gitops_layout(tmp_path / "gitops")
    link(gitops, STAGING_RECORD, secret)
    commit_all(gitops)
    run = project(trained, tmp_path, str(gitops))
    result = run_cli("promote", str(run), "-e", "production", "--image", IMAGE)
    assert result.code == 1, result.err
    assert f"{STAGING_RECORD}: a symbolic link" in result.err
    assert "leaked-from-outside" not in result.out + result.err


@pytest.mark.parametrize("as_git", [True, False], ids=["git repository", "plain folder"])
def test_the_champion_record_is_not_read_through_a_link(
    trained: Path, tmp_path: Path, as_git: bool
) -> None:
    secret = tmp_path / "secret.yaml"
    secret.write_text(
        "kind: ModelRelease\nversion: leaked\nmetrics: {accuracy: {value: 0.123456}}\n"
    )
    gitops = gitops_layout(tmp_path / "gitops")
    link(gitops, "apps/iris/production/model-release.yaml", secret)
    if as_git:
        commit_all(gitops)
    run = project(trained, tmp_path, str(gitops), champion=True)
    result = run_cli("gate", str(run))
    output = result.out + result.err
    assert result.code == 1, output
    assert "apps/iris/production/model-release.yaml: a symbolic link" in output
    assert "0.123456" not in output + (run / "report.md").read_text()


def test_a_link_in_a_github_repository_is_refused(trained: Path, tmp_path: Path) -> None:
    outside = tmp_path / "victim.yaml"
    outside.write_text(OUTSIDE)
    with FakeGitHub() as fake:
        files = {
            str(p.relative_to(ROOT / "examples" / "gitops")): p.read_text()
            for p in (ROOT / "examples" / "gitops").rglob("*.yaml")
        }
        fake.create_repo(REPO, files)
        work = tmp_path / "work"
        git("clone", "--quiet", str(fake.bare(REPO)), str(work))
        link(work, STAGING_RECORD, outside)
        git("add", "-A", cwd=work)
        git("commit", "--quiet", "-m", "a record that points outside", cwd=work)
        git("push", "--quiet", "origin", "HEAD:refs/heads/main", cwd=work)
        run = project(trained, tmp_path, REPO)
        result = run_cli(
            "promote", str(run), "-e", "staging", "--image", IMAGE, env=fake.env("acme/models")
        )
        assert result.code == 1, result.out + result.err
        assert f"{REPO}.git (main): {STAGING_RECORD}: a symbolic link" in result.err
        assert fake.head(REPO, STAGING_BRANCH) is None and fake.pulls[REPO] == {}
    assert outside.read_text() == OUTSIDE


def to_crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


def test_line_endings_and_byte_order_marks_are_kept(trained: Path, tmp_path: Path) -> None:
    gitops = gitops_layout(tmp_path / "gitops")
    kustomization = gitops / "apps/iris/staging/kustomization.yaml"
    values = gitops / PRODUCTION_VALUES
    kustomization.write_bytes(b"\xef\xbb\xbf" + to_crlf(kustomization.read_text()))
    values.write_bytes(to_crlf(values.read_text()))
    record = "\ufeff# a hand-written record\nkind: ModelRelease\nversion: old\n"
    (gitops / STAGING_RECORD).write_bytes(to_crlf(record))
    commit_all(gitops)
    run = project(trained, tmp_path, str(gitops), requires=False)
    for environment in ("staging", "production"):
        result = run_cli("promote", str(run), "-e", environment, "--image", IMAGE)
        assert result.code == 0, result.out + result.err

    staged = blob(gitops, STAGING_BRANCH, "apps/iris/staging/kustomization.yaml")
    before = kustomization.read_bytes()
    assert staged.startswith(b"\xef\xbb\xbf") and b"\n" not in staged.replace(b"\r\n", b"")
    # Only the inserted digest line is new; every other line is byte for byte the same.
    assert staged == before + b"    digest: sha256:" + b"a" * 64 + b"\r\n"

    record_text = blob(gitops, STAGING_BRANCH, STAGING_RECORD)
    assert record_text.startswith(b"\xef\xbb\xbf") and b"\n" not in record_text.replace(
        b"\r\n", b""
    )
    assert yaml.safe_load(record_text.decode("utf-8-sig"))["image"] == IMAGE

    production = blob(gitops, "mlops/promote/production/test-model", PRODUCTION_VALUES)
    pinned = b'digest: "sha256:' + b"a" * 64 + b'"'
    assert production == values.read_bytes().replace(b'digest: ""', pinned)


def test_a_digest_is_never_pinned_under_another_repository(trained: Path, tmp_path: Path) -> None:
    gitops = gitops_layout(tmp_path / "gitops")
    commit_all(gitops)
    run = project(trained, tmp_path, str(gitops), requires=False)
    elsewhere = "localhost:5123/acme/iris-classifier@sha256:" + "c" * 64
    result = run_cli("promote", str(run), "-e", "production", "--image", elsewhere)
    assert result.code == 1, result.out + result.err
    assert (
        f"{PRODUCTION_VALUES}:4:15: image.repository names 'localhost:5000/acme/iris-classifier'"
        ", but the image pushed is localhost:5123/acme/iris-classifier" in result.err
    )
    suggestion = f"{{file: {PRODUCTION_VALUES}, yaml_path: image.repository, value: repository}}"
    assert suggestion in result.err
    assert "mlops/promote/production/test-model" not in branches(gitops)

    # With the suggested target added, both are pinned together.
    shutil.rmtree(run.parent)
    run = project(
        trained,
        tmp_path,
        str(gitops),
        requires=False,
        production_targets=f"[{{file: {PRODUCTION_VALUES}, yaml_path: image.digest}}, "
        + suggestion
        + "]",
    )
    result = run_cli("promote", str(run), "-e", "production", "--image", elsewhere)
    assert result.code == 0, result.out + result.err
    pinned = yaml.safe_load(blob(gitops, "mlops/promote/production/test-model", PRODUCTION_VALUES))
    assert pinned["image"]["repository"] == "localhost:5123/acme/iris-classifier"
    assert pinned["image"]["digest"] == "sha256:" + "c" * 64

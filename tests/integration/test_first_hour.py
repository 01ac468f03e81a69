"""What a new user meets in the first hour: the README's commands, the messages and exit
codes of the CLI, and a machine that has only part of the image setup."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli
from tests.fake_github import git
from tests.image_setup import BASE_IMAGE, require
from tests.integration.helpers import copy_example

MLOPS = str(Path(sys.executable).parent / "mlops")
UNUSED = "127.0.0.1:9"  # nothing listens on the discard port: a registry that does not answer


def laptop_env(**extra: str) -> dict[str, str]:
    """This environment as a laptop has it: no GitHub Actions variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    env.pop("MLOPS_BASE_IMAGE", None)
    return env | extra


def quick_iris(folder: Path, threshold: str = "0.85") -> Path:
    """The iris example without its latency measurement, with an accuracy floor."""
    spec = copy_example(folder)
    text = spec.read_text().replace("latency: {batch_size: 1, repeats: 100}", "latency: false")
    text = re.sub(r"\n    - \{metric: latency_p95_ms[^\n]*", "", text)
    spec.write_text(
        text.replace("{metric: accuracy, min: 0.85}", f"{{metric: accuracy, min: {threshold}}}")
    )
    return spec


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One run cache for the module: quick_iris trains once, the other runs restore it
    (thresholds, container and promotion are not in its key), so each test pays for the
    stage it is about, not for training again."""
    return str(tmp_path_factory.mktemp("run-cache"))


def test_a_failed_gate_says_failed_on_its_stage_line(tmp_path: Path, cache: str) -> None:
    spec = quick_iris(tmp_path, threshold="0.999")
    out = str(tmp_path / "run")
    result = run_cli("run", str(spec), "--until", "gate", "--out", out, "--cache", cache)
    assert result.code == 4, result.out + result.err
    gate_line = next(line for line in result.out.splitlines() if line.startswith("gate "))
    assert gate_line.split()[1] == "failed", gate_line
    again = run_cli("gate", str(tmp_path / "run"))
    assert again.code == 4 and again.out.splitlines()[0].split()[:2] == ["gate", "failed"]


def test_runs_never_show_up_in_git_status(tmp_path: Path, cache: str) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    quick_iris(repo)
    git("init", "--quiet", "-b", "main", cwd=repo)
    git("add", "-A", cwd=repo)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", "x", cwd=repo)
    done = subprocess.run(
        [MLOPS, "run", "iris/mlops.yaml", "--until", "gate", "--cache", cache],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert any((repo / ".mlops" / "runs").iterdir())
    assert (repo / ".mlops" / ".gitignore").read_text().splitlines()[-1] == "*"
    assert git("status", "--porcelain", "--untracked-files=all", cwd=repo) == ""


def _readme_block(after: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("```sh\n", text.index(after)) + len("```sh\n")
    return text[start : text.index("```", start)]


def test_the_readme_local_promotion_pastes_as_written_and_leaves_the_clone_clean(
    tmp_path: Path,
) -> None:
    """The block runs in bash as written, in a clone, with no registry and no GitHub."""
    clone = tmp_path / "clone"
    shutil.copytree(ROOT / "examples", clone / "examples")
    git("init", "--quiet", "-b", "main", cwd=clone)
    git("add", "-A", cwd=clone)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", "x", cwd=clone)
    block = _readme_block("With a local path no\nGitHub is needed")
    assert "<" not in block, "no placeholders: the block must paste as written"
    env = laptop_env(TMPDIR=str(tmp_path), PATH=f"{Path(MLOPS).parent}:{os.environ['PATH']}")
    env["DOCKER_HOST"] = f"unix://{tmp_path}/no-docker.sock"
    done = subprocess.run(
        ["bash", "-e", "-c", block],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "committed " in done.stdout and "branch mlops/promote/staging/iris-classifier" in (
        done.stdout
    )
    assert git("status", "--porcelain", "--untracked-files=all", cwd=clone) == ""
    demo = tmp_path / "mlops-demo"
    assert git("rev-parse", "mlops/promote/staging/iris-classifier", cwd=demo / "gitops")


def test_dispatch_before_the_required_environment_has_a_release_is_refused(
    tmp_path: Path, cache: str
) -> None:
    spec = quick_iris(tmp_path)
    gitops = tmp_path / "gitops"
    git("init", "--quiet", "-b", "main", cwd=gitops)
    git("add", "-A", cwd=gitops)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", "x", cwd=gitops)
    env = laptop_env()
    dispatch = ["run", str(spec), "--event", "workflow_dispatch", "-e", "production"]
    nothing = run_cli(*dispatch, "--out", str(tmp_path / "d"), env=env)
    assert nothing.code == 6, nothing.out + nothing.err
    assert "staging has no release yet" in nothing.err
    assert "promote to staging first" in nothing.err
    run = tmp_path / "run"
    gated = run_cli(
        "run", str(spec), "--until", "gate", "--out", str(run), "--cache", cache, env=env
    )
    assert gated.code == 0, gated.out + gated.err
    image = "localhost:5000/acme/iris-classifier@sha256:" + "0" * 64
    assert run_cli("promote", str(run), "-e", "staging", "--image", image, env=env).code == 0
    waiting = run_cli(*dispatch, "--out", str(tmp_path / "d"), env=env)
    assert waiting.code == 6
    assert (
        f"merge branch mlops/promote/staging/iris-classifier of {gitops.resolve()} first"
        in waiting.err
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["schema"],
        ["metrics"],
        ["validate", "examples/iris/mlops.yaml", "examples/diabetes-csv/mlops.yaml"],
        ["validate", "--format", "json", "tests/specs/invalid/unknown-metric.yaml"],
        ["run", "examples/iris/mlops.yaml", "--until", "validate"],
        ["columns", "examples/iris/mlops.yaml"],
    ],
    ids=lambda argv: " ".join(argv),
)
def test_a_closed_standard_output_ends_any_subcommand_quietly(argv: list[str]) -> None:
    reader, writer = os.pipe()
    os.close(reader)  # `| head -1` that has already left
    try:
        done = subprocess.run(
            [MLOPS, *argv], cwd=ROOT, stdout=writer, stderr=subprocess.PIPE, timeout=120
        )
    finally:
        os.close(writer)
    assert done.stderr.decode() == ""
    assert done.returncode == 141


def test_no_log_file_is_committed() -> None:
    tracked = git("ls-files", "*.log", "**/*.log", cwd=ROOT).split()
    assert tracked == []


# --- a machine with only part of the image setup -------------------------------------------


def test_a_base_image_that_cannot_be_obtained_is_a_skip_on_a_laptop(
    tmp_path: Path, cache: str
) -> None:
    require()  # an engine: without one, that skip line is tested elsewhere
    spec = quick_iris(tmp_path)
    base = f"{UNUSED}/nowhere/python:3.11"
    result = run_cli(
        "run",
        str(spec),
        "--out",
        str(tmp_path / "a"),
        "--base-image",
        base,
        "--cache",
        cache,
        env=laptop_env(),
    )
    assert result.code == 0, result.out + result.err
    skip = next(line for line in result.out.splitlines() if line.startswith("build "))
    assert skip.split()[1] == "skip"
    assert f"the base image {base} is not available" in skip
    assert "build or pull it, or name another with --base-image or MLOPS_BASE_IMAGE" in skip
    for strict in (["--strict"], []):
        env = laptop_env() if strict else laptop_env(GITHUB_ACTIONS="true")
        out = str(tmp_path / "b")
        failed = run_cli(
            "run", str(spec), "--out", out, "--base-image", base, "--cache", cache, *strict, env=env
        )
        assert failed.code == 5, failed.out + failed.err
        assert f"the base image {base} is not available" in failed.err


def test_without_a_registry_the_image_is_built_and_not_pushed(tmp_path: Path, cache: str) -> None:
    client = require(base_image=True)
    spec = quick_iris(tmp_path)
    spec.write_text(spec.read_text().replace("localhost:5000/acme", f"{UNUSED}/acme"))
    actions = laptop_env(GITHUB_ACTIONS="true")
    image_run = ["run", str(spec), "--base-image", BASE_IMAGE, "--cache", cache]
    refused = run_cli(*image_run, "--out", str(tmp_path / "b"), env=actions)
    assert refused.code == 5, refused.out + refused.err
    assert f"cannot reach the registry {UNUSED}" in refused.err
    assert "build " not in refused.out  # refused before a minute of building
    result = run_cli(*image_run, "--out", str(tmp_path / "a"), env=laptop_env())
    assert result.code == 0, result.out + result.err
    lines = {line.split()[0]: line for line in result.out.splitlines() if line[:1].isalpha()}
    assert lines["build"].split()[1] == "ok"
    assert lines["push"].split()[1] == "skip"
    assert f"cannot reach the registry {UNUSED}" in lines["push"]
    assert (
        "start a registry there, or set container.image to one you can push to" in (lines["push"])
    )
    build = json.loads((tmp_path / "a" / "build.json").read_text())
    client.images.remove(build["reference"], force=True)  # built here, for this test only
    assert build["pushed"] is False and build["smoke_test"]["passed"] is True
    assert lines["promote"].split()[1] == "skip"

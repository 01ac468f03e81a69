"""Rollback and holds against a local GitOps repository and the registry on 127.0.0.1:5000.

Two real releases of churn (two trainings, two versions) whose images are pushed to the
registry through the distribution API; promotions are merged with git as a reviewer would.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitops_mlops.attestations import chain, signing
from gitops_mlops.attestations.facts import build_facts
from gitops_mlops.attestations.signing import SigningKey
from gitops_mlops.integrations.registry import Reference, Registry
from tests.conftest import run_cli
from tests.fake_github import git
from tests.fleet_repo import checked_out, local_gitops, model_repo, spec_text, write
from tests.image_setup import shared_registry
from tests.integration.registry_helpers import (
    PASSWORD,
    USER,
    Private,
    private_registry,
    push_image,
)

GITOPS = "../../../gitops"


@pytest.fixture(scope="module")
def registry() -> Registry:
    return shared_registry()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two gated runs of churn with different models (so two versions)."""
    folder = tmp_path_factory.mktemp("rollback-runs")
    local_gitops(folder / "gitops")
    repo = model_repo(folder / "repo", GITOPS)
    found = []
    for index, iterations in enumerate((2000, 50)):
        text = spec_text("churn", GITOPS, threshold=0.5).replace(
            "max_iter: 2000", f"max_iter: {iterations}"
        )
        write(repo, {"models/churn/mlops.yaml": text})
        out = folder / f"run-{index}"
        spec = str(repo / "models" / "churn" / "mlops.yaml")
        result = run_cli("run", spec, "--until", "gate", "--out", str(out))
        assert result.code == 0, result.out + result.err
        found.append(out)
    return found


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    with checked_out(tmp_path, GITOPS) as found:
        yield found


def version(run: Path) -> str:
    return str(json.loads((run / "model" / "manifest.json").read_text())["model_version"])


def image(registry: Registry, repository: str, content: bytes) -> str:
    pushed = push_image(registry, repository, "v", [{"model": content}])
    return f"localhost:5000/{repository}@{pushed.digest}"


class Fleet:
    def __init__(self, repo: Path, gitops: Path, tmp: Path) -> None:
        self.repo, self.gitops, self.tmp = repo, gitops, tmp
        self.merged = 0

    def run(self, source: Path) -> Path:
        copy = self.tmp / f"run-{uuid.uuid4().hex[:8]}"
        shutil.copytree(source, copy)
        spec = self.repo / "models" / "churn" / "mlops.yaml"
        (copy / "run.json").write_text(json.dumps({"spec": str(spec), "spec_digest": ""}))
        return copy

    def merge(self, branch: str) -> None:
        self.merged += 1
        git(
            "merge",
            "--quiet",
            "--no-ff",
            "-m",
            f"Merge pull request #{self.merged} from {branch}",
            branch,
            cwd=self.gitops,
        )

    def release(self, source: Path, environment: str, reference: str) -> None:
        result = run_cli("promote", str(self.run(source)), "-e", environment, "--image", reference)
        assert result.code == 0, result.out + result.err
        self.merge(f"mlops/promote/{environment}/churn")

    def record(self, environment: str, ref: str = "HEAD") -> dict[str, Any]:
        text = git("show", f"{ref}:apps/churn/{environment}/model-release.yaml", cwd=self.gitops)
        loaded: dict[str, Any] = yaml.safe_load(text)
        return loaded

    def pinned(self, environment: str, ref: str = "HEAD") -> str:
        text = git("show", f"{ref}:apps/churn/{environment}/values.yaml", cwd=self.gitops)
        return str(yaml.safe_load(text)["image"]["digest"])


@pytest.fixture
def two_releases(
    fleet: tuple[Path, Path], runs: list[Path], registry: Registry, tmp_path: Path
) -> tuple[Fleet, list[str]]:
    """churn released twice to staging (A then B): what runs now is B."""
    world = Fleet(*fleet, tmp_path)
    # The GitOps values name localhost:5000/fleet/churn: the images live there, each with
    # content of its own (so its own digest) per test.
    unique = uuid.uuid4().hex
    images = [image(registry, "fleet/churn", f"model {i} {unique}".encode()) for i in range(2)]
    world.release(runs[0], "staging", images[0])
    world.release(runs[1], "staging", images[1])
    return world, images


def test_rollback_pins_the_earlier_image_and_holds_the_environment(
    two_releases: tuple[Fleet, list[str]], runs: list[Path]
) -> None:
    world, images = two_releases
    result = run_cli("rollback", "churn", "-e", "staging", "--reason", "p95 latency doubled")
    assert result.code == 0, result.out + result.err
    assert f"{version(runs[1])} -> {version(runs[0])}" in result.out
    branch = "mlops/rollback/staging/churn"
    record = world.record("staging", branch)
    assert record["version"] == version(runs[0]) and record["image"] == images[0]
    assert record["rollback_of"] == version(runs[1])
    assert record["reason"] == "p95 latency doubled"
    assert record["hold"] == {
        "reason": f"rolled back from {version(runs[1])}: p95 latency doubled",
        "rollback_of": version(runs[1]),
    }
    assert world.pinned("staging", branch) == images[0].split("@")[1]
    message = git("log", "-1", "--format=%s", branch, cwd=world.gitops).strip()
    assert message == f"Roll back churn in staging to {version(runs[0])}"
    # No card of B stays beside a record of A: a note points to A's in the file's history.
    card = git("show", f"{branch}:apps/churn/staging/model-card.md", cwd=world.gitops)
    assert card.startswith(f"<!-- gitops-mlops:model-card model=churn version={version(runs[0])}")
    assert "re-releases" in card and "git history" in card
    tip = git("rev-parse", branch, cwd=world.gitops)
    again = run_cli("rollback", "churn", "-e", "staging", "--reason", "p95 latency doubled")
    assert again.code == 0, again.err  # a rerun finds the branch as it wants it: nothing new
    assert git("rev-parse", branch, cwd=world.gitops) == tip

    world.merge(branch)
    status = json.loads(run_cli("status", "--format", "json").out)
    staging = next(
        r for r in status["releases"] if (r["model"], r["environment"]) == ("churn", "staging")
    )
    assert staging["version"] == version(runs[0]) and staging["hold"]["rollback_of"]
    assert staging["rollback_of"] == version(runs[1])
    history = json.loads(run_cli("history", "churn", "-e", "staging", "--format", "json").out)
    assert [e["version"] for e in history] == [version(r) for r in (runs[0], runs[1], runs[0])]
    assert history[0]["rollback_of"] == version(runs[1]) and history[1]["rollback_of"] is None


def test_a_hold_refuses_promotion_until_forced_or_released(
    two_releases: tuple[Fleet, list[str]], runs: list[Path]
) -> None:
    world, images = two_releases
    assert run_cli("rollback", "churn", "-e", "staging", "--reason", "bad").code == 0
    world.merge("mlops/rollback/staging/churn")

    refused = run_cli("promote", str(world.run(runs[1])), "-e", "staging", "--image", images[1])
    assert refused.code == 6
    assert "staging is on hold for churn" in refused.err
    assert "mlops release-hold churn --environment staging" in refused.err
    no_reason = run_cli(
        "promote", str(world.run(runs[1])), "-e", "staging", "--image", images[1], "--force"
    )
    assert no_reason.code == 1 and "--reason" in no_reason.err
    forced = run_cli(
        "promote",
        str(world.run(runs[1])),
        "-e",
        "staging",
        "--image",
        images[1],
        "--force",
        "--reason",
        "fixed upstream",
    )
    assert forced.code == 0, forced.err
    assert "hold" not in world.record("staging", "mlops/promote/staging/churn")

    lifted = run_cli("release-hold", "churn", "-e", "staging")
    assert lifted.code == 0, lifted.out + lifted.err
    branch = "mlops/release-hold/staging/churn"
    record = world.record("staging", branch)
    assert "hold" not in record and record["version"] == version(runs[0])
    assert record["rollback_of"] == version(runs[1])  # what runs is still the rollback
    assert world.pinned("staging", branch) == images[0].split("@")[1]
    world.merge(branch)
    again = run_cli("release-hold", "churn", "-e", "staging")
    assert again.code == 1 and "not on hold" in again.err
    promoted = run_cli("promote", str(world.run(runs[1])), "-e", "staging", "--image", images[1])
    assert promoted.code == 0, promoted.err


def test_requires_follows_what_staging_holds_after_a_rollback(
    two_releases: tuple[Fleet, list[str]], runs: list[Path]
) -> None:
    world, images = two_releases
    assert run_cli("rollback", "churn", "-e", "staging", "--reason", "bad").code == 0
    world.merge("mlops/rollback/staging/churn")
    refused = run_cli("promote", str(world.run(runs[1])), "-e", "production", "--image", images[1])
    assert refused.code == 6 and f"staging runs {version(runs[0])}" in refused.err
    spec = str(world.repo / "models" / "churn" / "mlops.yaml")
    out = str(world.tmp / "dispatch")
    guarded = run_cli(
        "run",
        spec,
        "--event",
        "workflow_dispatch",
        "-e",
        "production",
        "--version",
        version(runs[1]),
        "--out",
        out,
    )
    assert guarded.code == 1 and f"staging runs {version(runs[0])}" in guarded.err
    dispatched = run_cli(
        "run", spec, "--event", "workflow_dispatch", "-e", "production", "--out", out
    )
    assert dispatched.code == 0, dispatched.err
    assert world.record("production", "mlops/promote/production/churn")["image"] == images[0]


def test_a_held_production_refuses_the_dispatch(
    two_releases: tuple[Fleet, list[str]], runs: list[Path]
) -> None:
    world, images = two_releases
    spec = str(world.repo / "models" / "churn" / "mlops.yaml")
    out = str(world.tmp / "dispatch")
    for run, reference in ((runs[0], images[0]), (runs[1], images[1])):
        world.release(run, "staging", reference)  # production receives what staging runs
        dispatched = run_cli(
            "run", spec, "--event", "workflow_dispatch", "-e", "production", "--out", out
        )
        assert dispatched.code == 0, dispatched.err
        world.merge("mlops/promote/production/churn")
    assert run_cli("rollback", "churn", "-e", "production", "--reason", "drift").code == 0
    world.merge("mlops/rollback/production/churn")
    refused = run_cli("run", spec, "--event", "workflow_dispatch", "-e", "production", "--out", out)
    assert refused.code == 6 and "production is on hold for churn" in refused.err
    # The pull request report of the next candidate says so (production is its champion).
    gated = run_cli("run", spec, "--until", "gate", "--out", str(world.tmp / "next"))
    assert gated.code in (0, 4), gated.out + gated.err
    report = (world.tmp / "next" / "report.md").read_text()
    assert "**production is on hold**: rolled back from" in report
    assert "mlops release-hold churn --environment production" in report


def test_a_version_that_never_ran_there_is_refused_naming_those_that_did(
    two_releases: tuple[Fleet, list[str]], runs: list[Path]
) -> None:
    result = run_cli("rollback", "churn", "-e", "staging", "--to", "0123456789ab", "--reason", "x")
    assert result.code == 6
    assert "0123456789ab never ran in staging" in result.err
    assert f"newest first: {version(runs[1])}, {version(runs[0])}" in result.err
    explicit = run_cli(
        "rollback", "churn", "-e", "staging", "--to", version(runs[0]), "--reason", "x"
    )
    assert explicit.code == 0, explicit.err
    nothing = run_cli("rollback", "churn", "-e", "production", "--reason", "x")
    assert nothing.code == 6 and "nothing was ever released to production" in nothing.err


def test_an_image_gone_from_the_registry_is_refused(
    two_releases: tuple[Fleet, list[str]], registry: Registry
) -> None:
    world, images = two_releases
    repository, digest = images[0].removeprefix("localhost:5000/").split("@")
    registry.delete(repository, digest)
    result = run_cli("rollback", "churn", "-e", "staging", "--reason", "bad")
    assert result.code == 6, result.err
    assert "is no longer in its registry" in result.err
    assert "mlops/rollback/staging/churn" not in git("branch", "--list", cwd=world.gitops)


# --- a private registry with promotion.verify ----------------------------------------------


@pytest.fixture
def token_registry(tmp_path: Path) -> Iterator[Private]:
    (tmp_path / "registry").mkdir()
    with private_registry(tmp_path / "registry", token=True) as found:
        yield found


def _signed_image(registry: Registry, host: str, run: Path, key: SigningKey, tag: str) -> str:
    """An image in the private registry carrying signed attestations of `run`'s model, as
    `mlops build` attaches them (the chain a verifying promotion checks)."""
    subject = push_image(registry, "fleet/churn", tag, [{"model": uuid.uuid4().bytes}])
    reference = Reference.parse(f"{host}/fleet/churn@{subject.digest}")
    facts = build_facts(
        model_name="churn",
        spec_path="models/churn/mlops.yaml",
        manifest=json.loads((run / "model" / "manifest.json").read_text()),
        metrics=json.loads((run / "metrics.json").read_text()),
        verdict=json.loads((run / "verdict.json").read_text()),
        build={"image": reference.name, "digest": subject.digest},
        env={},
        started="2026-12-02T00:00:00Z",
        finished="2026-12-02T00:00:01Z",
    )
    chain.publish(registry, reference, subject, facts, key, run.parent / f"attest-{tag}")
    return f"{host}/fleet/churn@{subject.digest}"


def test_rollback_verifies_the_earlier_image_with_the_registry_login(
    fleet: tuple[Path, Path], runs: list[Path], tmp_path: Path, token_registry: Private
) -> None:
    """A rollback is verified like any promotion (promotion.verify); every real registry
    wants a login for that, which comes from the environment as for `mlops promote`."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = fleet[0] / "models" / "churn" / "signing.pub.pem"
    public.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    key = signing.load_private(pem, "test key")
    login = {"MLOPS_REGISTRY_USERNAME": USER, "MLOPS_REGISTRY_PASSWORD": PASSWORD}
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    env = {**env, "HOME": str(tmp_path), "DOCKER_CONFIG": str(tmp_path / "no-docker-config")}
    registry = Registry(token_registry.host, login)
    world = Fleet(*fleet, tmp_path)
    images = [
        _signed_image(registry, token_registry.host, world.run(run), key, f"v{i}")
        for i, run in enumerate(runs)
    ]
    spec = world.repo / "models" / "churn" / "mlops.yaml"
    relative = os.path.relpath(public, spec.parent)
    text = spec.read_text().replace(
        "promotion:\n", f"promotion:\n  verify: {{public_key: {relative}}}\n", 1
    )
    spec.write_text(
        text.replace("localhost:5000/fleet/churn", f"{token_registry.host}/fleet/churn")
    )
    for place in ("staging", "production"):  # the images live in the private registry
        values = world.gitops / "apps" / "churn" / place / "values.yaml"
        values.write_text(values.read_text().replace("localhost:5000", token_registry.host))
    git("commit", "--quiet", "-am", "the private registry", cwd=world.gitops)
    for run, reference in zip(runs, images, strict=True):
        promoted = run_cli(
            "promote", str(world.run(run)), "-e", "staging", "--image", reference, env=env | login
        )
        assert promoted.code == 0, promoted.out + promoted.err
        world.merge("mlops/promote/staging/churn")

    anonymous = run_cli("rollback", "churn", "-e", "staging", "--reason", "bad", env=env)
    assert anonymous.code != 0 and "docker login" in anonymous.err, anonymous.err
    result = run_cli("rollback", "churn", "-e", "staging", "--reason", "bad", env=env | login)
    assert result.code == 0, result.out + result.err
    record = world.record("staging", "mlops/rollback/staging/churn")
    assert record["image"] == images[0]
    assert f"signed by | key `{key.public.fingerprint}`" in result.out  # verified, with the key
    world.merge("mlops/rollback/staging/churn")
    lifted = run_cli("release-hold", "churn", "-e", "staging", env=env | login)
    assert lifted.code == 0, lifted.out + lifted.err

"""Signed SBOM and provenance on the real engine and registry: attach, verify, refuse.

One image is built, pushed and attested (signed with an Ed25519 key) for the module; other
images are small ones pushed straight through the registry API, to carry attestations moved
from the real one, or none at all.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from gitops_mlops.attestations import ENVELOPE_MEDIA_TYPE, KINDS
from gitops_mlops.integrations.registry import OCI_INDEX, Reference, Registry, fallback_tag
from tests.conftest import run_cli
from tests.fake_github import FakeGitHub, git
from tests.image_setup import installed_packages, pip_name
from tests.integration.helpers import copy_example
from tests.integration.registry_helpers import push_image
from tests.integration.test_build import BASE, engine  # noqa: F401 - the engine fixture

IMAGE = f"localhost:5000/test/attest-{uuid.uuid4().hex[:10]}"
REPO = "acme/gitops"


def _write_key(folder: Path, name: str, private: Any) -> tuple[Path, Path]:
    key = folder / f"{name}.pem"
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = folder / f"{name}.pub.pem"
    public.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key, public


def _project(folder: Path, n_estimators: int = 50) -> Path:
    spec = copy_example(folder)
    text = spec.read_text().replace("localhost:5000/acme/iris-classifier", IMAGE)
    text = text.replace("n_estimators: 100", f"n_estimators: {n_estimators}")
    text = text.replace("{metric: latency_p95_ms, max: 50}", "{metric: latency_p95_ms, max: 1e4}")
    spec.write_text(text)
    gitops = folder / "gitops"
    git("init", "--quiet", "-b", "main", cwd=gitops)
    git("add", "-A", cwd=gitops)
    git("commit", "--quiet", "-m", "layout", cwd=gitops)
    return spec


@pytest.fixture(scope="module")
def attested(engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:  # noqa: F811
    folder = tmp_path_factory.mktemp("attested")
    spec = _project(folder)
    keys = folder / "iris" / "keys"
    keys.mkdir()
    key, public = _write_key(keys, "signing", ed25519.Ed25519PrivateKey.generate())
    _, other = _write_key(keys, "other", ec.generate_private_key(ec.SECP256R1()))
    run = folder / "run"
    result = run_cli("run", str(spec), "--until", "gate", "--out", str(run))
    assert result.code == 0, result.out + result.err
    built = run_cli("build", str(run), "--base-image", BASE, "--push", "--signing-key", str(key))
    assert built.code == 0, built.out + built.err
    data = json.loads((run / "build.json").read_text())
    registry = Registry("localhost:5000", {})
    repository = Reference.parse(IMAGE).repository
    yield {
        "folder": folder,
        "spec": spec,
        "run": run,
        "key": key,
        "public": public,
        "other": other,
        "build": data,
        "out": built.out,
        "image": f"{IMAGE}@{data['digest']}",
        "registry": registry,
        "repository": repository,
    }
    for tag in registry.tags(repository):
        found = registry.resolve(repository, tag)
        if found is not None:
            registry.delete(repository, found.digest)


def _verify(image: str, *extra: str) -> tuple[int, str]:
    result = run_cli("verify", image, *extra)
    return result.code, result.out + result.err


def _envelopes(attested: dict[str, Any]) -> dict[str, bytes]:
    return {
        name: (attested["run"] / "attestations" / kind.envelope).read_bytes()
        for name, kind in KINDS.items()
    }


def _small_image(attested: dict[str, Any], tag: str) -> Any:
    return push_image(attested["registry"], attested["repository"], tag, [{tag: tag.encode()}])


def test_build_attaches_signed_attestations_and_says_where(attested: dict[str, Any]) -> None:
    record = attested["build"]["attestations"]
    assert record["signed"] is True and record["key"].startswith("sha256:")
    tag = fallback_tag(attested["build"]["digest"])
    for name in KINDS:
        assert (
            f"attached {name:<10} {record[name]['reference']} (referrers tag {tag})"
            in (attested["out"])
        )
    assert f"signed with key {record['key']}" in attested["out"]
    listed = attested["registry"].referrers(attested["repository"], attested["build"]["digest"])
    assert {d.digest for d in listed} == {record[name]["manifest"] for name in KINDS}


def test_verify_prints_the_chain(attested: dict[str, Any]) -> None:
    code, out = _verify(
        attested["image"], "--public-key", str(attested["public"]), "--format", "json"
    )
    assert code == 0, out
    chain = json.loads(out)
    manifest = json.loads((attested["run"] / "model" / "manifest.json").read_text())
    assert chain["verified"] is True and chain["key"] == attested["build"]["attestations"]["key"]
    assert chain["model_version"] == manifest["model_version"]
    assert chain["model_digest"] == manifest["model_digest"]
    assert chain["spec"]["digest"] == {"sha256": manifest["spec_digest"].removeprefix("sha256:")}
    assert chain["data"] == {"data": {"sha256": manifest["data_digest"].removeprefix("sha256:")}}
    assert chain["gate"] == {"passed": True, "checks": 4, "failed": 0}
    assert chain["packages"] == len(attested["build"]["packages"])
    assert chain["builder"] == "local"
    # The referrers API (404 here) and its tag, then a manifest and an envelope per kind.
    assert chain["registry_requests"] == 2 + 2 * len(KINDS)
    code, text = _verify(attested["image"], "--public-key", str(attested["public"]))
    assert code == 0 and f"model      {manifest['model_version']}" in text
    assert "signature  ok" in text


def test_the_sbom_validates_and_lists_what_pip_lists_in_the_image(
    attested: dict[str, Any],
    engine: Any,  # noqa: F811
) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    text = (attested["run"] / "attestations" / "sbom.cdx.json").read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    bom = json.loads(text)
    libraries = [c for c in bom["components"] if c["type"] == "library"]
    listed = {(pip_name(c["name"]), c["version"]) for c in libraries}
    assert listed == installed_packages(engine, attested["image"])
    wheels = {p["name"]: p["sha256"] for p in attested["build"]["packages"] if p["sha256"]}
    for component in libraries:
        if component["name"] in wheels:
            assert component["hashes"] == [{"alg": "SHA-256", "content": wheels[component["name"]]}]
    (model,) = [c for c in bom["components"] if c["type"] == "machine-learning-model"]
    manifest = json.loads((attested["run"] / "model" / "manifest.json").read_text())
    assert model["hashes"][0]["content"] == manifest["model_digest"].removeprefix("sha256:")
    metrics = model["modelCard"]["quantitativeAnalysis"]["performanceMetrics"]
    assert any(m["type"] == "accuracy" and "confidenceInterval" in m for m in metrics)


def test_verify_refuses_a_wrong_key_moved_or_missing_attestations(
    attested: dict[str, Any],
) -> None:
    code, out = _verify(attested["image"], "--public-key", str(attested["other"]))
    assert code == 7 and "signed by another key" in out
    # The real envelopes, attached to another image: their subject is not that image.
    moved = _small_image(attested, "moved")
    for name, payload in _envelopes(attested).items():
        kind = KINDS[name]
        attested["registry"].attach(
            attested["repository"], moved, kind.artifact_type, payload, ENVELOPE_MEDIA_TYPE
        )
    code, out = _verify(f"{IMAGE}@{moved.digest}", "--public-key", str(attested["public"]))
    assert code == 7 and "it was made for another image" in out
    missing = _small_image(attested, "missing")
    code, out = _verify(f"{IMAGE}@{missing.digest}", "--public-key", str(attested["public"]))
    assert code == 7 and "has no sbom attestation attached" in out
    # Arguments of the wrong kind are usage errors (exit 2), like in every subcommand.
    code, out = _verify(f"{IMAGE}:latest", "--public-key", str(attested["public"]))
    assert code == 2 and "not pinned by digest; expected REPOSITORY@sha256:" in out
    code, out = _verify(attested["image"], "--public-key", str(attested["folder"] / "nope.pem"))
    assert code == 2 and "nope.pem is not there; expected a PEM key file" in out


def test_verify_refuses_a_tampered_attestation(attested: dict[str, Any]) -> None:
    registry, repository = attested["registry"], attested["repository"]
    digest = attested["build"]["digest"]
    tag = fallback_tag(digest)
    original = registry.manifest(repository, tag)
    assert original is not None
    subject = registry.resolve(repository, digest)
    assert subject is not None
    envelope = json.loads(_envelopes(attested)["provenance"])
    payload = base64.b64decode(envelope["payload"])
    version = json.loads(payload)["predicate"]["buildDefinition"]["internalParameters"]
    forged = payload.replace(version["model"]["version"].encode(), b"000000000000")
    envelope["payload"] = base64.b64encode(forged).decode()  # the signature is kept
    tampered, _ = registry.attach(
        repository,
        subject,
        KINDS["provenance"].artifact_type,
        json.dumps(envelope).encode(),
        ENVELOPE_MEDIA_TYPE,
    )
    # Someone with push access replaces the referrers list with the forged provenance.
    sbom = next(d for d in original.children() if d.artifact_type == KINDS["sbom"].artifact_type)
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [sbom.to_json(), tampered.to_json()],
    }
    registry.push_manifest(repository, json.dumps(index).encode(), OCI_INDEX, tag=tag)
    try:
        code, out = _verify(attested["image"], "--public-key", str(attested["public"]))
        assert code == 7 and "the signature does not match the content" in out, out
        code, out = _verify(attested["image"])  # no key: the forged statement is caught
        assert code == 7 and "the SBOM describes model" in out, out
    finally:
        registry.push_manifest(repository, original.raw, OCI_INDEX, tag=tag)
    assert _verify(attested["image"], "--public-key", str(attested["public"]))[0] == 0


def _with_verify(spec: Path, public: Path, environment: str | None = None) -> None:
    """Point the spec's promotion.verify (or one environment's) at `public`."""
    text = spec.read_text()
    relative = os.path.relpath(public, spec.parent)
    if environment is None:
        text = text.replace(
            "promotion:\n", f"promotion:\n  verify: {{public_key: {relative}}}\n", 1
        )
    else:
        marker = f"    - name: {environment}\n"
        text = text.replace(marker, f"{marker}      verify: {{public_key: {relative}}}\n", 1)
    spec.write_text(text)


def _refs(gitops: Path) -> str:
    return git("for-each-ref", cwd=gitops) + git("status", "--porcelain", cwd=gitops)


def test_promotion_verifies_before_writing_anything(
    attested: dict[str, Any], tmp_path: Path
) -> None:
    folder = tmp_path / "p"
    spec = _project(folder)
    shutil.copytree(attested["folder"] / "iris" / "keys", folder / "iris" / "keys")
    run = tmp_path / "run"
    shutil.copytree(attested["run"], run)
    (run / "run.json").write_text(json.dumps({"spec": str(spec)}))
    gitops = folder / "gitops"
    before = _refs(gitops)

    _with_verify(spec, folder / "iris" / "keys" / "other.pub.pem")
    refused = run_cli("promote", str(run), "-e", "staging")
    assert refused.code == 7 and "signed by another key" in refused.err, refused.err
    assert "refusing to promote" in refused.err
    assert _refs(gitops) == before and not (run / "promotion.json").exists()

    spec.write_text(spec.read_text().replace("other.pub.pem", "signing.pub.pem"))
    missing = _small_image(attested, "promote-missing")
    refused = run_cli("promote", str(run), "-e", "staging", "--image", f"{IMAGE}@{missing.digest}")
    assert refused.code == 7 and "has no sbom attestation" in refused.err
    assert _refs(gitops) == before and not (run / "promotion.json").exists()

    # Another model's run, promoted with this image: the provenance names another version.
    other = tmp_path / "other"
    other_spec = _project(other, n_estimators=51)
    assert run_cli("run", str(other_spec), "--until", "gate", "--out", str(other / "run")).code == 0
    shutil.copytree(folder / "iris" / "keys", other / "iris" / "keys")
    _with_verify(other_spec, other / "iris" / "keys" / "signing.pub.pem")
    (other / "run" / "run.json").write_text(json.dumps({"spec": str(other_spec)}))
    other_before = _refs(other / "gitops")
    refused = run_cli("promote", str(other / "run"), "-e", "staging", "--image", attested["image"])
    assert refused.code == 7 and "does not hold the model being promoted" in refused.err
    assert _refs(other / "gitops") == other_before

    promoted = run_cli("promote", str(run), "-e", "staging")
    assert promoted.code == 0, promoted.out + promoted.err
    assert f"verified {attested['image']}" in promoted.out
    assert "**Verified release chain**" in promoted.out
    assert f"key `{attested['build']['attestations']['key']}`" in promoted.out
    for name in KINDS:
        assert attested["build"]["attestations"][name]["reference"] in promoted.out
    record = json.loads((run / "promotion.json").read_text())
    assert record["verified"]["model_version"] == record["version"]


def test_a_dispatch_refuses_what_staging_runs_when_it_does_not_verify(
    attested: dict[str, Any], tmp_path: Path
) -> None:
    folder = tmp_path / "p"
    spec = _project(folder)
    shutil.copytree(attested["folder"] / "iris" / "keys", folder / "iris" / "keys")
    _with_verify(spec, folder / "iris" / "keys" / "signing.pub.pem", environment="production")
    gitops = folder / "gitops"
    # Staging runs an image someone pushed without attestations.
    unattested = _small_image(attested, "dispatch-missing")
    record = {
        "apiVersion": "mlops/v1",
        "kind": "ModelRelease",
        "model": "iris-classifier",
        "environment": "staging",
        "version": "0123456789ab",
        "image": f"{IMAGE}@{unattested.digest}",
        "gate": {"passed": True, "checks": 1, "failed": 0},
    }
    (gitops / "apps/iris/staging/model-release.yaml").write_text(yaml.safe_dump(record))
    git("add", "-A", cwd=gitops)
    git("commit", "--quiet", "-m", "staging runs an unattested image", cwd=gitops)
    before = _refs(gitops)
    result = run_cli(
        "run",
        str(spec),
        "--event",
        "workflow_dispatch",
        "-e",
        "production",
        "--out",
        str(tmp_path / "d"),
    )
    assert result.code == 7, result.out + result.err
    assert "refusing to promote" in result.err and "has no sbom attestation" in result.err
    assert _refs(gitops) == before and not (tmp_path / "d" / "promotion.json").exists()


def test_the_push_flow_reuses_the_attested_image_and_shows_the_chain(
    attested: dict[str, Any], tmp_path: Path
) -> None:
    from tests.integration.test_promote import SOURCE, gitops_files

    folder = tmp_path / "p"
    spec = _project(folder)
    shutil.copytree(attested["folder"] / "iris" / "keys", folder / "iris" / "keys")
    spec.write_text(spec.read_text().replace("repository: ../gitops ", f"repository: {REPO} "))
    _with_verify(spec, folder / "iris" / "keys" / "signing.pub.pem")
    with FakeGitHub() as github:
        github.create_repo(REPO, gitops_files())
        env = {
            **github.env(SOURCE),
            "GITHUB_EVENT_NAME": "push",
            "PATH": os.environ["PATH"],
            "HOME": os.environ.get("HOME", "/root"),
            "MLOPS_SIGNING_KEY": attested["key"].read_text(),
        }
        result = run_cli(
            "run", str(spec), "--out", str(tmp_path / "run"), "--base-image", BASE, env=env
        )
        assert result.code == 0, result.out + result.err
        build = json.loads((tmp_path / "run" / "build.json").read_text())
        pull = github.pulls[REPO][1]
    # The same model as the attested image: reused, and its signed attestations kept.
    assert (build["reused"], build["digest"]) == (True, attested["build"]["digest"])
    assert build["attestations"]["reused"] is True
    assert "**Verified release chain**" in pull.body
    assert attested["build"]["attestations"]["key"] in pull.body

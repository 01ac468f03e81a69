"""Attestation kinds, statements and DSSE signatures, without a registry."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from gitops_mlops.attestations import KINDS, STATEMENT_TYPE, signing, statement
from gitops_mlops.attestations.facts import Facts, Package, Source, build_facts, source_from
from gitops_mlops.attestations.sbom import validate
from gitops_mlops.errors import MlopsError, VerificationFailed

DIGEST = "sha256:" + "1" * 64
MODEL = "sha256:" + "2" * 64
METRICS = {
    "metrics": {
        "accuracy": {"value": 0.93, "ci_low": 0.88, "ci_high": 0.97},
        "latency_p95_ms": {"value": 4.2, "ci_low": None, "ci_high": None},
    },
    "slices": {"long-petals": {"accuracy": {"value": 0.8, "ci_low": 0.6, "ci_high": 1.0}}},
}


def facts(**changes: Any) -> Facts:
    base = Facts(
        image="localhost:5000/acme/iris",
        digest=DIGEST,
        model_name="iris",
        model_version="222222222222",
        model_file="model.skops",
        model_digest=MODEL,
        task="classification",
        estimator="sklearn.ensemble.RandomForestClassifier",
        spec_path="models/iris/mlops.yaml",
        spec_digest="sha256:" + "3" * 64,
        data_digests={"data": "sha256:" + "4" * 64},
        metrics=METRICS,
        gate={"passed": True, "checks": 4, "failed": 0},
        base_image="127.0.0.1:5000/mlops/python:3.11-bookworm",
        base_digest="sha256:" + "5" * 64,
        python="3.11",
        packages=[
            Package("numpy", "2.1.0", "numpy-2.1.0-cp311-manylinux.whl", "6" * 64),
            Package("pip", "23.0.1", None, None),
        ],
        source=Source(
            "https://github.com/acme/models",
            "c" * 40,
            "refs/heads/main",
            "push",
            "acme/models/.github/workflows/model.yml@refs/heads/main",
            "https://github.com/acme/models/.github/workflows/model.yml@refs/heads/main",
            "https://github.com/acme/models/actions/runs/7",
        ),
        started="2026-01-01T00:00:00Z",
        finished="2026-01-01T00:01:00Z",
    )
    return base if not changes else Facts(**{**base.__dict__, **changes})


def pem(key: Any) -> bytes:
    return bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def public_file(tmp_path: Path, key: Any, name: str = "key.pub.pem") -> Path:
    path = tmp_path / name
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


@pytest.mark.parametrize("name", list(KINDS))
def test_every_kind_makes_a_statement_about_the_image(name: str) -> None:
    kind = KINDS[name]
    predicate = kind.make(facts())
    made = statement(kind, facts(), predicate)
    assert made["_type"] == STATEMENT_TYPE and made["predicateType"] == kind.predicate_type
    assert made["subject"][0] == {
        "name": "localhost:5000/acme/iris",
        "digest": {"sha256": "1" * 64},
    }
    assert ({"name": "model.skops", "digest": {"sha256": "2" * 64}} in made["subject"]) is (
        kind.model_subject
    )
    assert kind.artifact_type and kind.document and kind.envelope.endswith(".dsse.json")
    summary = kind.summarize(predicate)
    assert summary  # verification reports something of every kind
    json.dumps(made)  # plain JSON all the way down


def test_the_kinds_are_the_sbom_and_the_provenance() -> None:
    assert list(KINDS) == ["sbom", "provenance"]
    assert len({k.artifact_type for k in KINDS.values()}) == len(KINDS)


def test_the_sbom_is_cyclonedx_1_6_with_the_model_card() -> None:
    bom = KINDS["sbom"].make(facts())
    validate(bom)  # the library's strict validator; MlopsError otherwise
    assert bom["specVersion"] == "1.6"
    assert bom["metadata"]["component"]["purl"].startswith("pkg:oci/iris@sha256:1111")
    by_type: dict[str, list[dict[str, Any]]] = {}
    for component in bom["components"]:
        by_type.setdefault(component["type"], []).append(component)
    numpy, pip = sorted(by_type["library"], key=lambda c: c["name"])
    assert numpy["purl"] == "pkg:pypi/numpy@2.1.0"
    assert numpy["hashes"] == [{"alg": "SHA-256", "content": "6" * 64}]
    assert "hashes" not in pip
    assert pip["properties"] == [{"name": "gitops-mlops:origin", "value": "the base image"}]
    (model,) = by_type["machine-learning-model"]
    assert model["hashes"] == [{"alg": "SHA-256", "content": "2" * 64}]
    card = model["modelCard"]
    assert card["modelParameters"]["task"] == "classification"
    assert card["modelParameters"]["modelArchitecture"].endswith("RandomForestClassifier")
    measured = card["quantitativeAnalysis"]["performanceMetrics"]
    assert {
        "type": "accuracy",
        "value": "0.93",
        "confidenceInterval": {"lowerBound": "0.88", "upperBound": "0.97"},
    } in measured
    assert {"type": "latency_p95_ms", "value": "4.2"} in measured
    assert any(m.get("slice") == "long-petals" for m in measured)
    (base,) = [c for c in by_type["container"] if c["bom-ref"] == "base-image"]
    assert base["hashes"][0]["content"] == "5" * 64
    assert KINDS["sbom"].summarize(bom) == {
        "packages": 2,
        "model": {"name": "iris", "version": "222222222222"},
    }
    broken = {**bom, "components": [{**bom["components"][0], "type": "banana"}]}
    with pytest.raises(MlopsError, match=r"not valid CycloneDX 1\.6"):
        validate(broken)


def test_the_provenance_is_slsa_v1() -> None:
    predicate = KINDS["provenance"].make(facts(byproducts={"sbom.cdx.json": "sha256:" + "9" * 64}))
    definition = predicate["buildDefinition"]
    assert definition["externalParameters"]["spec"] == {
        "path": "models/iris/mlops.yaml",
        "digest": {"sha256": "3" * 64},
    }
    assert definition["externalParameters"]["source"]["commit"] == "c" * 40
    resolved = definition["resolvedDependencies"]
    assert {"uri": "git+https://github.com/acme/models", "digest": {"gitCommit": "c" * 40}} in (
        resolved
    )
    assert {"name": "data", "digest": {"sha256": "4" * 64}} in resolved
    assert any(d.get("uri") == "pkg:pypi/numpy@2.1.0" for d in resolved)
    assert not any("pip" in str(d.get("uri")) for d in resolved)  # no wheel, no hash: left out
    details = predicate["runDetails"]
    assert details["builder"]["id"].endswith("model.yml@refs/heads/main")
    assert details["metadata"]["invocationId"].endswith("/actions/runs/7")
    assert details["byproducts"] == [{"name": "sbom.cdx.json", "digest": {"sha256": "9" * 64}}]
    summary = KINDS["provenance"].summarize(predicate)
    assert summary["model_version"] == "222222222222"
    assert summary["data"] == {"data": {"sha256": "4" * 64}}
    assert summary["gate"] == {"passed": True, "checks": 4, "failed": 0}


def test_the_builder_is_the_workflow_in_actions_and_local_elsewhere() -> None:
    assert source_from({}, None).builder_id == "local"
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": "acme/models",
        "GITHUB_WORKFLOW_REF": "acme/models/.github/workflows/m.yml@refs/heads/main",
        "GITHUB_RUN_ID": "9",
        "GITHUB_RUN_ATTEMPT": "2",
        "GITHUB_SHA": "d" * 40,
    }
    source = source_from(env, None)
    assert (
        source.builder_id
        == "https://github.com/acme/models/.github/workflows/m.yml@refs/heads/main"
    )
    assert source.invocation_id == "https://github.com/acme/models/actions/runs/9/attempts/2"
    assert source.commit == "d" * 40
    assert (
        source_from({**env, "MLOPS_BUILDER_ID": "https://x/y"}, "e" * 40).builder_id
        == "https://x/y"
    )
    made = build_facts(
        model_name="iris",
        spec_path="mlops.yaml",
        manifest={"model_version": "v", "data_digest": "sha256:" + "4" * 64},
        metrics={},
        verdict={},
        build={"image": "r/i", "digest": DIGEST},
        env={},
        started="s",
        finished="f",
    )
    assert made.gate is None and made.packages == []


@pytest.mark.parametrize(
    "private", [ed25519.Ed25519PrivateKey.generate(), ec.generate_private_key(ec.SECP256R1())]
)
def test_envelopes_verify_with_their_key_only(private: Any, tmp_path: Path) -> None:
    key = signing.load_private(pem(private), "test")
    made = statement(KINDS["provenance"], facts(), KINDS["provenance"].make(facts()))
    envelope = key.sign(made)
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    public = signing.load_public(public_file(tmp_path, private))
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert (
        public.fingerprint == key.public.fingerprint == "sha256:" + hashlib.sha256(der).hexdigest()
    )
    assert json.loads(public.verify(envelope)) == made
    assert signing.signers(envelope) == [public.fingerprint]
    # Another key: refused, saying whose signature it is.
    other = signing.load_public(public_file(tmp_path, ed25519.Ed25519PrivateKey.generate(), "o"))
    with pytest.raises(VerificationFailed, match="signed by another key"):
        other.verify(envelope)
    # The payload changed after signing (same signature): refused.
    tampered = dict(envelope)
    text = base64.b64decode(envelope["payload"]).replace(b"222222222222", b"333333333333")
    tampered["payload"] = base64.b64encode(text).decode()
    with pytest.raises(VerificationFailed, match="does not match"):
        public.verify(tampered)
    # Unsigned envelopes are readable but never pass a key check.
    unsigned = signing.envelope(made, None)
    assert unsigned["signatures"] == [] and json.loads(signing.payload(unsigned)) == made
    with pytest.raises(VerificationFailed, match="not signed"):
        public.verify(unsigned)
    with pytest.raises(VerificationFailed, match="not a DSSE envelope"):
        public.verify({"payload": "x"})


def test_keys_that_cannot_sign_are_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(MlopsError, match="RSA"):
        signing.load_private(pem(rsa.generate_private_key(65537, 2048)), "k")
    with pytest.raises(MlopsError, match="not a PEM private key"):
        signing.load_private(b"hello", "k")
    encrypted = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    with pytest.raises(MlopsError, match="encrypted"):
        signing.load_private(encrypted, "k")
    with pytest.raises(MlopsError, match="cannot read"):
        signing.load_public(tmp_path / "missing.pem")
    (tmp_path / "junk.pem").write_text("junk")
    with pytest.raises(MlopsError, match="not a PEM public key"):
        signing.load_public(tmp_path / "junk.pem")
    (tmp_path / "link.pem").symlink_to(tmp_path / "junk.pem")
    with pytest.raises(MlopsError, match="symlink"):
        signing.load_public(tmp_path / "link.pem")
    text = pem(ed25519.Ed25519PrivateKey.generate()).decode()
    from_env = signing.signing_key(None, {"MLOPS_SIGNING_KEY": text})
    assert from_env is not None and from_env.public.kind == "ed25519"
    assert signing.signing_key(None, {}) is None
    with pytest.raises(MlopsError) as caught:
        signing.signing_key(None, {"MLOPS_SIGNING_KEY": text[:-40]})
    assert text[40:80] not in str(caught.value)  # the key never shows in a message

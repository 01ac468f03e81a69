"""Attach attestations to an image digest, find them again, and verify the chain.

Verification trusts nothing the registry says: the attestation manifests and envelopes are
read by digest (hashed), each envelope's signature is checked against the given public key,
the statement's subject must be the image digest asked about, and the kinds must agree with
each other (and with the release, when a model version is expected).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops_mlops.attestations import (
    ENVELOPE_MEDIA_TYPE,
    KIND_ANNOTATION,
    KINDS,
    PREDICATE_ANNOTATION,
    STATEMENT_TYPE,
    Kind,
    signing,
    statement,
)
from gitops_mlops.attestations.facts import Facts
from gitops_mlops.attestations.signing import PublicKey, SignatureInvalid, SigningKey
from gitops_mlops.errors import VerificationFailed
from gitops_mlops.integrations.registry import (
    Descriptor,
    Reference,
    Registry,
    RegistryError,
)

ENVELOPE_LIMIT = 16 * 1024 * 1024


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _canonical(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, indent=2, sort_keys=True).encode() + b"\n"


def publish(
    registry: Registry,
    image: Reference,
    subject: Descriptor,
    facts: Facts,
    key: SigningKey | None,
    folder: Path,
) -> dict[str, Any]:
    """Make every kind, write it to `folder`, attach it to `subject`; the build record's
    `attestations` entry."""
    folder.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "signed": key is not None,
        "key": key.public.fingerprint if key else None,
    }
    for kind in KINDS.values():
        predicate = kind.make(facts)
        document = _canonical(predicate)
        (folder / kind.document).write_bytes(document)
        envelope = signing.envelope(statement(kind, facts, predicate), key)
        payload = _canonical(envelope)
        (folder / kind.envelope).write_bytes(payload)
        artifact, tag = registry.attach(
            image.repository,
            subject,
            kind.artifact_type,
            payload,
            ENVELOPE_MEDIA_TYPE,
            {PREDICATE_ANNOTATION: kind.predicate_type, KIND_ANNOTATION: kind.name},
        )
        record[kind.name] = {
            "reference": f"{image.name}@{artifact.digest}",
            "manifest": artifact.digest,
            "envelope": _sha256(payload),
            "document": _sha256(document),
            "file": str(folder / kind.envelope),
            "via": f"referrers tag {tag}" if tag else "referrers API",
        }
        # Later kinds (the provenance) name the earlier ones (the SBOM) as byproducts.
        facts = dataclasses.replace(
            facts, byproducts={**facts.byproducts, kind.document: _sha256(document)}
        )
    return record


@dataclass(frozen=True)
class Verified:
    """One attestation that checked out."""

    kind: str
    reference: str  # registry/repository@sha256:… of its artifact manifest
    signer: str | None  # the key fingerprint that signed it; None when unsigned, unchecked
    summary: Mapping[str, Any]
    signers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Chain:
    image: str
    digest: str
    key: str | None  # fingerprint of the key every signature was checked with
    attestations: Mapping[str, Verified] = field(default_factory=dict)
    requests: int = 0  # registry requests the verification took

    def to_json(self) -> dict[str, Any]:
        provenance = self.attestations["provenance"].summary
        sbom = self.attestations["sbom"].summary
        return {
            "image": f"{self.image}@{self.digest}",
            "verified": True,
            "signed": self.key is not None,
            "key": self.key,
            "source": provenance.get("source"),
            "commit": provenance.get("commit"),
            "spec": provenance.get("spec"),
            "model_version": provenance.get("model_version"),
            "model_digest": provenance.get("model_digest"),
            "data": provenance.get("data"),
            "gate": provenance.get("gate"),
            "builder": provenance.get("builder"),
            "packages": sbom.get("packages"),
            "attestations": {name: v.reference for name, v in self.attestations.items()},
            "registry_requests": self.requests,
        }


def verify(
    registry: Registry,
    image: Reference,
    public_key: PublicKey | None,
    expected_version: str | None = None,
) -> Chain:
    """Every kind attached to `image` (by digest), checked; VerificationFailed says why not."""
    if image.digest is None:
        raise VerificationFailed(f"{image} is not pinned by digest; give IMAGE@sha256:<hex>")
    before = registry.requests
    try:
        listed = registry.referrers(image.repository, image.digest)
        found = {
            name: _verified_kind(registry, image, kind, listed, public_key)
            for name, kind in KINDS.items()
        }
    except RegistryError as err:
        raise VerificationFailed(f"cannot read the attestations of {image}: {err}") from None
    chain = Chain(
        image.name,
        image.digest,
        public_key.fingerprint if public_key else None,
        found,
        registry.requests - before,
    )
    _agree(chain, expected_version)
    return chain


def _verified_kind(
    registry: Registry,
    image: Reference,
    kind: Kind,
    listed: list[Descriptor],
    public_key: PublicKey | None,
) -> Verified:
    candidates = [d for d in listed if d.artifact_type == kind.artifact_type]
    candidates = [d for d in candidates if d.annotations.get(KIND_ANNOTATION) in (None, kind.name)]
    if not candidates:
        raise VerificationFailed(
            f"{image} has no {kind.name} attestation attached; build and push it with "
            "`mlops build --push` (which attests the image)"
        )
    failures = []
    for descriptor in reversed(candidates):  # newest first
        try:
            return _check(registry, image, kind, descriptor, public_key)
        except VerificationFailed as err:
            failures.append(str(err))
    raise VerificationFailed(failures[0])


def _check(
    registry: Registry,
    image: Reference,
    kind: Kind,
    descriptor: Descriptor,
    public_key: PublicKey | None,
) -> Verified:
    where = f"{image.name}@{descriptor.digest}"
    manifest = registry.manifest(image.repository, descriptor.digest)
    if manifest is None:
        raise VerificationFailed(f"the {kind.name} attestation {where} is listed but missing")
    body = manifest.json()
    layers = [layer for layer in manifest.layers() if layer.media_type == ENVELOPE_MEDIA_TYPE]
    if len(layers) != 1:
        raise VerificationFailed(f"{where} holds no DSSE envelope")
    raw = registry.blob(image.repository, layers[0].digest, ENVELOPE_LIMIT)
    try:
        envelope = json.loads(raw)
    except ValueError:
        raise VerificationFailed(f"the {kind.name} envelope {where} is not JSON") from None
    if not isinstance(envelope, dict):
        raise VerificationFailed(f"the {kind.name} envelope {where} is not a JSON object")
    try:
        payload = public_key.verify(envelope) if public_key else signing.payload(envelope)
    except SignatureInvalid as err:
        raise VerificationFailed(f"the {kind.name} attestation {where}: {err}") from None
    parsed = _statement(payload, kind, where)
    subjects = {
        s.get("digest", {}).get("sha256")
        for s in parsed.get("subject") or []
        if isinstance(s, Mapping) and isinstance(s.get("digest"), Mapping)
    }
    wanted = str(image.digest).removeprefix("sha256:")
    if wanted not in subjects:
        named = ", ".join(f"sha256:{s}" for s in sorted(x for x in subjects if x)) or "nothing"
        raise VerificationFailed(
            f"the {kind.name} attestation {where} is about {named}, not {image.digest}: "
            "it was made for another image"
        )
    oci_subject = (body.get("subject") or {}).get("digest")
    if oci_subject not in (None, image.digest):
        raise VerificationFailed(f"{where} is attached to {oci_subject}, not {image.digest}")
    predicate = parsed.get("predicate")
    if not isinstance(predicate, Mapping):
        raise VerificationFailed(f"the {kind.name} attestation {where} has no predicate")
    return Verified(
        kind.name,
        where,
        public_key.fingerprint if public_key else None,
        kind.summarize(predicate),
        tuple(signing.signers(envelope)),
    )


def _statement(payload: bytes, kind: Kind, where: str) -> dict[str, Any]:
    try:
        parsed = json.loads(payload)
    except ValueError:
        raise VerificationFailed(f"the {kind.name} statement {where} is not JSON") from None
    if not isinstance(parsed, dict) or parsed.get("_type") != STATEMENT_TYPE:
        raise VerificationFailed(f"{where} is not an in-toto Statement v1")
    if parsed.get("predicateType") != kind.predicate_type:
        raise VerificationFailed(
            f"{where} states {parsed.get('predicateType')!r}, not {kind.predicate_type!r}"
        )
    return parsed


def _agree(chain: Chain, expected_version: str | None) -> None:
    provenance = chain.attestations["provenance"].summary
    sbom = chain.attestations["sbom"].summary
    version = provenance.get("model_version")
    if (sbom.get("model") or {}).get("version") != version:
        raise VerificationFailed(
            f"the SBOM describes model {sbom.get('model')}, the provenance model {version}"
        )
    if expected_version is not None and version != expected_version:
        raise VerificationFailed(
            f"{chain.image}@{chain.digest} was built from model version {version}, but the "
            f"release is {expected_version}: the image does not hold the model being promoted"
        )


def existing(registry: Registry, image: Reference, key: SigningKey | None) -> dict[str, Any] | None:
    """The build record entry for attestations already attached to `image` (a reused image),
    when every kind is there and (with a key) signed by it; None when they must be made."""
    try:
        chain = verify(registry, image, key.public if key else None)
    except VerificationFailed:
        return None
    record: dict[str, Any] = {"signed": key is not None, "key": chain.key, "reused": True}
    for name, verified in chain.attestations.items():
        record[name] = {
            "reference": verified.reference,
            "manifest": verified.reference.rpartition("@")[2],
        }
    if key is None and any(v.signers for v in chain.attestations.values()):
        record["signed"] = True
        record["key"] = next(iter(chain.attestations.values())).signers[0]
    return record

"""Attestations: signed statements about a serving image, attached to its digest.

Each kind is one entry of `KINDS`: its in-toto predicate type, the OCI artifact type it is
pushed as, the file it is kept in in the run directory, how its predicate is made from the
build's facts, and what verification reports of it. Every kind is an in-toto Statement v1
whose subject is the image digest, wrapped in a DSSE envelope (signed when there is a key).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gitops_mlops.attestations import provenance, sbom
from gitops_mlops.attestations.facts import Facts

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
ENVELOPE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
PREDICATE_ANNOTATION = "in-toto.io/predicate-type"
KIND_ANNOTATION = "io.gitops-mlops.attestation"


@dataclass(frozen=True)
class Kind:
    name: str
    predicate_type: str
    artifact_type: str  # the OCI artifactType referrers are filtered by
    document: str  # the predicate's file in the run directory's attestations/ folder
    make: Callable[[Facts], dict[str, Any]]  # the predicate
    summarize: Callable[[Mapping[str, Any]], dict[str, Any]]  # for `mlops verify`
    model_subject: bool  # whether the model file is a subject besides the image

    @property
    def envelope(self) -> str:
        """The envelope's file in the run directory's attestations/ folder."""
        return f"{self.name}.dsse.json"


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind(
            name="sbom",
            predicate_type=sbom.PREDICATE_TYPE,
            artifact_type=sbom.ARTIFACT_TYPE,
            document="sbom.cdx.json",
            make=sbom.document,
            summarize=sbom.summary,
            model_subject=False,
        ),
        Kind(
            name="provenance",
            predicate_type=provenance.PREDICATE_TYPE,
            artifact_type=provenance.ARTIFACT_TYPE,
            document="provenance.json",
            make=provenance.predicate,
            summarize=provenance.summary,
            model_subject=True,
        ),
    )
}


def statement(kind: Kind, facts: Facts, predicate: Mapping[str, Any]) -> dict[str, Any]:
    """The in-toto Statement v1 of one kind: subject the image digest (and the model file)."""
    subject = [{"name": facts.image, "digest": {"sha256": facts.digest.removeprefix("sha256:")}}]
    if kind.model_subject:
        subject.append(
            {
                "name": facts.model_file,
                "digest": {"sha256": facts.model_digest.removeprefix("sha256:")},
            }
        )
    return {
        "_type": STATEMENT_TYPE,
        "subject": subject,
        "predicateType": kind.predicate_type,
        "predicate": dict(predicate),
    }

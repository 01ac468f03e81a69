"""Build provenance: a SLSA Provenance v1 predicate for the serving image.

Build definition: the spec (path and digest), the source repository, ref and commit, the
event and the calling workflow; the model it packages; resolved dependencies: the source
commit, the base image digest, every wheel installed, the data digests. Run details: the
builder (the reusable workflow, `MLOPS_BUILDER_ID`, or `local`), the Actions run URL as
invocation id, and the build's start and finish times.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitops_mlops.attestations.facts import Facts

PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
ARTIFACT_TYPE = "application/vnd.in-toto+json"
BUILD_TYPE = "https://github.com/gitops-mlops/gitops-mlops/blob/v1/README.md#signed-attestations"


def _digest(value: str) -> dict[str, str]:
    algorithm, _, hexdigest = value.partition(":")
    return {algorithm: hexdigest}


def predicate(facts: Facts) -> dict[str, Any]:
    source = facts.source
    external: dict[str, Any] = {
        "spec": {"path": facts.spec_path, "digest": _digest(facts.spec_digest)},
        "source": {"repository": source.repository, "ref": source.ref, "commit": source.commit},
        "event": source.event,
    }
    if source.workflow_ref:
        external["workflow"] = {"ref": source.workflow_ref}
    dependencies: list[dict[str, Any]] = []
    if source.repository and source.commit:
        dependencies.append(
            {"uri": f"git+{source.repository}", "digest": {"gitCommit": source.commit}}
        )
    if facts.base_digest:
        dependencies.append(
            {
                "name": facts.base_image,
                "uri": f"oci://{facts.base_image.partition('@')[0]}",
                "digest": _digest(facts.base_digest),
            }
        )
    for package in facts.packages:
        if package.sha256:
            dependencies.append(
                {
                    "name": package.wheel,
                    "uri": f"pkg:pypi/{package.name.lower().replace('_', '-')}@{package.version}",
                    "digest": {"sha256": package.sha256},
                }
            )
    for name, digest in facts.data_digests.items():
        dependencies.append({"name": name, "digest": _digest(digest)})
    metadata: dict[str, Any] = {"startedOn": facts.started, "finishedOn": facts.finished}
    if source.invocation_id:
        metadata["invocationId"] = source.invocation_id
    return {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": external,
            "internalParameters": {
                "model": {
                    "name": facts.model_name,
                    "version": facts.model_version,
                    "digest": facts.model_digest,
                    "task": facts.task,
                    "estimator": facts.estimator,
                },
                "gate": dict(facts.gate) if facts.gate is not None else None,
                "baseImage": facts.base_image,
                "python": facts.python,
            },
            "resolvedDependencies": dependencies,
        },
        "runDetails": {
            "builder": {"id": source.builder_id},
            "metadata": metadata,
            "byproducts": [
                {"name": name, "digest": _digest(digest)}
                for name, digest in sorted(facts.byproducts.items())
            ],
        },
    }


def summary(statement_predicate: Mapping[str, Any]) -> dict[str, Any]:
    """What verification reports of a provenance: source, spec, model, data, gate, builder."""
    definition = statement_predicate.get("buildDefinition") or {}
    external = definition.get("externalParameters") or {}
    internal = definition.get("internalParameters") or {}
    model = internal.get("model") or {}
    data = [
        d
        for d in definition.get("resolvedDependencies") or []
        if isinstance(d, Mapping) and d.get("name") and not d.get("uri")
    ]
    return {
        "source": (external.get("source") or {}).get("repository"),
        "commit": (external.get("source") or {}).get("commit"),
        "spec": external.get("spec"),
        "model_version": model.get("version"),
        "model_digest": model.get("digest"),
        "data": {str(d["name"]): d.get("digest") for d in data},
        "gate": internal.get("gate"),
        "builder": ((statement_predicate.get("runDetails") or {}).get("builder") or {}).get("id"),
    }

"""The image's software bill of materials: CycloneDX 1.6, made with cyclonedx-python-lib.

It lists what is in the image: every Python package of its venv with version, purl and the
sha256 of the wheel it was installed from (packages the base image brought have no wheel and
say so), the base image by digest, and the model as a `machine-learning-model` component with
its sha256 and a model card (task, estimator, metrics with their confidence intervals).

The library has no model card type, so the card is added to the serialised document, which is
then checked as a whole with the library's strict CycloneDX 1.6 JSON Schema validator.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from gitops_mlops.attestations.facts import Facts
from gitops_mlops.errors import MlopsError

PREDICATE_TYPE = "https://cyclonedx.org/bom"
ARTIFACT_TYPE = "application/vnd.cyclonedx+json"
MODEL_REF = "model"
IMAGE_REF = "image"
BASE_REF = "base-image"
ORIGIN = "gitops-mlops:origin"


def _purl_oci(image: str, digest: str) -> Any:
    from packageurl import PackageURL

    name = image.rsplit("/", 1)[-1]
    return PackageURL("oci", None, name, digest, {"repository_url": image})


def _hash(hexdigest: str) -> Any:
    from cyclonedx.model import HashAlgorithm, HashType

    return HashType(alg=HashAlgorithm.SHA_256, content=hexdigest.removeprefix("sha256:"))


def document(facts: Facts) -> dict[str, Any]:
    """The SBOM as a JSON object, validated against the CycloneDX 1.6 schema."""
    from cyclonedx.model import Property
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot6
    from packageurl import PackageURL

    image = Component(
        type=ComponentType.CONTAINER,
        name=facts.image,
        version=facts.model_version,
        bom_ref=IMAGE_REF,
        purl=_purl_oci(facts.image, facts.digest),
        hashes=[_hash(facts.digest)],
    )
    base_name, _, base_tag = facts.base_image.partition("@")[0].rpartition(":")
    base = Component(
        type=ComponentType.CONTAINER,
        name=base_name if "/" in base_name or base_name else facts.base_image,
        version=base_tag or None,
        bom_ref=BASE_REF,
        purl=_purl_oci(base_name or facts.base_image, facts.base_digest)
        if facts.base_digest
        else None,
        hashes=[_hash(facts.base_digest)] if facts.base_digest else [],
        description=None if facts.base_digest else "the base image's registry digest is unknown",
    )
    model = Component(
        type=ComponentType.MACHINE_LEARNING_MODEL,
        name=facts.model_name,
        version=facts.model_version,
        bom_ref=MODEL_REF,
        hashes=[_hash(facts.model_digest)],
        properties=[Property(name="gitops-mlops:file", value=f"/model/{facts.model_file}")],
    )
    components = [base, model]
    for package in facts.packages:
        purl = PackageURL("pypi", None, package.name.lower().replace("_", "-"), package.version)
        origin = f"wheel {package.wheel}" if package.wheel else "the base image"
        components.append(
            Component(
                type=ComponentType.LIBRARY,
                name=package.name,
                version=package.version,
                bom_ref=str(purl),
                purl=purl,
                hashes=[_hash(package.sha256)] if package.sha256 else [],
                properties=[Property(name=ORIGIN, value=origin)],
            )
        )
    bom = Bom(
        components=components,
        metadata=BomMetaData(component=image, timestamp=_timestamp(facts.finished)),
        serial_number=uuid.uuid5(uuid.NAMESPACE_URL, f"{facts.image}@{facts.digest}"),
    )
    bom.register_dependency(image, components)
    data: dict[str, Any] = json.loads(JsonV1Dot6(bom).output_as_string())
    for component in data.get("components", []):
        if component.get("bom-ref") == MODEL_REF:
            component["modelCard"] = model_card(facts)
    validate(data)
    return data


def _timestamp(text: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def model_card(facts: Facts) -> dict[str, Any]:
    """CycloneDX's model card (model_card.py: the same fields as the pull request's card):
    task, estimator, and every metric with its interval."""
    from gitops_mlops import model_card
    from gitops_mlops.records.metrics import Metrics

    return model_card.cyclonedx(
        model_card.CardFacts(
            name=facts.model_name,
            version=facts.model_version,
            task=facts.task,
            estimator=facts.estimator or None,
            description="",
            limitations=(),
            metrics=Metrics.from_json(facts.metrics, "metrics.json"),
        )
    )


def validate(data: Mapping[str, Any]) -> None:
    """The library's strict CycloneDX 1.6 JSON Schema validation; MlopsError on a problem."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    problem = JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(data))
    if problem is not None:
        raise MlopsError(f"the SBOM is not valid CycloneDX 1.6: {str(problem)[:800]}")


def summary(bom: Mapping[str, Any]) -> dict[str, Any]:
    """What verification reports of an SBOM: package count, model, base image."""
    components = [c for c in bom.get("components") or [] if isinstance(c, Mapping)]
    libraries = [c for c in components if c.get("type") == "library"]
    model = next((c for c in components if c.get("type") == "machine-learning-model"), {})
    return {
        "packages": len(libraries),
        "model": {"name": model.get("name"), "version": model.get("version")},
    }

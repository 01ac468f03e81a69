"""The serving image's labels: only what is fixed for a model version.

The same model, pins and base give the same labels, so a rebuild gives the same image config
and a registry image can be recognised as this release. Measured numbers (metrics, latency,
build time) belong to the run's records and the attestations, never to labels; the one date,
`created`, is the source commit's time (the SOURCE_DATE_EPOCH convention), and is left out
when there is neither.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

MODEL_VERSION = "io.gitops-mlops.model.version"
MODEL_DIGEST = "io.gitops-mlops.model.digest"
SPEC_DIGEST = "io.gitops-mlops.spec.digest"
DATA_DIGEST = "io.gitops-mlops.data.digest"
REQUIREMENTS = "io.gitops-mlops.requirements"
OCI = "org.opencontainers.image."


def source_date(env: Mapping[str, str], commit_time: int | None) -> str | None:
    """SOURCE_DATE_EPOCH when set, else the commit's time, as RFC 3339; None without both."""
    epoch = env.get("SOURCE_DATE_EPOCH", "").strip()
    stamp = int(epoch) if epoch.isdigit() else commit_time
    if stamp is None:
        return None
    return datetime.fromtimestamp(stamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def requirements_label(pins: Sequence[str]) -> str:
    """The package pin set, in one order whatever order it was listed in."""
    return " ".join(sorted(pins, key=str.lower))


def image_labels(
    title: str,
    description: str,
    manifest: Mapping[str, Any],
    pins: Sequence[str],
    base_image: str,
    base_digest: str | None,
    source: str,
    created: str | None,
) -> dict[str, str]:
    labels = {
        OCI + "title": title,
        OCI + "description": description,
        OCI + "version": str(manifest["model_version"]),
        OCI + "revision": manifest.get("git_commit") or "",
        OCI + "source": source,
        OCI + "base.name": base_image,
        MODEL_VERSION: str(manifest["model_version"]),
        MODEL_DIGEST: str(manifest.get("model_digest") or ""),
        SPEC_DIGEST: str(manifest.get("spec_digest") or ""),
        DATA_DIGEST: str(manifest.get("data_digest") or ""),
        REQUIREMENTS: requirements_label(pins),
    }
    if base_digest is not None:
        labels[OCI + "base.digest"] = base_digest
    if created is not None:
        labels[OCI + "created"] = created
    return labels


def same_release(labels: Mapping[str, str], model_digest: str, pins: Sequence[str]) -> bool:
    """Whether an image's labels name this model file and this package pin set."""
    return bool(model_digest) and (
        labels.get(MODEL_DIGEST) == model_digest
        and labels.get(REQUIREMENTS) == requirements_label(pins)
    )

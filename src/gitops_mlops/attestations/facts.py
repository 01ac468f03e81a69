"""What the attestations state about one image: gathered once, in one frozen record.

Everything here comes from the run directory (model manifest, metrics, verdict), the build
record (image digest, base image, installed packages) and the CI environment (repository,
commit, event, workflow, run URL); the attestation kinds turn it into their documents.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

LOCAL_BUILDER = "local"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    wheel: str | None  # the wheel file installed, None for what the base image brought
    sha256: str | None


@dataclass(frozen=True)
class Source:
    repository: str | None  # https://github.com/owner/name, None outside a repository
    commit: str | None
    ref: str | None
    event: str  # push | workflow_dispatch | … | local
    workflow_ref: str | None  # owner/name/.github/workflows/x.yml@ref of the caller
    builder_id: str  # the reusable workflow (MLOPS_BUILDER_ID) or the calling workflow, or local
    invocation_id: str | None  # the Actions run URL


@dataclass(frozen=True)
class Facts:
    image: str  # registry/repository
    digest: str  # sha256:… of the image manifest
    model_name: str
    model_version: str
    model_file: str
    model_digest: str
    task: str
    estimator: str
    spec_path: str  # relative to the repository (or the spec's folder outside git)
    spec_digest: str
    data_digests: Mapping[str, str]  # name -> sha256:…
    metrics: Mapping[str, Any]  # metrics.json: {"metrics": {...}, "slices": {...}, …}
    gate: Mapping[str, Any] | None  # {"passed", "checks", "failed"}; None: not gated
    base_image: str
    base_digest: str | None
    python: str | None
    packages: Sequence[Package]
    source: Source
    started: str  # RFC 3339, UTC
    finished: str
    byproducts: Mapping[str, str] = field(default_factory=dict)  # name -> sha256:…


def packages_from(records: Sequence[Mapping[str, Any]]) -> list[Package]:
    return [
        Package(
            str(r["name"]),
            str(r["version"]),
            str(r["wheel"]) if r.get("wheel") else None,
            str(r["sha256"]) if r.get("sha256") else None,
        )
        for r in records
    ]


def source_from(env: Mapping[str, str], commit: str | None) -> Source:
    """The source and builder, as GitHub Actions describes them in its variables."""
    server = env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
    repository = env.get("GITHUB_REPOSITORY")
    run_id = env.get("GITHUB_RUN_ID")
    workflow_ref = env.get("GITHUB_WORKFLOW_REF") or None
    in_actions = env.get("GITHUB_ACTIONS") == "true"
    builder = env.get("MLOPS_BUILDER_ID") or (
        f"{server}/{workflow_ref}" if in_actions and workflow_ref else LOCAL_BUILDER
    )
    invocation = None
    if repository and run_id:
        attempt = env.get("GITHUB_RUN_ATTEMPT")
        invocation = f"{server}/{repository}/actions/runs/{run_id}" + (
            f"/attempts/{attempt}" if attempt else ""
        )
    return Source(
        repository=f"{server}/{repository}" if repository else None,
        commit=commit or env.get("GITHUB_SHA") or None,
        ref=env.get("GITHUB_REF") or None,
        event=env.get("GITHUB_EVENT_NAME") or "local",
        workflow_ref=workflow_ref,
        builder_id=builder,
        invocation_id=invocation,
    )


def gate_summary(verdict: Mapping[str, Any]) -> dict[str, Any] | None:
    if not verdict:
        return None
    rows = verdict.get("rows") or []
    return {
        "passed": bool(verdict.get("passed")),
        "checks": len(rows),
        "failed": sum(1 for r in rows if isinstance(r, Mapping) and not r.get("passed")),
    }


def build_facts(
    *,
    model_name: str,
    spec_path: str,
    manifest: Mapping[str, Any],
    metrics: Mapping[str, Any],
    verdict: Mapping[str, Any],
    build: Mapping[str, Any],
    env: Mapping[str, str],
    started: str,
    finished: str,
) -> Facts:
    """The facts of one build, from the run's records and the build record."""
    commit = manifest.get("git_commit")
    return Facts(
        image=str(build["image"]),
        digest=str(build["digest"]),
        model_name=model_name,
        model_version=str(manifest["model_version"]),
        model_file="model.skops",
        model_digest=str(manifest.get("model_digest") or ""),
        task=str(manifest.get("task") or ""),
        estimator=str(manifest.get("estimator") or manifest.get("trainer") or ""),
        spec_path=spec_path,
        spec_digest=str(manifest.get("spec_digest") or ""),
        data_digests={"data": str(manifest["data_digest"])} if manifest.get("data_digest") else {},
        metrics=metrics,
        gate=gate_summary(verdict),
        base_image=str(build.get("base_image") or ""),
        base_digest=build.get("base_digest") or None,
        python=build.get("python") or None,
        packages=packages_from(build.get("packages") or []),
        source=source_from(env, commit if isinstance(commit, str) else None),
        started=started,
        finished=finished,
    )

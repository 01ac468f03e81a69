"""The release record: what runs in an environment, kept in the GitOps repository.

Promotion writes one per environment (e.g. `apps/iris/staging/model-release.yaml`); the gate
reads the champion's; its git history is the audit trail. See docs/architecture.md.

Extending it: add a field with a default to `ReleaseRecord`, write it in `to_mapping` and
read it in `from_mapping` (tests/unit/test_records.py checks that every field round-trips).

Unknown top-level keys of a record read from the GitOps repository (written by a newer
version, or added by hand) are kept in `extra` and written back after the known ones, so a
read-modify-write never drops them. Unknown keys inside `gate:` and `source:` are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import yaml

from gitops_mlops import guarded_yaml
from gitops_mlops.errors import MlopsError
from gitops_mlops.records.fields import Fields
from gitops_mlops.records.metrics import (
    MetricTable,
    slices_from_json,
    table_from_json,
    table_to_json,
)

API_VERSION = "mlops/v1"
KIND = "ModelRelease"
WHAT = "release record"
HEADER = (
    "# Written by gitops-mlops: what runs in this environment. The gate reads its champion\n"
    "# from here, and this file's git history is the audit trail. Do not edit by hand.\n"
)


@dataclass(frozen=True)
class GateSummary:
    passed: bool | None = None
    checks: int = 0
    failed: int = 0
    forced: bool = False
    reason: str | None = None  # why --force was used

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "checks": self.checks,
            "failed": self.failed,
            "forced": self.forced,
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, fields: Fields | None) -> GateSummary:
        if fields is None:
            return cls()
        return cls(
            fields.opt_flag("passed"),
            fields.integer("checks"),
            fields.integer("failed"),
            fields.flag("forced"),
            fields.opt_text("reason"),
        )


@dataclass(frozen=True)
class Source:
    repository: str | None = None
    commit: str | None = None
    run_url: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"repository": self.repository, "commit": self.commit, "run_url": self.run_url}

    @classmethod
    def from_json(cls, fields: Fields | None) -> Source:
        if fields is None:
            return cls()
        return cls(
            fields.opt_text("repository"),
            fields.opt_text("commit", scalar=True),
            fields.opt_text("run_url"),
        )


@dataclass(frozen=True)
class Hold:
    """While a record holds one, promotion into its environment is refused (exit 6) unless
    forced; `mlops release-hold` opens the pull request that removes it."""

    reason: str = ""
    rollback_of: str | None = None  # the version rolled back from, when a rollback set it

    def to_json(self) -> dict[str, Any]:
        return {"reason": self.reason, "rollback_of": self.rollback_of}

    @classmethod
    def from_json(cls, fields: Fields | None) -> Hold | None:
        if fields is None:
            return None
        return cls(fields.text("reason", scalar=True), fields.opt_text("rollback_of", scalar=True))


@dataclass(frozen=True)
class ReleaseRecord:
    model: str = ""
    environment: str = ""
    version: str = ""
    image: str = ""  # REPOSITORY@sha256:…
    model_digest: str | None = None
    data_digest: str | None = None
    spec_digest: str | None = None
    metrics: MetricTable = field(default_factory=dict)
    slices: Mapping[str, MetricTable] = field(default_factory=dict)
    gate: GateSummary = field(default_factory=GateSummary)
    source: Source = field(default_factory=Source)
    # A rollback (mlops rollback): the version it replaced, why, and the hold it sets.
    rollback_of: str | None = None
    reason: str | None = None
    hold: Hold | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # unknown keys, kept as read

    def to_mapping(self) -> dict[str, Any]:
        known = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "model": self.model,
            "environment": self.environment,
            "version": self.version,
            "image": self.image,
            "model_digest": self.model_digest,
            "data_digest": self.data_digest,
            "spec_digest": self.spec_digest,
            "metrics": table_to_json(self.metrics),
            "slices": {name: table_to_json(table) for name, table in self.slices.items()},
            "gate": self.gate.to_json(),
            "source": self.source.to_json(),
        }
        # Written only when set: an ordinary release's record stays as it always was.
        rollback = {
            "rollback_of": self.rollback_of,
            "reason": self.reason,
            "hold": self.hold.to_json() if self.hold else None,
        }
        known |= {k: v for k, v in rollback.items() if v is not None}
        return known | {k: v for k, v in self.extra.items() if k not in _KNOWN}

    def to_yaml(self) -> str:
        """The record's text: deterministic (no timestamps), so reruns change nothing."""
        body = yaml.safe_dump(self.to_mapping(), sort_keys=False, allow_unicode=True, width=100)
        return HEADER + body

    @classmethod
    def from_mapping(cls, raw: object, source: str) -> ReleaseRecord:
        fields = Fields(raw, source, WHAT)
        if fields.raw.get("kind") != KIND:
            raise MlopsError(f"{source}: not a release record (expected `kind: {KIND}`)")
        return cls(
            model=fields.text("model", scalar=True),
            environment=fields.text("environment", scalar=True),
            version=fields.text("version", scalar=True),
            image=fields.text("image"),
            model_digest=fields.opt_text("model_digest"),
            data_digest=fields.opt_text("data_digest"),
            spec_digest=fields.opt_text("spec_digest"),
            metrics=table_from_json(fields, "metrics"),
            slices=slices_from_json(fields, "slices"),
            gate=GateSummary.from_json(fields.obj("gate")),
            source=Source.from_json(fields.obj("source")),
            rollback_of=fields.opt_text("rollback_of", scalar=True),
            reason=fields.opt_text("reason"),
            hold=Hold.from_json(fields.obj("hold")),
            extra=MappingProxyType(fields.unknown(_KNOWN)),
        )

    @classmethod
    def from_yaml(cls, text: str, source: str) -> ReleaseRecord:
        return cls.from_mapping(parse_yaml(text, source), source)


_KNOWN = frozenset(ReleaseRecord(rollback_of="x", reason="x", hold=Hold("x")).to_mapping())


def parse_yaml(text: str, source: str) -> Any:
    """The YAML of a release record, through the guarded loader (alias bombs, depth, size)."""
    try:
        return guarded_yaml.load(text)
    except guarded_yaml.YamlError as err:
        raise MlopsError(f"{err.located(source)} (reading a release record)") from None

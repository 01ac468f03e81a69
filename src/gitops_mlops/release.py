"""Release records: what runs in an environment, kept in the GitOps repository.

The gate's champion is the record of the environment named by `gate.champion`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gitops_mlops import gitops_repo, guarded_yaml
from gitops_mlops.errors import MlopsError
from gitops_mlops.gitops_repo import GitHubSettings
from gitops_mlops.spec.model import Spec

KIND = "ModelRelease"
MetricTable = Mapping[str, Mapping[str, float | None]]


@dataclass(frozen=True)
class Champion:
    environment: str
    version: str
    metrics: MetricTable
    slices: Mapping[str, MetricTable]
    source: str  # where the record was read, for reports


def metric_value(table: Mapping[str, Any] | None, name: str) -> float | None:
    """A metric's value in a metrics table ({name: {"value": ...}} or {name: number})."""
    entry = (table or {}).get(name)
    value = entry.get("value") if isinstance(entry, Mapping) else entry
    return float(value) if isinstance(value, int | float) else None


def read_record(path: Path) -> Champion:
    try:
        with path.open("rb") as file:  # never more than the loader accepts
            raw = file.read(guarded_yaml.MAX_BYTES + 1)
        if len(raw) > guarded_yaml.MAX_BYTES:
            raise guarded_yaml.YamlError(
                f"the file is over {guarded_yaml.MAX_BYTES} bytes; a release record is smaller"
            )
        text = guarded_yaml.decode(raw)
    except FileNotFoundError:
        raise MlopsError(f"{path}: release record not found") from None
    except OSError as err:
        raise MlopsError(f"{path}: cannot read the release record: {err.strerror}") from None
    except guarded_yaml.YamlError as err:
        raise MlopsError(f"{err.located(str(path))} (reading a release record)") from None
    return parse_record(parse_record_text(text, str(path)), str(path))


def parse_record(raw: Any, source: str) -> Champion:
    if not isinstance(raw, dict) or raw.get("kind") != KIND:
        raise MlopsError(f"{source}: not a release record (expected `kind: {KIND}`)")
    metrics = raw.get("metrics") or {}
    slices = raw.get("slices") or {}
    if not isinstance(metrics, dict) or not isinstance(slices, dict):
        raise MlopsError(f"{source}: release record metrics and slices must be mappings")
    return Champion(
        environment=str(raw.get("environment", "")),
        version=str(raw.get("version", "")),
        metrics=metrics,
        slices=slices,
        source=source,
    )


HEADER = (
    "# Written by gitops-mlops: what runs in this environment. The gate reads its champion\n"
    "# from here, and this file's git history is the audit trail. Do not edit by hand.\n"
)


def render_record(fields: Mapping[str, Any]) -> str:
    """The release record's text: deterministic (no timestamps), so reruns change nothing."""
    body = {"apiVersion": "mlops/v1", "kind": KIND, **fields}
    return HEADER + yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=100)


def champion(spec: Spec, github: GitHubSettings) -> Champion | None:
    """The release record of `gate.champion`, read from the GitOps repository's base branch."""
    if spec.gate.champion is None or spec.promotion is None:
        return None
    environment = next(e for e in spec.promotion.environments if e.name == spec.gate.champion)
    text = gitops_repo.read_base_file(spec, github, environment.release_record)
    if text is None:
        return None
    record = parse_record_text(text, environment.release_record)
    return parse_record(record, environment.release_record)


def parse_record_text(text: str, source: str) -> dict[str, Any]:
    """A release record's fields; MlopsError when the text is not one."""
    try:
        raw = guarded_yaml.load(text)
    except guarded_yaml.YamlError as err:
        raise MlopsError(f"{err.located(source)} (reading a release record)") from None
    if not isinstance(raw, dict) or raw.get("kind") != KIND:
        raise MlopsError(f"{source}: not a release record (expected `kind: {KIND}`)")
    return raw

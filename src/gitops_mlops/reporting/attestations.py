"""How attestations and verified chains are told: terminal lines and JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from gitops_mlops.attestations import KINDS


def build_lines(record: Mapping[str, Any] | None) -> list[str]:
    """What `mlops build --push` says about the attestations it attached (or kept)."""
    if not record:
        return []
    if record.get("skipped"):
        return [f"attestations skipped: {record['skipped']}"]
    lines = []
    verb = "kept" if record.get("reused") else "attached"
    for name in KINDS:
        entry = record.get(name) or {}
        where = f" ({entry['via']})" if entry.get("via") else ""
        lines.append(f"{verb} {name:<10} {entry.get('reference')}{where}")
    if record.get("signed"):
        lines.append(f"signed with key {record.get('key')}")
    else:
        lines.append(
            "attestations are UNSIGNED: give --signing-key FILE or MLOPS_SIGNING_KEY to sign them"
        )
    return lines


def chain_text(chain: Mapping[str, Any]) -> str:
    """`mlops verify`'s report of a chain that checked out."""
    spec = chain.get("spec") or {}
    data = chain.get("data") or {}
    signature = (
        f"signature  ok, key {chain['key']}"
        if chain.get("signed")
        else "signature  NOT checked (no --public-key): anyone could have written these"
    )
    lines = [
        f"verified   {chain['image']}",
        signature,
        f"source     {chain.get('source') or 'local'} @ {chain.get('commit') or 'unknown'}",
        f"spec       {spec.get('path')} {_digest(spec.get('digest'))}",
        f"model      {chain.get('model_version')} ({chain.get('model_digest')})",
        *[f"data       {name} {_digest(digest)}" for name, digest in sorted(data.items())],
        _gate(chain.get("gate")),
        f"packages   {chain.get('packages')} Python packages in the SBOM",
        f"builder    {chain.get('builder')}",
        *[f"{name:<10} {ref}" for name, ref in sorted((chain.get("attestations") or {}).items())],
    ]
    return "\n".join(lines)


def chain_json(chain: Mapping[str, Any]) -> str:
    return json.dumps(chain, indent=2, sort_keys=True)


def _digest(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}:{v}" for k, v in value.items())
    return str(value)


def _gate(gate: Any) -> str:
    if not isinstance(gate, Mapping):
        return "gate       not run before the build"
    verdict = "passed" if gate.get("passed") else "FAILED"
    return f"gate       {verdict} ({gate.get('checks')} checks, {gate.get('failed')} failed)"

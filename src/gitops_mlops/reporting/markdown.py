"""The human report: candidate vs champion, then the gate verdict. Readable as a PR comment."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitops_mlops.release import Champion, metric_value
from gitops_mlops.spec.model import Spec


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def _interval(entry: Mapping[str, Any]) -> str:
    low, high = entry.get("ci_low"), entry.get("ci_high")
    return "—" if low is None or high is None else f"[{low:.4g}, {high:.4g}]"


def _delta(candidate: float | None, champion: float | None) -> str:
    if candidate is None or champion is None:
        return "—"
    return f"{candidate - champion:+.4g}"


def _table(
    measured: Mapping[str, Any], champion: Mapping[str, Any] | None, level: str
) -> list[str]:
    lines = [
        f"| metric | candidate | {level} interval | champion | Δ |",
        "|---|---:|---|---:|---:|",
    ]
    for name, entry in measured.items():
        ours = entry.get("value")
        theirs = metric_value(champion, name)
        lines.append(
            f"| {name} | {_number(ours)} | {_interval(entry)} | {_number(theirs)} "
            f"| {_delta(ours, theirs)} |"
        )
    return lines


def report(
    spec: Spec,
    version: str,
    measured: Mapping[str, Any],
    verdict: Mapping[str, Any],
    champion: Champion | None,
) -> str:
    passed = verdict["passed"]
    icon = "✅" if passed else "❌"
    state = "passed" if passed else "failed"
    confidence = measured.get("confidence")
    level = f"{confidence['level']:.0%}" if confidence else "no"
    lines = [
        f"## {icon} {spec.metadata.name} `{version or 'candidate'}` {state} the gate",
        "",
        (
            f"Compared with **{champion.environment}** `{champion.version}` "
            f"(from `{champion.source}`)."
            if champion
            else "No champion release to compare with"
            + (f" (`gate.champion: {spec.gate.champion}`)." if spec.gate.champion else ".")
        ),
        "",
        f"Test rows: {measured.get('n_test', '—')}.",
        "",
        *_table(measured.get("metrics", {}), champion.metrics if champion else None, level),
    ]
    for name, table in measured.get("slices", {}).items():
        rows = measured.get("slice_rows", {}).get(name, "—")
        lines += ["", f"**Slice `{name}`** ({rows} rows)", ""]
        lines += _table(table, champion.slices.get(name) if champion else None, level)
    custom = measured.get("custom")
    if custom:
        lines += ["", "**Metrics reported by the training command**", ""]
        lines += [f"- {name}: {_number(value)}" for name, value in custom.items()]
    lines += ["", "### Gate", ""]
    if not verdict["rows"]:
        lines.append("No thresholds are set (`gate.thresholds`): the gate passes.")
    else:
        lines += [
            "| | metric | check | observed | bound | champion | reason |",
            "|---|---|---|---:|---:|---:|---|",
        ]
        for row in verdict["rows"]:
            metric = row["metric"] + (f" [{row['slice']}]" if row["slice"] else "")
            lines.append(
                f"| {'✅' if row['passed'] else '❌'} | {metric} | {row['kind']} ({row['on']}) "
                f"| {_number(row['observed'])} | {_number(row['bound'])} "
                f"| {_number(row['champion'])} | {row['reason']} |"
            )
    return "\n".join(lines) + "\n"

"""The human report: candidate vs champion, then the gate verdict. Readable as a PR comment."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gitops_mlops import metrics
from gitops_mlops.integrations.github import BODY_LIMIT
from gitops_mlops.records.comparison import Comparison, Delta
from gitops_mlops.records.metrics import Estimate, Metrics, MetricTable
from gitops_mlops.records.release import ReleaseRecord
from gitops_mlops.records.verdict import Verdict
from gitops_mlops.release import Champion
from gitops_mlops.reporting import mermaid
from gitops_mlops.reporting.escaping import markdown_code
from gitops_mlops.reporting.numbers import number, signed, span
from gitops_mlops.spec.model import Spec

# Room kept in a pull request comment beyond the report's tables and pictures: the comment's
# marker, the serving image section the build adds, the note on pictures left out.
RESERVED = 3_000


# How an interval was computed (metrics.json's "method"), as a short note in its cell.
_METHODS = {
    "wilson": "Wilson",
    "bootstrap": "bootstrap",
    "little-bootstraps": "little bootstraps",
}


def _interval(entry: Estimate) -> str:
    if entry.ci_low is None or entry.ci_high is None:
        return "—" if entry.reason is None else "— (" + entry.reason.replace("|", "\\|") + ")"
    method = _METHODS.get(entry.method or "", "")
    return span(entry.ci_low, entry.ci_high) + (f" {method}" if method else "")


def _delta(candidate: float | None, champion: float | None) -> str:
    return signed(None if candidate is None or champion is None else candidate - champion)


def _verdict(row: Delta) -> str:
    if row.verdict == "not comparable":
        return "— (" + (row.reason or "not comparable").replace("|", "\\|") + ")"
    return {"better": "better ↑", "worse": "worse ↓"}.get(row.verdict, row.verdict)


def _table(
    measured: MetricTable,
    champion: MetricTable | None,
    level: str,
    comparison: Comparison | None = None,
    slice_name: str | None = None,
) -> list[str]:
    if comparison is not None and comparison.mode in ("paired", "unpaired"):
        return _compared_table(measured, level, comparison, slice_name)
    header = "champion (recorded)" if comparison is not None else "champion"
    lines = [
        f"| metric | candidate | {level} interval | {header} | Δ |",
        "|---|---:|---|---:|---:|",
    ]
    for name, entry in measured.items():
        ours = entry.value
        held = (champion or {}).get(name)
        theirs = held.value if held is not None else None
        lines.append(
            f"| {name} | {number(ours)} | {_interval(entry)} | {number(theirs)} "
            f"| {_delta(ours, theirs)} |"
        )
    return lines


def _compared_table(
    measured: MetricTable, level: str, comparison: Comparison, slice_name: str | None
) -> list[str]:
    """Both models on the same rows: Δ with its interval and a verdict per metric."""
    lines = [
        f"| metric | candidate | {level} interval | champion | Δ | Δ {level} interval | verdict |",
        "|---|---:|---|---:|---:|---|---|",
    ]
    for name, entry in measured.items():
        row = comparison.delta(name, slice_name)
        if row is None:  # latency: measured by the evaluator, not resampled
            lines.append(
                f"| {name} | {number(entry.value)} | {_interval(entry)} | — | — | — "
                "| — (not re-measured) |"
            )
            continue
        lines.append(
            f"| {name} | {number(entry.value)} | {_interval(entry)} | {number(row.champion)} "
            f"| {signed(row.delta)} | {span(row.ci_low, row.ci_high, sign=True)} "
            f"| {_verdict(row)} |"
        )
    return lines


def _compared_with(
    spec: Spec, champion: Champion | None, comparison: Comparison | None, level: str
) -> str:
    record = champion.record if champion else None
    if champion is None or record is None:
        return "No champion release to compare with" + (
            f" (`gate.champion: {spec.gate.champion}`)." if spec.gate.champion else "."
        )
    who = f"**{record.environment}** `{record.version}` (from `{champion.source}`)"
    if comparison is None:
        return f"Compared with {who}."
    if comparison.mode == "paired":
        return (
            f"Compared with {who}: its model re-evaluated on the same {comparison.n_rows} "
            f"test rows. Δ = candidate - champion, with {level} paired bootstrap intervals "
            "(both models resampled on the same rows)."
        )
    return f"Compared with {who}. ⚠️ Not on the same rows: {comparison.note}."


def _hold(spec: Spec, record: ReleaseRecord | None) -> list[str]:
    """The champion's environment on hold (a rollback): this model will not reach it."""
    if record is None or record.hold is None:
        return []
    name, environment = spec.metadata.name, record.environment
    return [
        "",
        f"> **{environment} is on hold**: {record.hold.reason}. Nothing is promoted there "
        f"automatically until `mlops release-hold {name} --environment {environment}` is merged.",
    ]


def report(
    spec: Spec,
    version: str,
    measured: Metrics,
    verdict: Verdict,
    champion: Champion | None,
    comparison: Comparison | None = None,
) -> str:
    passed = verdict.passed
    icon = "✅" if passed else "❌"
    state = "passed" if passed else "failed"
    confidence = measured.confidence
    level = f"{confidence.level:.0%}" if confidence else "no"
    record = champion.record if champion else None
    lines = [
        f"## {icon} {spec.metadata.name} `{version or 'candidate'}` {state} the gate",
        "",
        _compared_with(spec, champion, comparison, level),
        *_hold(spec, record),
        "",
        f"Test rows: {_or_dash(measured.n_test)}.",
        "",
        *_table(measured.metrics, record.metrics if record else None, level, comparison),
    ]
    for name, table in measured.slices.items():
        rows = _or_dash(measured.slice_rows.get(name))
        lines += ["", f"**Slice {markdown_code(name, in_table=False)}** ({rows} rows)", ""]
        held = record.slices.get(name) if record else None
        lines += _table(table, held, level, comparison, name)
    if measured.custom:
        lines += ["", "**Metrics reported by the training command**", ""]
        lines += [
            f"- {markdown_code(name, in_table=False)}: {number(value)}"
            for name, value in measured.custom.items()
        ]
    lines += ["", "### Gate", ""]
    if not verdict.rows:
        lines.append("No thresholds are set (`gate.thresholds`): the gate passes.")
    else:
        lines += [
            "| | metric | check | observed | bound | champion | reason |",
            "|---|---|---|---:|---:|---:|---|",
        ]
        for row in verdict.rows:
            reason = row.reason.replace("|", "\\|")
            lines.append(
                f"| {'✅' if row.passed else '❌'} | {row.label} | {row.kind} ({row.on}) "
                f"| {number(row.observed)} | {number(row.bound)} "
                f"| {number(row.champion)} | {reason} |"
            )
    held = record.metrics if record else None
    room = BODY_LIMIT - RESERVED - sum(len(line) + 1 for line in lines)
    lines += _pictures(measured, held, comparison, level, room)
    return "\n".join(lines) + "\n"


def _pictures(
    measured: Metrics,
    champion: MetricTable | None,
    comparison: Comparison | None,
    level: str,
    room: int,
) -> list[str]:
    """The charts, after every table: as many as fit in `room` characters, most useful
    first; the ones left out are named."""
    theirs = comparison.curves if comparison is not None else None
    drawn = mermaid.charts(
        _chart_rows(measured, champion, comparison), level, measured.curves, theirs
    )
    kept: list[str] = []
    left: list[str] = []
    for chart in drawn:
        if len(chart.markdown) + 2 <= room:
            kept += [chart.markdown, ""]
            room -= len(chart.markdown) + 2
        else:
            left.append(chart.kind)
    if not drawn:
        return []
    lines = ["", "### Pictures", "", *kept]
    if left:
        lines.append(
            f"*{len(left)} picture(s) left out ({', '.join(left)}) to keep this comment within "
            "GitHub's 65,536 characters; report.html draws them, from the run's metrics.json.*"
        )
    return lines


def _chart_rows(
    measured: Metrics, champion: MetricTable | None, comparison: Comparison | None
) -> list[mermaid.MetricRow]:
    """Every metric with an estimate (timings are in the tables only: one run's, no
    interval), with the champion's value and, when both predicted the same rows, Δ."""
    rows = []
    paired = comparison is not None and comparison.mode in ("paired", "unpaired")
    for name, entry in measured.metrics.items():
        metric = metrics.METRICS.get(name)
        if metric is not None and metric.needs == "latency":
            continue
        theirs = (champion or {}).get(name)
        delta = None
        found = comparison.delta(name) if comparison is not None and paired else None
        if found is not None:
            theirs = None if found.champion is None else Estimate(found.champion)
            if found.delta is not None:
                delta = Estimate(found.delta, found.ci_low, found.ci_high)
        lower = metric is not None and metric.direction == "lower"
        rows.append(mermaid.MetricRow(name, entry, theirs, delta, lower))
    return rows


def _or_dash(value: int | None) -> str:
    return "—" if value is None else str(value)


IMAGE_SECTION = "### Serving image"


def with_image(report_text: str, build: Mapping[str, Any]) -> str:
    """The report with its serving image section (replacing the one a rebuild left)."""
    kept = report_text.split(f"\n{IMAGE_SECTION}\n")[0].rstrip("\n")
    return f"{kept}\n\n{image_section(build)}"


def image_section(build: Mapping[str, Any]) -> str:
    runtime = build.get("runtime") or {}
    pinned = f" (`{build['digest']}`)" if build.get("digest") else ""
    lines = [
        IMAGE_SECTION,
        "",
        f"`{build['reference']}`{pinned}, {build['size_bytes'] / 2**20:.0f} MB, "
        f"runtime **{runtime.get('runtime', 'sklearn')}** "
        f"(`container.runtime: {runtime.get('requested', 'auto')}`): {runtime.get('reason', '')}.",
    ]
    comparison = runtime.get("comparison")
    if comparison and comparison.get("max_abs_difference") is not None:
        if comparison["label_agreement"] is not None:
            agreement = (
                f"labels agree on {comparison['label_agreement']:.2%} of rows; probabilities "
                f"differ by at most {comparison['max_abs_difference']:.2g}"
            )
        else:
            agreement = (
                f"predictions differ by at most {comparison['max_relative_difference']:.2g} "
                "(relative)"
            )
        lines += [
            "",
            f"ONNX against scikit-learn: {comparison['rows']} test rows and "
            f"{comparison['probe_rows']} rows with one feature missing; {agreement} "
            f"(tolerance {comparison['tolerance']:g}).",
        ]
    return "\n".join(lines) + "\n"

"""Stage 4: decide whether the candidate may be released.

Semantics (also in the README):
- Each threshold gives one row per bound it sets (`min`, `max`, `max_regression`).
- `on: estimate` compares the point estimate; `on: bound` compares the pessimistic end of the
  confidence interval (the low end for higher-is-better metrics, the high end otherwise).
  Metrics without an interval (latency) use the estimate, and the row says so.
- `max_regression` is how much worse than the champion the candidate may be, in the metric's
  units, or as a fraction of |champion value| with `relative: true`; "worse" follows the
  metric's direction in the registry.
- No champion record, or a champion without that metric: the row passes or fails by
  `gate.no_champion`. A metric the candidate lacks: by `gate.missing_metric`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gitops_mlops import metrics
from gitops_mlops.release import Champion, metric_value
from gitops_mlops.reporting import markdown
from gitops_mlops.rundir import RunDir, read_json, write_json
from gitops_mlops.spec.model import Spec, Threshold


@dataclass(frozen=True)
class GateContext:
    spec: Spec
    run: RunDir
    champion: Champion | None
    metrics: dict[str, Any] | None = None  # metrics.json content when already in memory
    version: str = ""


def gate(ctx: GateContext) -> dict[str, Any]:
    measured = (
        ctx.metrics if ctx.metrics is not None else read_json(ctx.run.metrics, "metrics.json")
    )
    rows = [
        row
        for index, threshold in enumerate(ctx.spec.gate.thresholds)
        for row in _rows(ctx, index, threshold, measured)
    ]
    verdict = {
        "passed": all(r["passed"] for r in rows),
        "rows": rows,
        "champion": None
        if ctx.champion is None
        else {"environment": ctx.champion.environment, "version": ctx.champion.version},
    }
    write_json(ctx.run.verdict, verdict)
    ctx.run.report.write_text(
        markdown.report(ctx.spec, ctx.version, measured, verdict, ctx.champion), encoding="utf-8"
    )
    return verdict


def _entry(table: dict[str, Any], threshold: Threshold) -> dict[str, Any] | None:
    if threshold.slice is not None:
        table = table.get("slices", {}).get(threshold.slice, {})
    else:
        table = table.get("metrics", {})
    entry = table.get(threshold.metric)
    return entry if isinstance(entry, dict) and entry.get("value") is not None else None


def _champion_value(champion: Champion | None, threshold: Threshold) -> float | None:
    if champion is None:
        return None
    table = champion.slices.get(threshold.slice, {}) if threshold.slice else champion.metrics
    return metric_value(table, threshold.metric)


def _observed(
    entry: dict[str, Any], threshold: Threshold, metric: metrics.Metric
) -> tuple[float, str]:
    if threshold.on == "estimate":
        return float(entry["value"]), ""
    end = entry.get("ci_low") if metric.direction == "higher" else entry.get("ci_high")
    if end is None:
        return float(entry["value"]), " (no interval: estimate used)"
    return float(end), " (pessimistic bound)"


def _rows(
    ctx: GateContext, index: int, threshold: Threshold, measured: dict[str, Any]
) -> list[dict[str, Any]]:
    metric = metrics.METRICS[threshold.metric]
    kinds = [
        (kind, value)
        for kind, value in (
            ("min", threshold.min),
            ("max", threshold.max),
            ("max_regression", threshold.max_regression),
        )
        if value is not None
    ]
    entry = _entry(measured, threshold)
    champion = _champion_value(ctx.champion, threshold)
    label = threshold.metric + (f"[{threshold.slice}]" if threshold.slice else "")
    rows = []
    for kind, limit in kinds:
        row: dict[str, Any] = {
            "threshold": index,  # position in gate.thresholds
            "metric": threshold.metric,
            "slice": threshold.slice,
            "kind": kind,
            "on": threshold.on,
            "observed": None,
            "bound": None,
            "champion": champion,
            "passed": False,
            "reason": "",
        }
        if entry is None:
            policy = ctx.spec.gate.missing_metric
            row["passed"] = policy == "pass"
            row["reason"] = f"{label} was not measured; gate.missing_metric is {policy}"
            rows.append(row)
            continue
        observed, note = _observed(entry, threshold, metric)
        row["observed"] = observed
        if kind == "min":
            row["bound"], row["passed"] = limit, observed >= limit
            sign = "≥" if row["passed"] else "<"
            row["reason"] = f"{label} {observed:.4g}{note} {sign} min {limit:g}"
        elif kind == "max":
            row["bound"], row["passed"] = limit, observed <= limit
            sign = "≤" if row["passed"] else ">"
            row["reason"] = f"{label} {observed:.4g}{note} {sign} max {limit:g}"
        else:
            _regression(ctx, row, threshold, metric, observed, champion, label + note)
        rows.append(row)
    return rows


def _regression(
    ctx: GateContext,
    row: dict[str, Any],
    threshold: Threshold,
    metric: metrics.Metric,
    observed: float,
    champion: float | None,
    label: str,
) -> None:
    allowed = threshold.max_regression or 0.0
    if champion is None:
        policy = ctx.spec.gate.no_champion
        row["passed"] = policy == "pass"
        whose = "no champion release" if ctx.champion is None else "the champion has no value"
        row["reason"] = f"{label}: {whose} to compare with; gate.no_champion is {policy}"
        return
    slack = allowed * abs(champion) if threshold.relative else allowed
    limit = champion - slack if metric.direction == "higher" else champion + slack
    passed = observed >= limit if metric.direction == "higher" else observed <= limit
    worse = champion - observed if metric.direction == "higher" else observed - champion
    allowance = f"{allowed:.2%} of champion" if threshold.relative else f"{allowed:g}"
    row["bound"], row["passed"] = limit, passed
    if worse <= 0:
        row["reason"] = f"{label} {observed:.4g} is no worse than champion {champion:.4g}"
    else:
        verdict = "within" if passed else "more than"
        row["reason"] = (
            f"{label} {observed:.4g} is {worse:.4g} worse than champion {champion:.4g}, "
            f"{verdict} max_regression {allowance} (limit {limit:.4g})"
        )

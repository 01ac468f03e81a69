"""Stage 4: decide whether the candidate may be released.

Semantics (also in the README):
- Each threshold gives one row per bound it sets (`min`, `max`, `max_regression`).
- `on: estimate` compares the point estimate; `on: bound` compares the pessimistic end of the
  confidence interval (the low end for higher-is-better metrics, the high end otherwise).
  Metrics without an interval (latency) use the estimate, and the row says so.
- `max_regression` is how much worse than the champion the candidate may be, in the metric's
  units, or as a fraction of |champion value| with `relative: true`; "worse" follows the
  metric's direction in the registry. When the champion's model was re-evaluated on the
  candidate's rows (`comparison.json`, mode `paired`), "worse" is read from the paired
  difference Δ = candidate - champion: its point estimate with `on: estimate`, the
  pessimistic end of its interval with `on: bound`. Otherwise (and for latency, which is
  not resampled) from the champion's recorded value, as the report says.
- No champion record, or a champion without that metric: the row passes or fails by
  `gate.no_champion`. A metric the candidate lacks: by `gate.missing_metric`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from gitops_mlops import metrics
from gitops_mlops.records.comparison import Comparison, Delta
from gitops_mlops.records.metrics import Estimate, Metrics
from gitops_mlops.records.verdict import ChampionRef, GateRow, Kind, Verdict
from gitops_mlops.release import Champion
from gitops_mlops.reporting import markdown
from gitops_mlops.rundir import RunDir
from gitops_mlops.spec.model import Spec, Threshold


@dataclass(frozen=True)
class GateContext:
    spec: Spec
    run: RunDir
    champion: Champion | None
    metrics: Metrics | None = None  # already in memory after evaluate, else read
    version: str = ""
    comparison: Comparison | None = None  # the champion on the same rows (stages/compare.py)


def gate(ctx: GateContext) -> Verdict:
    """The verdict, written to verdict.json with the report beside it."""
    measured = ctx.metrics if ctx.metrics is not None else ctx.run.read_metrics()
    rows = tuple(
        row
        for index, threshold in enumerate(ctx.spec.gate.thresholds)
        for row in _rows(ctx, index, threshold, measured)
    )
    champion = ctx.champion
    verdict = Verdict(
        passed=all(r.passed for r in rows),
        rows=rows,
        champion=None
        if champion is None
        else ChampionRef(champion.record.environment, champion.record.version),
    )
    ctx.run.write_verdict(verdict)
    ctx.run.write_report(
        markdown.report(ctx.spec, ctx.version, measured, verdict, champion, ctx.comparison)
    )
    return verdict


def _entry(measured: Metrics, threshold: Threshold) -> Estimate | None:
    entry = measured.estimate(threshold.metric, threshold.slice)
    return entry if entry is not None and entry.value is not None else None


def _champion_value(champion: Champion | None, threshold: Threshold) -> float | None:
    if champion is None:
        return None
    entry = champion.estimate(threshold.metric, threshold.slice)
    return None if entry is None else entry.value


def _observed(entry: Estimate, threshold: Threshold, metric: metrics.Metric) -> tuple[float, str]:
    assert entry.value is not None
    if threshold.on == "estimate":
        return entry.value, ""
    end = entry.ci_low if metric.direction == "higher" else entry.ci_high
    if end is None:
        return entry.value, " (no interval: estimate used)"
    return end, " (pessimistic bound)"


def _rows(ctx: GateContext, index: int, threshold: Threshold, measured: Metrics) -> list[GateRow]:
    metric = metrics.METRICS[threshold.metric]
    bounds: tuple[tuple[Kind, float | None], ...] = (
        ("min", threshold.min),
        ("max", threshold.max),
        ("max_regression", threshold.max_regression),
    )
    kinds = [(kind, value) for kind, value in bounds if value is not None]
    entry = _entry(measured, threshold)
    champion = _champion_value(ctx.champion, threshold)
    label = threshold.metric + (f"[{threshold.slice}]" if threshold.slice else "")
    rows = []
    for kind, limit in kinds:
        row = GateRow(
            threshold=index,
            metric=threshold.metric,
            slice=threshold.slice,
            kind=kind,
            on=threshold.on,
            observed=None,
            bound=None,
            champion=champion,
            passed=False,
            reason="",
        )
        if entry is None:
            policy = ctx.spec.gate.missing_metric
            entry = measured.estimate(threshold.metric, threshold.slice)
            why = f" ({entry.reason})" if entry is not None and entry.reason else ""
            reason = f"{label} was not measured{why}; gate.missing_metric is {policy}"
            rows.append(replace(row, passed=policy == "pass", reason=reason))
            continue
        observed, note = _observed(entry, threshold, metric)
        row = replace(row, observed=observed)
        if kind == "min":
            passed = observed >= limit
            sign = "≥" if passed else "<"
            reason = f"{label} {observed:.4g}{note} {sign} min {limit:g}"
            row = replace(row, bound=limit, passed=passed, reason=reason)
        elif kind == "max":
            passed = observed <= limit
            sign = "≤" if passed else ">"
            reason = f"{label} {observed:.4g}{note} {sign} max {limit:g}"
            row = replace(row, bound=limit, passed=passed, reason=reason)
        else:
            paired = _paired(ctx.comparison, threshold)
            if paired is not None:
                row = _paired_regression(row, threshold, metric, paired, label)
            else:
                row = _regression(ctx, row, threshold, metric, observed, champion, label + note)
        rows.append(row)
    return rows


def _paired(comparison: Comparison | None, threshold: Threshold) -> Delta | None:
    """Δ of the champion re-evaluated on the same rows, when there is one for this row."""
    if comparison is None or not comparison.paired:
        return None
    found = comparison.delta(threshold.metric, threshold.slice)
    if found is None or found.delta is None or found.champion is None:
        return None
    return found


def _paired_regression(
    row: GateRow, threshold: Threshold, metric: metrics.Metric, found: Delta, label: str
) -> GateRow:
    """`max_regression` on the paired difference: how much worse the candidate is than the
    champion on the same rows (the estimate, or the pessimistic end of Δ's interval)."""
    assert found.delta is not None and found.champion is not None
    champion = found.champion
    allowed = threshold.max_regression or 0.0
    delta, note = found.delta, ""
    if threshold.on == "bound":
        end = found.ci_low if metric.direction == "higher" else found.ci_high
        if end is None:
            note = " (no interval: estimate used)"
        else:
            delta, note = end, " (pessimistic end of its interval)"
    slack = allowed * abs(champion) if threshold.relative else allowed
    worse = -delta if metric.direction == "higher" else delta
    limit = champion - slack if metric.direction == "higher" else champion + slack
    passed = worse <= slack
    interval = (
        f" [{found.ci_low:+.4g}, {found.ci_high:+.4g}]"
        if found.ci_low is not None and found.ci_high is not None
        else ""
    )
    allowance = f"{allowed:.2%} of champion" if threshold.relative else f"{allowed:g}"
    said = f"{label}: Δ {found.delta:+.4g}{interval} vs champion {champion:.4g} on the same rows"
    if worse <= 0:
        reason = f"{said}; Δ{note} {delta:+.4g} is no worse ({found.verdict})"
    else:
        verdict = "within" if passed else "more than"
        reason = (
            f"{said}; Δ{note} {delta:+.4g} is {verdict} max_regression {allowance} "
            f"({found.verdict})"
        )
    return replace(
        row,
        observed=champion + delta,
        bound=limit,
        champion=champion,
        passed=passed,
        reason=reason,
        delta=delta,
        compared="paired",
    )


def _regression(
    ctx: GateContext,
    row: GateRow,
    threshold: Threshold,
    metric: metrics.Metric,
    observed: float,
    champion: float | None,
    label: str,
) -> GateRow:
    allowed = threshold.max_regression or 0.0
    if champion is None:
        policy = ctx.spec.gate.no_champion
        whose = "no champion release" if ctx.champion is None else "the champion has no value"
        reason = f"{label}: {whose} to compare with; gate.no_champion is {policy}"
        return replace(row, passed=policy == "pass", reason=reason)
    recorded = " (the champion's recorded value)"
    slack = allowed * abs(champion) if threshold.relative else allowed
    limit = champion - slack if metric.direction == "higher" else champion + slack
    passed = observed >= limit if metric.direction == "higher" else observed <= limit
    worse = champion - observed if metric.direction == "higher" else observed - champion
    allowance = f"{allowed:.2%} of champion" if threshold.relative else f"{allowed:g}"
    if worse <= 0:
        reason = f"{label} {observed:.4g} is no worse than champion {champion:.4g}{recorded}"
    else:
        verdict = "within" if passed else "more than"
        reason = (
            f"{label} {observed:.4g} is {worse:.4g} worse than champion {champion:.4g}"
            f"{recorded}, {verdict} max_regression {allowance} (limit {limit:.4g})"
        )
    delta = observed - champion
    return replace(row, bound=limit, passed=passed, reason=reason, delta=delta, compared="recorded")

"""`mlops diff RUN_A RUN_B`: two local runs compared metric by metric, Δ = B - A.

Each run directory keeps its model's predictions of its test rows (`predictions.npz`, with
the digest of those rows). The comparison is the gate's (`comparisons.pair`, nothing of its
own here): paired when both runs predicted the same rows, so both are resampled together
and the interval on Δ is narrow; unpaired otherwise, each resampled on its own, which the
report says. The intervals use B's `evaluation.confidence` as recorded in its metrics.json.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from gitops_mlops import metrics as metric_registry
from gitops_mlops.errors import MlopsError
from gitops_mlops.records.comparison import Comparison, Delta
from gitops_mlops.records.metrics import Metrics
from gitops_mlops.records.model_summary import ModelSummary
from gitops_mlops.records.predictions import PredictionSet
from gitops_mlops.reporting.escaping import terminal_text
from gitops_mlops.reporting.numbers import number, signed, span
from gitops_mlops.rundir import RunDir
from gitops_mlops.spec.model import Confidence


@dataclass(frozen=True)
class Side:
    label: str  # A or B
    run: RunDir
    model: ModelSummary
    metrics: Metrics
    predictions: PredictionSet


@dataclass(frozen=True)
class RunDiff:
    a: Side
    b: Side
    comparison: Comparison  # candidate: B, champion (the baseline): A

    def to_json(self) -> dict[str, Any]:
        return {
            "a": _side_json(self.a),
            "b": _side_json(self.b),
            "delta": "b - a",
            "comparison": self.comparison.to_json(),
        }


def diff(a: RunDir, b: RunDir) -> RunDiff:
    first, second = _side("A", a), _side("B", b)
    if first.predictions.task != second.predictions.task:
        raise MlopsError(
            f"{a.root} is a {first.predictions.task} run and {b.root} a "
            f"{second.predictions.task} run: their metrics cannot be compared"
        )
    names = _names(second.metrics, first.metrics)
    if not names:
        raise MlopsError(
            f"{a.root} and {b.root} have no metric in common that predictions can recompute"
        )
    recorded = second.metrics.confidence
    confidence = (
        None if recorded is None else Confidence(recorded.level, recorded.resamples, recorded.seed)
    )
    from gitops_mlops import comparisons  # numpy: imported only to compare

    compared = comparisons.pair(second.predictions, first.predictions, names, confidence)
    return RunDiff(
        first,
        second,
        replace(
            compared,
            champion=str(a.root),
            source=str(a.predictions),
            note=_note(first, second, compared),
        ),
    )


def _side(label: str, run: RunDir) -> Side:
    for file in (run.manifest_file, run.metrics, run.predictions):
        if file.is_symlink():
            raise MlopsError(f"{file} is a symbolic link; run files are not read through links")
    if not run.predictions.is_file():
        raise MlopsError(
            f"{run.root} has no {run.predictions.name}: it was not evaluated, or by a version "
            f"that did not keep predictions; evaluate it again (`mlops evaluate {run.root}`)"
        )
    return Side(label, run, run.read_model_summary(), run.read_metrics(), run.read_predictions())


def _names(b: Metrics, a: Metrics) -> list[str]:
    """B's metrics that both runs measured and that predictions recompute (not latency)."""
    registry = metric_registry.METRICS
    return [
        name
        for name in b.metrics
        if name in a.metrics and name in registry and registry[name].rule is not None
    ]


def _note(a: Side, b: Side, compared: Comparison) -> str:
    if compared.mode == "paired":
        return (
            f"both runs predicted the same {compared.n_rows} test rows "
            f"({b.predictions.rows_digest}): resampled together, one interval per Δ"
        )
    digests = (
        f"A {a.predictions.rows_digest or 'unknown'}, B {b.predictions.rows_digest or 'unknown'}"
    )
    return (
        f"the runs' test rows differ ({digests}): each run is resampled on its own, so the "
        "intervals are wider than a paired comparison's"
    )


def _side_json(side: Side) -> dict[str, Any]:
    return {
        "run": str(side.run.root),
        "model": side.model.name,
        "version": side.model.version,
        "test_rows": side.predictions.predictions.n,
        "rows_digest": side.predictions.rows_digest,
    }


# --- text ---------------------------------------------------------------------------------
def render_text(found: RunDiff) -> str:
    comparison = found.comparison
    level = f"{comparison.level:.0%}" if comparison.level is not None else None
    lines = [_side_line(found.a), _side_line(found.b), ""]
    how = "Paired" if comparison.mode == "paired" else "Unpaired"
    lines.append(f"{how}: {comparison.note}.")
    lines.append(
        f"Δ = B - A, with {level} intervals and a verdict per metric."
        if level
        else "Δ = B - A (no intervals: evaluation.confidence was off in B)."
    )
    slices: list[str | None] = [None]
    for row in comparison.rows:
        if row.slice is not None and row.slice not in slices:
            slices.append(row.slice)
    for slice_name in slices:
        if slice_name is not None:
            rows = found.b.metrics.slice_rows.get(slice_name)
            count = f" ({rows} rows of B)" if rows is not None else ""
            lines += ["", f"Slice {terminal_text(slice_name)}{count}"]
        lines += ["", *_table([r for r in comparison.rows if r.slice == slice_name], level)]
    return "\n".join(lines)


def _side_line(side: Side) -> str:
    n = side.predictions.predictions.n
    return (
        f"{side.label}: {terminal_text(str(side.run.root))}  {terminal_text(side.model.name)} "
        f"{terminal_text(side.model.version)}  ({n} test rows)"
    )


def _table(rows: list[Delta], level: str | None) -> list[str]:
    interval = f"Δ {level} interval" if level else "Δ interval"
    lines = [f"| metric | A | B | Δ | {interval} | verdict |", "|---|---:|---:|---:|---|---|"]
    for row in rows:
        verdict = row.verdict
        if row.verdict == "not comparable" and row.reason:
            # comparisons.pair says candidate and champion: here they are B and A.
            reason = row.reason.replace("candidate:", "B:").replace("champion:", "A:")
            verdict += f" ({reason})"
        lines.append(
            f"| {row.metric} | {number(row.champion)} | {number(row.candidate)} "
            f"| {signed(row.delta)} | {span(row.ci_low, row.ci_high, sign=True)} "
            f"| {terminal_text(verdict).replace('|', '/')} |"
        )
    return lines

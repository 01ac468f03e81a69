"""Two models' predictions compared metric by metric: Δ = candidate - baseline.

Pure: prediction sets in, a `records.comparison.Comparison` out. The gate's champion
comparison (`stages/compare.py`) and `mlops diff` both use it. When both sets hold the same
rows (their test rows' digests and true values agree), every interval is paired: the rows
are resampled once for both models (`estimates.difference`); otherwise each set is
resampled on its own (`estimates.unpaired_difference`), which is wider, and the result says
`unpaired`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gitops_mlops import estimates, metrics
from gitops_mlops.records.comparison import Comparison, Delta, Mode
from gitops_mlops.records.predictions import PredictionSet
from gitops_mlops.spec.model import Confidence


def pair(
    candidate: PredictionSet,
    champion: PredictionSet,
    names: Sequence[str],
    confidence: Confidence | None,
) -> Comparison:
    """Δ for each metric, overall and on each of the candidate's slices: paired when both
    hold the same rows, each resampled on its own otherwise."""
    same = _same_rows(candidate, champion)
    mode: Mode = "paired" if same else "unpaired"
    rows = []
    slices: list[str | None] = [None, *candidate.slices]
    for slice_name in slices:
        if slice_name is not None and not same and slice_name not in champion.slices:
            continue
        ours, theirs = candidate.of_slice(slice_name), champion.of_slice(slice_name)
        for name in names:
            rows.append(_delta(metrics.METRICS[name], slice_name, ours, theirs, confidence, same))
    return Comparison(
        mode,
        level=None if confidence is None else confidence.level,
        n_rows=candidate.predictions.n if same else None,
        rows=tuple(rows),
    )


def _same_rows(a: PredictionSet, b: PredictionSet) -> bool:
    pa, pb = a.predictions, b.predictions
    return (
        a.task == b.task
        and bool(a.rows_digest)
        and a.rows_digest == b.rows_digest
        and pa.n == pb.n
        and bool(np.array_equal(pa.y_true, pb.y_true))
    )


def _delta(
    metric: metrics.Metric,
    slice_name: str | None,
    ours: Any,
    theirs: Any,
    confidence: Confidence | None,
    paired: bool,
) -> Delta:
    if confidence is None:  # intervals are off: the point difference only
        a, b = estimates.estimate(metric, ours, None), estimates.estimate(metric, theirs, None)
        delta = None if a.value is None or b.value is None else a.value - b.value
        why = "no interval: evaluation.confidence is off"
        return Delta(metric.name, slice_name, a.value, b.value, delta, reason=why)
    compute = estimates.difference if paired else estimates.unpaired_difference
    found = compute(metric, ours, theirs, confidence)
    interval = found.interval
    return Delta(
        metric.name,
        slice_name,
        found.candidate,
        found.champion,
        found.delta,
        interval.low if interval else None,
        interval.high if interval else None,
        found.method,
        found.verdict,
        found.reason,
    )

"""A metric's value with its confidence interval.

Pure computation over `Predictions`; every metric-specific piece comes from its registry
entry (`metrics.py`): the score function gives point estimates, the resampling rule gives
bootstrap draws (or, for a proportion, the counts for Wilson's interval).

- `estimate(metric, predictions, confidence)`: one model on one set of rows.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np

from gitops_mlops import bootstrap, metrics
from gitops_mlops.bootstrap import FloatArray, Interval, Table
from gitops_mlops.predictions import Predictions, Rows
from gitops_mlops.spec.model import Confidence

Method = Literal["wilson", "bootstrap", "little-bootstraps"]
# How each interval is computed, in words (reports print these).
METHODS: dict[Method, str] = {
    "wilson": "Wilson score interval",
    "bootstrap": "percentile bootstrap",
    "little-bootstraps": "percentile bootstrap (bag of little bootstraps)",
}


@dataclass(frozen=True)
class Estimate:
    """A metric on one model's rows. `value` None: undefined there, `reason` says why."""

    metric: str
    value: float | None
    interval: Interval | None
    method: Method | None  # None when there is no interval
    reason: str | None = None


def estimate(metric: metrics.Metric, p: Predictions, confidence: Confidence | None) -> Estimate:
    value, reason = _value(metric, p)
    if value is None or confidence is None or metric.rule is None:
        return Estimate(metric.name, value, None, None, reason)
    rule = metric.rule
    if isinstance(rule, metrics.FromConfusion) and rule.proportion is not None:
        successes, trials = rule.proportion(_table(p))
        interval = bootstrap.wilson_interval(
            float(successes[0]), float(trials[0]), confidence.level
        )
        return Estimate(metric.name, value, interval, "wilson")
    samples = resamples(metric, p, confidence.resamples, confidence.seed)
    method: Method = "little-bootstraps" if samples.ndim == 2 else "bootstrap"
    found = bootstrap.percentile_interval(samples, confidence.level)
    return Estimate(metric.name, value, found, method if found else None)


def resamples(metric: metrics.Metric, p: Predictions, count: int, seed: int) -> FloatArray:
    """The metric on `count` bootstrap resamples of the rows (little bootstraps: 2-D)."""
    rule = _rule(metric)
    if isinstance(rule, metrics.FromConfusion):
        k = len(p.labels)
        stack = bootstrap.confusion_resamples(p.true_index, p.pred_index, k, count, seed)
        return rule.formula(Table(stack, p.positive))
    if isinstance(rule, metrics.FromRowSums):
        return bootstrap.row_sum_resamples(rule.terms(p), rule.combine, count, seed)

    def weighted(rows: Rows | None, weights: FloatArray) -> FloatArray:
        return rule.estimate(p, rows, weights)

    return bootstrap.weight_resamples(weighted, p.n, count, seed)


# --- helpers -------------------------------------------------------------------------------


def _rule(metric: metrics.Metric) -> metrics.Rule:
    if metric.rule is None:
        raise ValueError(f"metric {metric.name} is measured by the evaluator, not resampled")
    return metric.rule


def _value(metric: metrics.Metric, p: Predictions) -> tuple[float | None, str | None]:
    """The point estimate on all rows, or None and why it is undefined there."""
    if metric.score is None:
        return None, f"{metric.name} is measured by the evaluator"
    if p.n == 0:
        return None, "no rows"
    reason = metric.undefined(p) if metric.undefined else None
    if reason is not None:
        return None, reason
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an undefined value comes back as None, with why
            value = metric.score(p)
    except ValueError as err:  # e.g. probabilities that do not sum to one
        return None, f"scikit-learn cannot compute it: {err}"
    if not np.isfinite(value):
        return None, f"{metric.name} is undefined on these rows"
    return value, None


def _table(p: Predictions) -> Table:
    """The confusion table of all rows, as a stack of one."""
    k = len(p.labels)
    counts = np.bincount(p.true_index * k + p.pred_index, minlength=k * k)
    return Table(counts.reshape(1, k, k).astype(np.int64), p.positive)

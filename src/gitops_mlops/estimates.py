"""A metric's value with its confidence interval, and the paired difference of two models.

Pure computation over `Predictions`; every metric-specific piece comes from its registry
entry (`metrics.py`): the score function gives point estimates, the resampling rule gives
bootstrap draws (or, for a proportion, the counts for Wilson's interval).

- `estimate(metric, predictions, confidence)`: one model on one set of rows.
- `difference(metric, candidate, champion, confidence)`: two models on the SAME rows.
  Δ = candidate - champion, with a percentile interval from resampling the rows once for
  both models (label metrics: one multinomial draw over (true, candidate's, champion's
  label) cells gives both confusion tables; the other metrics: the same row indices or row
  weights for both). Rows on which the models agree move both the same way, so Δ's interval
  is much narrower than the one from resampling each model on its own, and `verdict` says
  whether it excludes zero: better, worse, or no detectable difference.
- `unpaired_difference(...)`: two models on different rows (each resampled on its own).
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

Verdict = Literal["better", "worse", "no detectable difference", "not comparable"]
Method = Literal[
    "wilson",
    "bootstrap",
    "little-bootstraps",
    "paired-bootstrap",
    "paired-little-bootstraps",
    "unpaired-bootstrap",
]
# How each interval is computed, in words (reports print these).
METHODS: dict[Method, str] = {
    "wilson": "Wilson score interval",
    "bootstrap": "percentile bootstrap",
    "little-bootstraps": "percentile bootstrap (bag of little bootstraps)",
    "paired-bootstrap": "paired percentile bootstrap (the same resampled rows for both models)",
    "paired-little-bootstraps": "paired percentile bootstrap (bag of little bootstraps)",
    "unpaired-bootstrap": "percentile bootstrap of each model's own rows (not paired)",
}


@dataclass(frozen=True)
class Estimate:
    """A metric on one model's rows. `value` None: undefined there, `reason` says why."""

    metric: str
    value: float | None
    interval: Interval | None
    method: Method | None  # None when there is no interval
    reason: str | None = None


@dataclass(frozen=True)
class Difference:
    """Δ = candidate - champion for one metric, with its interval and a plain verdict."""

    metric: str
    candidate: float | None
    champion: float | None
    delta: float | None
    interval: Interval | None
    level: float
    method: Method | None
    verdict: Verdict
    reason: str | None = None  # why it is "not comparable"


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


def difference(
    metric: metrics.Metric, candidate: Predictions, champion: Predictions, confidence: Confidence
) -> Difference:
    """The paired difference of two models' predictions of the same rows."""
    if candidate.n != champion.n or not np.array_equal(candidate.y_true, champion.y_true):
        raise ValueError("a paired difference needs both models' predictions of the same rows")
    values, reason = _both(metric, candidate, champion)
    if reason is None and candidate.positive_label != champion.positive_label:
        reason = (
            f"the positive classes differ ({candidate.positive_label!r} and "
            f"{champion.positive_label!r})"
        )
    if values is None or reason is not None or metric.rule is None:
        return _not_comparable(metric, values, confidence, reason)
    samples = paired_resamples(metric, candidate, champion, confidence.resamples, confidence.seed)
    method: Method = "paired-little-bootstraps" if samples.ndim == 2 else "paired-bootstrap"
    return _difference(metric, values, samples, confidence, method)


def unpaired_difference(
    metric: metrics.Metric, candidate: Predictions, champion: Predictions, confidence: Confidence
) -> Difference:
    """The difference of two models measured on different rows: each resampled on its own.

    With the bag of little bootstraps (many rows) the two sets of draws are pooled over
    their subsets before they are subtracted.
    """
    values, reason = _both(metric, candidate, champion)
    if values is None or reason is not None or metric.rule is None:
        return _not_comparable(metric, values, confidence, reason)
    ours = resamples(metric, candidate, confidence.resamples, confidence.seed).ravel()
    theirs = resamples(metric, champion, confidence.resamples, confidence.seed + 1).ravel()
    size = min(ours.size, theirs.size)
    return _difference(
        metric, values, ours[:size] - theirs[:size], confidence, "unpaired-bootstrap"
    )


def verdict(metric: metrics.Metric, interval: Interval | None) -> Verdict:
    """Better or worse when Δ's interval excludes zero (in the metric's direction)."""
    if interval is None:
        return "not comparable"
    gain = interval.low > 0 if metric.direction == "higher" else interval.high < 0
    loss = interval.high < 0 if metric.direction == "higher" else interval.low > 0
    return "better" if gain else "worse" if loss else "no detectable difference"


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


def paired_resamples(
    metric: metrics.Metric, a: Predictions, b: Predictions, count: int, seed: int
) -> FloatArray:
    """The metric of `a` minus that of `b` on each of `count` resamples of their shared rows."""
    rule = _rule(metric)
    if isinstance(rule, metrics.FromConfusion):
        labels = (*a.labels, *(label for label in b.labels if label not in set(a.labels)))
        common = {label: i for i, label in enumerate(labels)}
        recode = np.array([common[label] for label in b.labels], dtype=np.intp)
        stack_a, stack_b = bootstrap.paired_confusion_resamples(
            a.true_index, a.pred_index, recode[b.pred_index], len(labels), count, seed
        )
        return rule.formula(Table(stack_a, a.positive)) - rule.formula(Table(stack_b, a.positive))
    if isinstance(rule, metrics.FromRowSums):
        ours, theirs = rule.terms(a), rule.terms(b)
        combine = rule.combine

        def delta(sums: list[FloatArray], n: int) -> FloatArray:
            return combine(sums[: len(ours)], n) - combine(sums[len(ours) :], n)

        return bootstrap.row_sum_resamples([*ours, *theirs], delta, count, seed)

    def weighted(rows: Rows | None, weights: FloatArray) -> FloatArray:
        return rule.estimate(a, rows, weights) - rule.estimate(b, rows, weights)

    return bootstrap.weight_resamples(weighted, a.n, count, seed)


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


def _both(
    metric: metrics.Metric, candidate: Predictions, champion: Predictions
) -> tuple[tuple[float, float] | None, str | None]:
    ours, our_reason = _value(metric, candidate)
    theirs, their_reason = _value(metric, champion)
    if ours is None:
        return None, f"candidate: {our_reason}"
    if theirs is None:
        return None, f"champion: {their_reason}"
    return (ours, theirs), None


def _not_comparable(
    metric: metrics.Metric,
    values: tuple[float, float] | None,
    confidence: Confidence,
    reason: str | None,
) -> Difference:
    ours, theirs = values or (None, None)
    delta = None if values is None else values[0] - values[1]
    return Difference(
        metric.name, ours, theirs, delta, None, confidence.level, None, "not comparable", reason
    )


def _difference(
    metric: metrics.Metric,
    values: tuple[float, float],
    samples: FloatArray,
    confidence: Confidence,
    method: Method,
) -> Difference:
    interval = bootstrap.percentile_interval(samples, confidence.level)
    ours, theirs = values
    return Difference(
        metric.name,
        ours,
        theirs,
        ours - theirs,
        interval,
        confidence.level,
        method if interval else None,
        verdict(metric, interval),
        None if interval else "no resample gave a value",
    )


def _table(p: Predictions) -> Table:
    """The confusion table of all rows, as a stack of one."""
    k = len(p.labels)
    counts = np.bincount(p.true_index * k + p.pred_index, minlength=k * k)
    return Table(counts.reshape(1, k, k).astype(np.int64), p.positive)

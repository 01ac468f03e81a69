"""Confidence intervals: Wilson's score interval for proportions, the bootstrap for the rest.

Three resampling engines, one per kind of rule in the metric registry (`metrics.py`):

- Label metrics are functions of the confusion table, and resampling n rows with replacement
  draws that table from a multinomial over its cells. So we draw all resampled tables at once,
  `resamples x cells` numbers, whatever the number of rows: exact, and 1M predictions cost what
  1,000 do. Two models on the same rows: the cells are (true, candidate's, champion's) label,
  and one draw gives both models' tables for the same resampled rows.
- Metrics of sums over rows (mean errors, log loss) resample row indices in chunks and sum the
  per-row terms they pick.
- Metrics of all rows at once (ROC AUC, average precision) get, per resample, how often each
  row is drawn, and compute a weighted statistic (a weighted cumulative sum after one sort).

The last two cost rows x resamples. Beyond _EXACT_CELLS of that, they use the bag of little
bootstraps (Kleiner, Talwalkar, Sarkar and Jordan, "A scalable bootstrap for massive data",
JRSS B, 2014): 10 disjoint random subsets of b = n^0.6 rows; each resample draws n rows from
one subset, as multinomial counts over its b rows, so it costs b instead of n (1M rows: b =
3,982). Each subset's estimates are re-centred on the full data's estimate (a subset's own
estimate is off by its sampling error; its spread around it is what we want) and come back one
row per subset; the interval is the mean of the subsets' intervals.

A percentile bootstrap of a proportion collapses to a point at 0 % and 100 % (every resample
of 23 right answers out of 23 is 23 out of 23). Proportions use Wilson's score interval, whose
coverage stays near the nominal level there (Brown, Cai and DasGupta, "Interval estimation for
a binomial proportion", Statistical Science, 2001).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from statistics import NormalDist
from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
Counts = NDArray[np.int64]
_CHUNK_CELLS = 20_000_000  # rows x resamples gathered at once (about 160 MB of indices)
_EXACT_CELLS = 50_000_000  # rows x resamples drawn one by one, about a second per metric
_LITTLE_SUBSETS = 10
_LITTLE_EXPONENT = 0.6  # subset size b = n ** 0.6, within the range the paper validates


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


def percentile_interval(samples: FloatArray, level: float) -> Interval | None:
    """The percentile interval of bootstrap estimates, ignoring undefined ones.

    Two-dimensional estimates come from the bag of little bootstraps, one row per subset:
    the interval is the mean of the rows' intervals.
    """
    tail = (1 - level) / 2 * 100
    ends = []
    for group in np.atleast_2d(samples):
        finite = group[np.isfinite(group)]
        if finite.size:
            ends.append(np.percentile(finite, [tail, 100 - tail]))
    if not ends:
        return None
    low, high = np.mean(ends, axis=0)
    return Interval(float(low), float(high))


def wilson_interval(successes: float, trials: float, level: float) -> Interval:
    """Wilson's score interval for `successes` out of `trials` (no trials: all of [0, 1])."""
    if trials <= 0:
        return Interval(0.0, 1.0)
    z = NormalDist().inv_cdf(1 - (1 - level) / 2)
    share = successes / trials
    centre = (share + z * z / (2 * trials)) / (1 + z * z / trials)
    half = (
        z
        / (1 + z * z / trials)
        * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials))
    )
    # At 0 and 1 successes the ends are exactly 0 and 1; rounding must not push them past.
    low = 0.0 if successes <= 0 else max(0.0, centre - half)
    high = 1.0 if successes >= trials else min(1.0, centre + half)
    return Interval(low, high)


# --- label metrics from resampled confusion tables -----------------------------------------


def _safe_divide(num: FloatArray, den: FloatArray) -> FloatArray:
    out = np.zeros(np.broadcast_shapes(num.shape, den.shape), dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


class Table:
    """A stack of confusion tables, (resamples, K, K): rows true class, columns predicted.

    The registry's label metrics are formulas over these per-class counts; each gives one
    value per table. The per-class figures follow scikit-learn (zero_division=0; macro
    averages over the classes present in truth or predictions).
    """

    def __init__(self, counts: Counts, positive: int | None = None) -> None:
        self.counts = counts
        self.positive = positive

    @cached_property
    def n(self) -> FloatArray:
        result: FloatArray = self.counts.sum(axis=(1, 2)).astype(np.float64)
        return result

    @cached_property
    def tp(self) -> FloatArray:
        return np.diagonal(self.counts, axis1=1, axis2=2).astype(np.float64)

    @cached_property
    def support(self) -> FloatArray:
        """True rows per class."""
        result: FloatArray = self.counts.sum(axis=2).astype(np.float64)
        return result

    @cached_property
    def predicted(self) -> FloatArray:
        """Predicted rows per class."""
        result: FloatArray = self.counts.sum(axis=1).astype(np.float64)
        return result

    @cached_property
    def correct(self) -> FloatArray:
        result: FloatArray = self.tp.sum(axis=1)
        return result

    @cached_property
    def precision(self) -> FloatArray:
        return _safe_divide(self.tp, self.predicted)

    @cached_property
    def recall(self) -> FloatArray:
        return _safe_divide(self.tp, self.support)

    @cached_property
    def f1(self) -> FloatArray:
        return _safe_divide(2 * self.tp, self.support + self.predicted)

    def macro(self, values: FloatArray, over: NDArray[np.bool_] | None = None) -> FloatArray:
        """The mean of per-class `values` over the classes `over` (default: present ones)."""
        mask = ((self.support + self.predicted) > 0) if over is None else over
        weights = mask.astype(np.float64)
        result: FloatArray = (values * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1)
        return result

    def weighted(self, values: FloatArray) -> FloatArray:
        return _safe_divide((values * self.support).sum(axis=1), self.support.sum(axis=1))

    def at_positive(self, values: FloatArray) -> FloatArray:
        """The positive class's column of per-class `values`."""
        if self.positive is None:
            raise ValueError("a positive-class metric needs a positive class")
        column: FloatArray = values[:, self.positive]
        return column


def _draw(
    cells: NDArray[np.intp], width: int, resamples: int, seed: int
) -> Iterator[tuple[Any, Counts]]:
    """The occupied cells (of `width`), and per chunk of resamples how many rows each gets."""
    n = cells.size
    if width <= _CHUNK_CELLS:  # counting beats sorting when the cells fit in memory
        every = np.bincount(cells, minlength=width)
        occupied = np.flatnonzero(every)
        counts = every[occupied]
    else:
        occupied, counts = np.unique(cells, return_counts=True)
    rng = np.random.default_rng(seed)
    per_chunk = max(1, _CHUNK_CELLS // occupied.size)
    done = 0
    while done < resamples:
        size = min(per_chunk, resamples - done)
        yield occupied, rng.multinomial(n, counts / n, size=size)
        done += size


def _gather(draws: Counts, columns: NDArray[np.intp], width: int) -> Counts:
    """Sum the draws' columns into `width` columns: column j of `draws` adds to `columns[j]`."""
    order = np.argsort(columns, kind="stable")
    ordered = columns[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    out = np.zeros((draws.shape[0], width), dtype=np.int64)
    out[:, ordered[starts]] = np.add.reduceat(draws[:, order], starts, axis=1)
    return out


def confusion_resamples(
    true_index: NDArray[np.intp], pred_index: NDArray[np.intp], k: int, resamples: int, seed: int
) -> Counts:
    """`resamples` confusion tables (resamples, K, K) of bootstrap draws of the rows."""
    parts = [
        _gather(draws, cells, k * k)
        for cells, draws in _draw(true_index * k + pred_index, k * k, resamples, seed)
    ]
    return np.concatenate(parts).reshape(resamples, k, k)


def paired_confusion_resamples(
    true_index: NDArray[np.intp],
    pred_a: NDArray[np.intp],
    pred_b: NDArray[np.intp],
    k: int,
    resamples: int,
    seed: int,
) -> tuple[Counts, Counts]:
    """Two models' confusion tables on the same resampled rows.

    The multinomial is over (true, a's, b's label) cells: a resampled row brings both
    models' predictions of it, so the two tables of a draw share their rows.
    """
    joint = (true_index * k + pred_a) * k + pred_b
    parts_a, parts_b = [], []
    for cells, draws in _draw(joint, k * k * k, resamples, seed):
        true, a, b = cells // (k * k), cells // k % k, cells % k
        parts_a.append(_gather(draws, true * k + a, k * k))
        parts_b.append(_gather(draws, true * k + b, k * k))
    shape = (resamples, k, k)
    return np.concatenate(parts_a).reshape(shape), np.concatenate(parts_b).reshape(shape)


# --- other metrics by resampling rows ------------------------------------------------------


def uses_little_bootstraps(n: int, resamples: int) -> bool:
    return n * resamples > _EXACT_CELLS


def index_chunks(n: int, resamples: int, seed: int) -> Iterator[NDArray[Any]]:
    """The textbook bootstrap's row indices, (chunk, n) at a time, `resamples` rows in all."""
    rng = np.random.default_rng(seed)
    per_chunk = max(1, _CHUNK_CELLS // max(n, 1))
    done = 0
    while done < resamples:
        size = min(per_chunk, resamples - done)
        yield rng.integers(0, n, size=(size, n), dtype=np.int64 if n > 2**31 else np.int32)
        done += size


def _little_samples(
    n: int, resamples: int, seed: int
) -> Iterator[tuple[NDArray[np.intp], NDArray[np.int64]]]:
    """For each little-bootstrap subset: its rows, and per resample how often each is drawn."""
    rng = np.random.default_rng(seed)
    size = math.ceil(n**_LITTLE_EXPONENT)
    subsets = min(_LITTLE_SUBSETS, n // size)
    per_subset = math.ceil(resamples / subsets)
    shuffled = rng.permutation(n)
    for start in range(0, subsets * size, size):
        counts: NDArray[np.int64] = rng.multinomial(n, np.full(size, 1 / size), size=per_subset)
        yield shuffled[start : start + size], counts


# estimate(rows, weights): the metric for each row of weights, the number of times each of
# `rows` (None: all rows) is drawn.
Estimate = Callable[[NDArray[np.intp] | None, FloatArray], FloatArray]


def _little_bootstraps(estimate: Estimate, n: int, resamples: int, seed: int) -> FloatArray:
    """(subsets, resamples per subset) estimates, each re-centred on the full data's."""
    full = estimate(None, np.ones((1, n)))[0]
    groups = []
    for rows, counts in _little_samples(n, resamples, seed):
        own = estimate(rows, np.full((1, rows.size), n / rows.size))[0]
        groups.append(estimate(rows, counts.astype(np.float64)) - own + full)
    return np.stack(groups)


def row_sum_resamples(
    terms: list[FloatArray],
    combine: Callable[[list[FloatArray], int], FloatArray],
    resamples: int,
    seed: int,
) -> FloatArray:
    """`combine(sums of each term over the drawn rows, n)` for each resample."""
    n = terms[0].size
    if uses_little_bootstraps(n, resamples):

        def estimate(rows: NDArray[np.intp] | None, weights: FloatArray) -> FloatArray:
            return combine([weights @ (c if rows is None else c[rows]) for c in terms], n)

        return _little_bootstraps(estimate, n, resamples, seed)
    parts = [
        combine([column[idx].sum(axis=1) for column in terms], n)
        for idx in index_chunks(n, resamples, seed)
    ]
    return np.concatenate(parts)


def weight_resamples(estimate: Estimate, n: int, resamples: int, seed: int) -> FloatArray:
    """`estimate` of each resample, given how often each row is drawn in it."""
    if uses_little_bootstraps(n, resamples):
        return _little_bootstraps(estimate, n, resamples, seed)
    parts = []
    for idx in index_chunks(n, resamples, seed):
        draws = np.arange(idx.shape[0])[:, np.newaxis] * n + idx
        counts = np.bincount(draws.ravel(), minlength=idx.size).reshape(idx.shape[0], n)
        parts.append(estimate(None, counts.astype(np.float64)))
    return np.concatenate(parts)


def _ranked(
    positive: NDArray[np.bool_], scores: FloatArray, weights: FloatArray, descending: bool
) -> tuple[FloatArray, FloatArray]:
    """Weighted positives and negatives per distinct score, in score order."""
    order = np.argsort(-scores if descending else scores, kind="stable")
    sorted_scores, is_positive = scores[order], positive[order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ordered = weights[:, order]
    pos = np.add.reduceat(ordered * is_positive, starts, axis=1)
    neg = np.add.reduceat(ordered * ~is_positive, starts, axis=1)
    return pos, neg


def weighted_auc(
    positive: NDArray[np.bool_], scores: FloatArray, weights: FloatArray
) -> FloatArray:
    """ROC AUC for each row of `weights`, the number of times each row is drawn.

    With rows sorted by score, the AUC is the sum over positives of the negatives scored
    below them (ties: one half, as scikit-learn counts them), so each resample costs one
    weighted cumulative sum.
    """
    pos, neg = _ranked(positive, scores, weights, descending=False)
    below = np.cumsum(neg, axis=1) - neg
    pairs = pos.sum(axis=1) * neg.sum(axis=1)
    wins = (pos * (below + 0.5 * neg)).sum(axis=1)
    auc = np.full(weights.shape[0], np.nan)
    np.divide(wins, pairs, out=auc, where=pairs > 0)
    return auc


def weighted_average_precision(
    positive: NDArray[np.bool_], scores: FloatArray, weights: FloatArray
) -> FloatArray:
    """Average precision for each row of `weights`, as scikit-learn's step sum.

    Thresholds at each distinct score, from the highest: AP = Σ (recall gained) x precision.
    """
    pos, neg = _ranked(positive, scores, weights, descending=True)
    true_pos = np.cumsum(pos, axis=1)
    precision = _safe_divide(true_pos, true_pos + np.cumsum(neg, axis=1))
    total = true_pos[:, -1]
    ap = np.full(weights.shape[0], np.nan)
    np.divide((pos * precision).sum(axis=1), total, out=ap, where=total > 0)
    return ap

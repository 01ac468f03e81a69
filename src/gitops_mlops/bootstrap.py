"""Bootstrap confidence intervals, vectorised with numpy.

Label metrics (accuracy, precision, recall, F1, balanced accuracy) are functions of the
confusion matrix, and resampling n rows with replacement draws that matrix from a multinomial
over its cells. So we draw all resampled confusion matrices at once, `resamples x K^2` numbers,
whatever the number of rows: exact, and 1M predictions cost what 1,000 do.
Other metrics resample row indices in chunks and compute on the gathered rows, which costs
rows x resamples. Beyond _EXACT_CELLS of that, they use the bag of little bootstraps (Kleiner,
Talwalkar, Sarkar and Jordan, "A scalable bootstrap for massive data", JRSS B, 2014): 10
disjoint random subsets of b = n^0.6 rows; each resample draws n rows from one subset, as
multinomial counts over its b rows, so it costs b instead of n (1M rows: b = 3,982). Each
subset's estimates are re-centred on the full data's estimate (a subset's own estimate is off
by its sampling error; its spread around it is what we want) and come back one row per
subset; the interval is the mean of the subsets' intervals.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
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


# --- label metrics from resampled confusion matrices ---------------------------------------


def confusion_resamples(
    true_index: NDArray[np.intp], pred_index: NDArray[np.intp], k: int, resamples: int, seed: int
) -> NDArray[np.int64]:
    """`resamples` confusion matrices (rows: true class, columns: predicted) of bootstrap draws."""
    n = true_index.size
    counts = np.bincount(true_index * k + pred_index, minlength=k * k)
    rng = np.random.default_rng(seed)
    drawn: NDArray[np.int64] = rng.multinomial(n, counts / n, size=resamples)
    return drawn.reshape(resamples, k, k)


def _safe_divide(num: FloatArray, den: FloatArray) -> FloatArray:
    out = np.zeros_like(num, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _per_class(cm: NDArray[np.int64]) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    tp = np.diagonal(cm, axis1=1, axis2=2).astype(np.float64)
    support = cm.sum(axis=2).astype(np.float64)  # true counts per class
    predicted = cm.sum(axis=1).astype(np.float64)
    present = ((support + predicted) > 0).astype(np.float64)  # sklearn averages over these
    return tp, support, predicted, present


def _macro(values: FloatArray, present: FloatArray) -> FloatArray:
    result: FloatArray = (values * present).sum(axis=1) / np.maximum(present.sum(axis=1), 1)
    return result


def _weighted(values: FloatArray, support: FloatArray) -> FloatArray:
    result: FloatArray = _safe_divide((values * support).sum(axis=1), support.sum(axis=1))
    return result


def from_confusion(name: str, cm: NDArray[np.int64]) -> FloatArray:
    """A label metric for each confusion matrix in a (resamples, K, K) stack."""
    tp, support, predicted, present = _per_class(cm)
    n = cm.sum(axis=(1, 2)).astype(np.float64)
    precision = _safe_divide(tp, predicted)
    recall = _safe_divide(tp, support)
    f1 = _safe_divide(2 * tp, support + predicted)
    if name == "accuracy":
        result: FloatArray = tp.sum(axis=1) / n
        return result
    if name == "balanced_accuracy":
        has_support = (support > 0).astype(np.float64)
        return _macro(recall, has_support)
    table: dict[str, Callable[[], FloatArray]] = {
        "precision_macro": lambda: _macro(precision, present),
        "recall_macro": lambda: _macro(recall, present),
        "f1_macro": lambda: _macro(f1, present),
        "precision_weighted": lambda: _weighted(precision, support),
        "recall_weighted": lambda: _weighted(recall, support),
        "f1_weighted": lambda: _weighted(f1, support),
    }
    return table[name]()


# --- other metrics by resampling rows ------------------------------------------------------


def _index_chunks(n: int, resamples: int, seed: int) -> Any:
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


def _row_resamples(
    per_row: list[FloatArray],
    combine: Callable[[list[FloatArray], int], FloatArray],
    resamples: int,
    seed: int,
) -> FloatArray:
    n = per_row[0].size
    if n * resamples > _EXACT_CELLS:

        def estimate(rows: NDArray[np.intp] | None, weights: FloatArray) -> FloatArray:
            return combine([weights @ (c if rows is None else c[rows]) for c in per_row], n)

        return _little_bootstraps(estimate, n, resamples, seed)
    parts = [
        combine([column[idx].sum(axis=1) for column in per_row], n)
        for idx in _index_chunks(n, resamples, seed)
    ]
    return np.concatenate(parts)


def regression_resamples(
    name: str, y_true: FloatArray, y_pred: FloatArray, resamples: int, seed: int
) -> FloatArray:
    error = y_pred - y_true
    if name == "mae":
        return _row_resamples([np.abs(error)], lambda s, n: s[0] / n, resamples, seed)
    if name == "rmse":
        return _row_resamples([error**2], lambda s, n: np.sqrt(s[0] / n), resamples, seed)
    if name == "mape":
        eps = np.finfo(np.float64).eps
        ratio = np.abs(error) / np.maximum(np.abs(y_true), eps)
        return _row_resamples([ratio], lambda s, n: s[0] / n, resamples, seed)
    if name == "r2":

        def r2(sums: list[FloatArray], n: int) -> FloatArray:
            residual, total, squares = sums
            spread = squares - total**2 / n
            result: FloatArray = 1 - _safe_divide(residual, spread)
            result[spread <= 0] = np.nan
            return result

        return _row_resamples([error**2, y_true, y_true**2], r2, resamples, seed)
    raise ValueError(f"no resampling rule for {name}")


def log_loss_resamples(
    true_index: NDArray[np.intp], proba: FloatArray, resamples: int, seed: int
) -> FloatArray:
    eps = np.finfo(proba.dtype).eps
    clipped = np.clip(proba, eps, 1 - eps)
    clipped = clipped / clipped.sum(axis=1, keepdims=True)
    losses = -np.log(clipped[np.arange(true_index.size), true_index])
    return _row_resamples([losses], lambda s, n: s[0] / n, resamples, seed)


def auc_resamples(
    positive: NDArray[np.bool_], scores: FloatArray, resamples: int, seed: int
) -> FloatArray:
    """Binary ROC AUC of each resample (ties count one half, as scikit-learn counts them)."""
    n = scores.size
    if n * resamples > _EXACT_CELLS:

        def estimate(rows: NDArray[np.intp] | None, weights: FloatArray) -> FloatArray:
            if rows is None:
                return _weighted_auc(positive, scores, weights)
            return _weighted_auc(positive[rows], scores[rows], weights)

        return _little_bootstraps(estimate, n, resamples, seed)
    parts = []
    for idx in _index_chunks(n, resamples, seed):
        draws = np.arange(idx.shape[0])[:, np.newaxis] * n + idx
        counts = np.bincount(draws.ravel(), minlength=idx.size).reshape(idx.shape[0], n)
        parts.append(_weighted_auc(positive, scores, counts))
    return np.concatenate(parts)


def _weighted_auc(
    positive: NDArray[np.bool_], scores: FloatArray, counts: NDArray[Any]
) -> FloatArray:
    """ROC AUC for each row of `counts`, the number of times each row is drawn.

    With rows sorted by score, the AUC is the sum over positives of the negatives scored
    below them (ties: one half), so each resample costs one weighted cumulative sum.
    """
    order = np.argsort(scores, kind="stable")
    sorted_scores, is_positive = scores[order], positive[order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    weights = counts[:, order].astype(np.float64)
    pos = np.add.reduceat(weights * is_positive, starts, axis=1)
    neg = np.add.reduceat(weights * ~is_positive, starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    pairs = pos.sum(axis=1) * neg.sum(axis=1)
    wins = (pos * (below + 0.5 * neg)).sum(axis=1)
    auc = np.full(counts.shape[0], np.nan)
    np.divide(wins, pairs, out=auc, where=pairs > 0)
    return auc


def generic_resamples(
    compute: Callable[[Any, Any], float], y_true: Any, other: Any, resamples: int, seed: int
) -> FloatArray:
    """Any metric, one resample at a time (used for ranking metrics such as ROC AUC)."""
    y = np.asarray(y_true)
    o = np.asarray(other)
    values = np.full(resamples, np.nan)
    done = 0
    for idx in _index_chunks(y.size, resamples, seed):
        for rows in idx:
            with contextlib.suppress(ValueError):  # e.g. a resample holding a single class
                values[done] = compute(y[rows], o[rows])
            done += 1
    return values

"""Bootstrap confidence intervals, vectorised with numpy.

Label metrics (accuracy, precision, recall, F1, balanced accuracy) are functions of the
confusion matrix, and resampling n rows with replacement draws that matrix from a multinomial
over its cells. So we draw all resampled confusion matrices at once, `resamples x K^2` numbers,
whatever the number of rows: exact, and 1M predictions cost what 1,000 do.
Other metrics resample row indices in chunks and compute on the gathered rows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
_CHUNK_CELLS = 20_000_000  # rows x resamples gathered at once (about 160 MB of indices)


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


def percentile_interval(samples: FloatArray, level: float) -> Interval | None:
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return None
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
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


def _row_resamples(
    per_row: list[FloatArray],
    combine: Callable[[list[FloatArray], int], FloatArray],
    resamples: int,
    seed: int,
) -> FloatArray:
    n = per_row[0].size
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
    """Binary ROC AUC of each resample (ties count one half, as scikit-learn counts them).

    With rows sorted by score, a resample's AUC is sum over positives of the negatives scored
    below them, so each resample costs one weighted cumulative sum, not a sort.
    """
    order = np.argsort(scores, kind="stable")
    sorted_scores, is_positive = scores[order], positive[order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    n = scores.size
    rank = np.empty(n, dtype=np.intp)
    rank[order] = np.arange(n)
    parts = []
    for idx in _index_chunks(n, resamples, seed):
        weights = np.zeros((idx.shape[0], n))
        rows = np.repeat(np.arange(idx.shape[0]), n)
        np.add.at(weights, (rows, rank[idx.ravel()]), 1.0)
        pos = np.add.reduceat(weights * is_positive, starts, axis=1)
        neg = np.add.reduceat(weights * ~is_positive, starts, axis=1)
        below = np.cumsum(neg, axis=1) - neg
        pairs = pos.sum(axis=1) * neg.sum(axis=1)
        wins = (pos * (below + 0.5 * neg)).sum(axis=1)
        auc = np.full(idx.shape[0], np.nan)
        np.divide(wins, pairs, out=auc, where=pairs > 0)
        parts.append(auc)
    return np.concatenate(parts)


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

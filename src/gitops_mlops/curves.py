"""The summaries of a model's predictions that the report draws (`records.curves.Curves`).

Pure functions of `Predictions`: the confusion table, ROC and precision-recall curves
(scikit-learn's, the same functions as the roc_auc and average_precision metrics) cut to a
bounded number of vertices, a calibration curve and a residual histogram.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gitops_mlops.predictions import FloatArray, Predictions
from gitops_mlops.records.curves import (
    MAX_CLASSES,
    MAX_POINTS,
    RESIDUAL_BINS,
    Confusion,
    Curve,
    Curves,
    Histogram,
    Label,
)

CALIBRATION_BINS = 10


def summarise(p: Predictions, task: str) -> Curves:
    """Every summary that fits the task and what the model predicted."""
    if task == "regression":
        return Curves(residuals=residuals(p))
    if not binary(p):
        return Curves(confusion=confusion(p))
    return Curves(
        confusion=confusion(p),
        roc=roc(p),
        precision_recall=precision_recall(p),
        calibration=calibration(p),
    )


def binary(p: Predictions) -> bool:
    """Two classes with probabilities, both among the rows: ROC and precision-recall exist."""
    return (
        p.proba is not None
        and len(p.labels) == 2
        and len(p.model_classes) == 2
        and len(p.classes_present) == 2
    )


def confusion(p: Predictions) -> Confusion | None:
    k = len(p.labels)
    if k > MAX_CLASSES:
        return None
    cells = np.bincount(p.true_index * k + p.pred_index, minlength=k * k).reshape(k, k)
    return Confusion(
        tuple(_label(label) for label in p.labels),
        tuple(tuple(int(c) for c in row) for row in cells),
    )


def roc(p: Predictions) -> Curve:
    from sklearn.metrics import roc_auc_score, roc_curve

    fpr, tpr, _ = roc_curve(p.is_positive, p.positive_scores)
    area = float(roc_auc_score(p.is_positive, p.positive_scores))
    return _bounded(fpr, tpr, area)


def precision_recall(p: Predictions) -> Curve:
    """Precision against recall, recall rising (scikit-learn gives it falling)."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    precision, recall, _ = precision_recall_curve(p.is_positive, p.positive_scores)
    area = float(average_precision_score(p.is_positive, p.positive_scores))
    return _bounded(recall[::-1], precision[::-1], area)


def calibration(p: Predictions, bins: int = CALIBRATION_BINS) -> Curve:
    """The share of positive rows against the mean predicted probability, per equal bin."""
    scores, truth = p.positive_scores, p.is_positive.astype(np.float64)
    which = np.clip((scores * bins).astype(np.intp), 0, bins - 1)
    rows = np.bincount(which, minlength=bins)
    held = rows > 0
    mean_score = np.bincount(which, scores, minlength=bins)[held] / rows[held]
    share = np.bincount(which, truth, minlength=bins)[held] / rows[held]
    return Curve(_floats(mean_score), _floats(share))


def residuals(p: Predictions, bins: int = RESIDUAL_BINS) -> Histogram | None:
    """True - predicted, binned between the 1st and 99th percentiles (tails in the end bins)."""
    found = p.y_true.astype(np.float64) - p.y_pred.astype(np.float64)
    found = found[np.isfinite(found)]
    if found.size == 0:
        return None
    low, high = (float(q) for q in np.quantile(found, [0.01, 0.99]))
    if high <= low:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, bins + 1)
    counts = np.histogram(np.clip(found, low, high), edges)[0]
    return Histogram(_floats(edges), tuple(int(c) for c in counts))


def _bounded(x: FloatArray, y: FloatArray, area: float) -> Curve:
    """At most MAX_POINTS vertices, evenly spaced along the curve's length: the ends, and
    the corners of a curve of few rows, are kept."""
    if x.size > MAX_POINTS:
        steps = np.hypot(np.diff(x), np.diff(y))
        along = np.concatenate([[0.0], np.cumsum(steps)])
        wanted = np.linspace(0.0, along[-1], MAX_POINTS)
        keep = np.unique(np.searchsorted(along, wanted).clip(0, x.size - 1))
        x, y = x[keep], y[keep]
    return Curve(_floats(x), _floats(y), area)


def _floats(values: Any) -> tuple[float, ...]:
    return tuple(round(float(v), 6) for v in values)


def _label(label: Any) -> Label:
    """A class label as JSON holds it (numpy scalars as Python's; anything else as text)."""
    value = label.item() if isinstance(label, np.generic) else label
    return value if isinstance(value, str | int | float) else str(value)

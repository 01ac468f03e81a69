"""Stage 3: measure the model on the test data: metrics, confidence intervals, slices, latency."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gitops_mlops import bootstrap, bundle, datasets, metrics
from gitops_mlops.errors import MlopsError
from gitops_mlops.records.metrics import Estimate, IntervalSettings, Metrics, MetricTable
from gitops_mlops.rundir import RunDir
from gitops_mlops.spec.model import Confidence, Slice, Spec

LATENCY_WARMUP = 5


@dataclass(frozen=True)
class EvaluateContext:
    spec: Spec
    run: RunDir
    model: Any = None  # the trained model when the run already holds it in memory
    data: datasets.Data | None = None


@dataclass(frozen=True)
class Predictions:
    y_true: np.ndarray[Any, Any]
    y_pred: np.ndarray[Any, Any]
    proba: np.ndarray[Any, Any] | None
    labels: list[Any]  # classes, in the model's order, then any unseen test classes


def evaluate(ctx: EvaluateContext) -> Metrics:
    """Measure the model; the result is written to metrics.json and returned."""
    spec, run = ctx.spec, ctx.run
    model = (
        ctx.model
        if ctx.model is not None
        else bundle.load_verified(run.model_dir, spec.model.allow_modules)
    )
    data = ctx.data or _reload(spec, run)
    names = [n for n in spec.evaluation.metrics if metrics.METRICS[n].needs != "latency"]
    predictions = _predict(spec, model, data, names)
    confidence = spec.evaluation.confidence
    overall = _measure(spec, names, predictions, confidence)
    slices: dict[str, MetricTable] = {}
    slice_rows: dict[str, int] = {}
    frame = data.x_test.assign(**{data.target: data.y_test})
    for index, item in enumerate(spec.evaluation.slices):
        mask = _slice_mask(spec, frame, item, index)
        slice_rows[item.name] = int(mask.sum())
        slices[item.name] = _measure(spec, names, _subset(predictions, mask), confidence)
    if spec.evaluation.latency is not None:
        p50, p95 = _latency(
            model, data, spec.evaluation.latency.batch_size, spec.evaluation.latency.repeats
        )
        overall["latency_p50_ms"] = Estimate(p50)
        overall["latency_p95_ms"] = Estimate(p95)
    custom = run.command_metrics
    result = Metrics(
        metrics=overall,
        slices=slices,
        slice_rows=slice_rows,
        n_test=len(data.x_test),
        confidence=None
        if confidence is None
        else IntervalSettings(confidence.level, confidence.resamples, confidence.seed),
        custom=json.loads(custom.read_text()) if custom.is_file() else {},
    )
    run.write_metrics(result)
    return result


def _reload(spec: Spec, run: RunDir) -> datasets.Data:
    data = datasets.load(spec)
    trained_on = run.manifest().get("data_digest")
    if trained_on != f"sha256:{data.digest}":
        raise MlopsError(
            f"the data changed since {run.model_dir} was trained ({trained_on} then, "
            f"sha256:{data.digest} now); retrain with `mlops run`"
        )
    return data


def _predict(spec: Spec, model: Any, data: datasets.Data, names: Sequence[str]) -> Predictions:
    y_true = data.y_test.to_numpy()
    y_pred = np.asarray(model.predict(data.x_test))
    if spec.task == "regression":
        return Predictions(y_true.astype(np.float64), y_pred.astype(np.float64), None, [])
    labels = list(getattr(model, "classes_", []))
    labels += [c for c in np.unique(y_true) if c not in labels]
    proba = None
    if any(metrics.METRICS[n].needs == "scores" for n in names):
        if not hasattr(model, "predict_proba"):
            needing = [n for n in names if metrics.METRICS[n].needs == "scores"]
            raise spec.problem(
                "evaluation.metrics",
                f"{', '.join(needing)} need predicted probabilities, and this model has no "
                "predict_proba; drop them or choose an estimator that has it",
            )
        proba = np.asarray(model.predict_proba(data.x_test), dtype=np.float64)
    return Predictions(y_true, y_pred, proba, labels)


def _subset(p: Predictions, mask: np.ndarray[Any, Any]) -> Predictions:
    return Predictions(
        p.y_true[mask], p.y_pred[mask], None if p.proba is None else p.proba[mask], p.labels
    )


def _entry(value: float | None, interval: bootstrap.Interval | None) -> Estimate:
    finite = value is not None and bool(np.isfinite(value))
    if not finite or value is None:
        return Estimate(None)
    return Estimate(
        float(value), interval.low if interval else None, interval.high if interval else None
    )


def _measure(
    spec: Spec, names: Sequence[str], p: Predictions, confidence: Confidence | None
) -> dict[str, Estimate]:
    out: dict[str, Estimate] = {}
    for name in names:
        if p.y_true.size == 0:
            out[name] = _entry(None, None)
            continue
        metric = metrics.METRICS[name]
        value = _point(metric, p)
        samples = _resamples(metric, p, confidence) if confidence and value is not None else None
        interval = (
            bootstrap.percentile_interval(samples, confidence.level)
            if samples is not None and confidence
            else None
        )
        out[name] = _entry(value, interval)
    return out


def _scores_for(metric: metrics.Metric, p: Predictions) -> tuple[Any, dict[str, Any]]:
    assert p.proba is not None
    model_labels = p.labels[: p.proba.shape[1]]
    if metric.name == "roc_auc":
        return p.proba[:, 1], {}
    return p.proba, {"labels": model_labels}


def _point(metric: metrics.Metric, p: Predictions) -> float | None:
    """The metric on all rows; None where it is undefined (e.g. ROC AUC of one class)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # undefined metrics come back as None instead
            if metric.needs == "scores":
                scores, extra = _scores_for(metric, p)
                value = metric.compute(p.y_true, scores, **extra)
            else:
                value = metric.compute(p.y_true, p.y_pred)
    except ValueError:
        return None
    return value if np.isfinite(value) else None


def _resamples(
    metric: metrics.Metric, p: Predictions, confidence: Confidence
) -> np.ndarray[Any, Any]:
    b, seed = confidence.resamples, confidence.seed
    if metric.tasks == metrics.REGRESSION:
        return bootstrap.regression_resamples(metric.name, p.y_true, p.y_pred, b, seed)
    index = {label: i for i, label in enumerate(p.labels)}
    true_index = np.fromiter((index[v] for v in p.y_true), dtype=np.intp, count=p.y_true.size)
    if metric.needs == "labels":
        pred_index = np.fromiter((index[v] for v in p.y_pred), dtype=np.intp, count=p.y_pred.size)
        stack = bootstrap.confusion_resamples(true_index, pred_index, len(p.labels), b, seed)
        return bootstrap.from_confusion(metric.name, stack)
    assert p.proba is not None
    if metric.name == "log_loss" and int(true_index.max()) < p.proba.shape[1]:
        return bootstrap.log_loss_resamples(true_index, p.proba, b, seed)
    if metric.name == "roc_auc":
        positive = true_index == 1
        return bootstrap.auc_resamples(positive, p.proba[:, 1], b, seed)
    if metric.name == "roc_auc_ovr":  # macro average of one-vs-rest AUCs, as scikit-learn
        per_class = [
            bootstrap.auc_resamples(true_index == k, p.proba[:, k], b, seed)
            for k in range(p.proba.shape[1])
        ]
        averaged: np.ndarray[Any, Any] = np.mean(per_class, axis=0)
        return averaged
    scores, extra = _scores_for(metric, p)
    return bootstrap.generic_resamples(
        lambda y, s: metric.compute(y, s, **extra), p.y_true, scores, b, seed
    )


def _slice_mask(spec: Spec, frame: Any, item: Slice, index: int) -> np.ndarray[Any, Any]:
    if item.column not in frame.columns:
        raise spec.problem(
            f"evaluation.slices[{index}].where.column",
            f"slice {item.name!r}: column {item.column!r} is not in the test data",
        )
    column = frame[item.column]
    try:
        if item.op == "in":
            mask = column.isin(list(item.value))
        else:
            mask = {
                "==": column.__eq__,
                "!=": column.__ne__,
                "<": column.__lt__,
                "<=": column.__le__,
                ">": column.__gt__,
                ">=": column.__ge__,
            }[item.op](item.value)
    except TypeError as err:
        raise spec.problem(
            f"evaluation.slices[{index}].where.value",
            f"slice {item.name!r}: cannot compare column {item.column!r} ({column.dtype}) "
            f"with {item.value!r}: {err}",
        ) from None
    return np.asarray(mask.fillna(False), dtype=bool)


def _latency(model: Any, data: datasets.Data, batch_size: int, repeats: int) -> tuple[float, float]:
    rows = np.resize(np.arange(len(data.x_test)), batch_size)
    batch = data.x_test.iloc[rows]
    for _ in range(LATENCY_WARMUP):
        model.predict(batch)
    timings = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter_ns()
        model.predict(batch)
        timings[i] = (time.perf_counter_ns() - start) / 1e6
    p50, p95 = np.percentile(timings, [50, 95])
    return float(p50), float(p95)

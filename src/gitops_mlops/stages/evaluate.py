"""Stage 3: measure the model on the test data: metrics, confidence intervals, slices, latency."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gitops_mlops import bundle, curves, datasets, estimates, metrics, predictions
from gitops_mlops.integrations.storage import StorageSettings
from gitops_mlops.predictions import Predictions
from gitops_mlops.records import predictions as prediction_records
from gitops_mlops.records.metrics import Estimate, IntervalSettings, Metrics, MetricTable
from gitops_mlops.records.predictions import PredictionSet
from gitops_mlops.rundir import RunDir
from gitops_mlops.spec.model import Confidence, Slice, Spec

LATENCY_WARMUP = 5


@dataclass(frozen=True)
class EvaluateContext:
    spec: Spec
    run: RunDir
    model: Any = None  # the trained model when the run already holds it in memory
    data: datasets.Data | None = None
    storage: StorageSettings | None = None  # to read the data again (mlops evaluate RUN_DIR)


def evaluate(ctx: EvaluateContext) -> Metrics:
    """Measure the model; the result is written to metrics.json and returned."""
    spec, run = ctx.spec, ctx.run
    model = (
        ctx.model
        if ctx.model is not None
        else bundle.load_verified(run.model_dir, spec.model.allow_modules)
    )
    data = ctx.data or datasets.load_as_trained(spec, run, ctx.storage)
    names = [n for n in spec.evaluation.metrics if metrics.METRICS[n].needs != "latency"]
    predicted = _predict(spec, model, data, names)
    confidence = spec.evaluation.confidence
    overall = _measure(names, predicted, confidence)
    slices: dict[str, MetricTable] = {}
    slice_rows: dict[str, int] = {}
    masks: dict[str, np.ndarray[Any, Any]] = {}
    frame = data.x_test.assign(**{data.target: data.y_test})
    for index, item in enumerate(spec.evaluation.slices):
        mask = masks[item.name] = _slice_mask(spec, frame, item, index)
        slice_rows[item.name] = int(mask.sum())
        slices[item.name] = _measure(names, predicted.subset(mask), confidence)
    # Kept for the champion comparison, `mlops diff` and the report's pictures.
    found = PredictionSet(spec.task, predicted, masks, prediction_records.rows_digest(frame))
    run.write_predictions(found)
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
        positive_label=predicted.positive_label,
        curves=curves.summarise(predicted, spec.task),
    )
    run.write_metrics(result)
    return result


def _predict(spec: Spec, model: Any, data: datasets.Data, names: Sequence[str]) -> Predictions:
    y_true = data.y_test.to_numpy()
    y_pred = np.asarray(model.predict(data.x_test))
    if spec.task == "regression":
        return Predictions.regression(y_true, y_pred)
    classes = list(getattr(model, "classes_", []))
    proba = None
    needing = [n for n in names if metrics.METRICS[n].needs == "scores"]
    if needing and not hasattr(model, "predict_proba"):
        raise spec.problem(
            "evaluation.metrics",
            f"{', '.join(needing)} need predicted probabilities, and this model has no "
            "predict_proba; drop them or choose an estimator that has it",
        )
    if hasattr(model, "predict_proba"):  # also for the ROC and precision-recall pictures
        proba = np.asarray(model.predict_proba(data.x_test), dtype=np.float64)
    labels = predictions.labels_of(y_true, y_pred, classes)
    _check_classes(spec, names, labels)
    return Predictions.classification(y_true, y_pred, proba, classes, _positive(spec, labels))


def _check_classes(spec: Spec, names: Sequence[str], labels: Sequence[Any]) -> None:
    """Metrics for two classes on more, or for three or more on two: the spec is wrong."""
    for name in names:
        metric = metrics.METRICS[name]
        wrong = (metric.classes == "binary" and len(labels) > 2) or (
            metric.classes == "multiclass" and len(labels) < 3
        )
        if wrong:
            raise spec.problem(
                f"evaluation.metrics[{spec.evaluation.metrics.index(name)}]",
                f"{metrics.misfit(metric, len(labels))} (classes: {_shown(labels)})",
            )


def _positive(spec: Spec, labels: Sequence[Any]) -> int | None:
    """The index of evaluation.positive_label among the labels (None: the greatest label)."""
    wanted = spec.evaluation.positive_label
    if wanted is None:
        return None
    for index, label in enumerate(labels):
        if label == wanted and isinstance(label, bool) == isinstance(wanted, bool):
            return index
    raise spec.problem(
        "evaluation.positive_label",
        f"positive_label {wanted!r} is not a class of the data; its classes are {_shown(labels)}",
    )


def _shown(labels: Sequence[Any]) -> str:
    return ", ".join(repr(label) for label in labels)


def _entry(e: estimates.Estimate) -> Estimate:
    """The record of an estimate, with how its interval was made or why it has no value."""
    low, high = (e.interval.low, e.interval.high) if e.interval else (None, None)
    return Estimate(e.value, low, high, method=e.method, reason=e.reason)


def _measure(
    names: Sequence[str], p: Predictions, confidence: Confidence | None
) -> dict[str, Estimate]:
    return {
        name: _entry(estimates.estimate(metrics.METRICS[name], p, confidence)) for name in names
    }


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

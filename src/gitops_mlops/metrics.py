"""The metric registry: every metric's name, task, direction and how it is computed.

Validation, evaluation and the gate all read this one table. Importing it must stay cheap
(no numpy, no scikit-learn): compute functions import what they need when called.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

Direction = Literal["higher", "lower"]
Task = Literal["classification", "regression"]
Needs = Literal["labels", "scores", "latency"]
ComputeFn = Callable[[Any, Any], float]

CLASSIFICATION: frozenset[Task] = frozenset({"classification"})
REGRESSION: frozenset[Task] = frozenset({"regression"})
ANY_TASK: frozenset[Task] = CLASSIFICATION | REGRESSION


@dataclass(frozen=True)
class Metric:
    name: str
    tasks: frozenset[Task]
    direction: Direction
    needs: Needs  # labels: predictions; scores: predict_proba; latency: timed by the evaluator
    description: str
    sklearn_function: str | None = None  # name in sklearn.metrics
    kwargs: tuple[tuple[str, Any], ...] = ()
    classes: Literal["any", "binary", "multiclass"] = "any"

    def better(self, candidate: float, baseline: float) -> bool:
        """True when `candidate` is strictly better than `baseline` for this metric."""
        return candidate > baseline if self.direction == "higher" else candidate < baseline

    def compute(self, y_true: Any, y_other: Any, **extra: Any) -> float:
        """Compute on labels (or scores, see `needs`). Imports scikit-learn on first use.

        `extra` goes to the scikit-learn function (e.g. `labels` for log_loss).
        """
        if self.sklearn_function is None:
            raise ValueError(f"metric {self.name} is measured by the evaluator, not computed")
        from sklearn import metrics as skm

        function: Callable[..., float] = getattr(skm, self.sklearn_function)
        return float(function(y_true, y_other, **dict(self.kwargs), **extra))


def _m(
    name: str,
    tasks: frozenset[Task],
    direction: Direction,
    description: str,
    function: str | None,
    needs: Needs = "labels",
    classes: Literal["any", "binary", "multiclass"] = "any",
    **kwargs: Any,
) -> Metric:
    return Metric(
        name, tasks, direction, needs, description, function, tuple(kwargs.items()), classes
    )


_C, _R = CLASSIFICATION, REGRESSION
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        _m("accuracy", _C, "higher", "Share of correct predictions.", "accuracy_score"),
        _m(
            "balanced_accuracy",
            _C,
            "higher",
            "Mean recall over classes.",
            "balanced_accuracy_score",
        ),
        _m(
            "precision_macro",
            _C,
            "higher",
            "Precision averaged over classes.",
            "precision_score",
            average="macro",
            zero_division=0,
        ),
        _m(
            "recall_macro",
            _C,
            "higher",
            "Recall averaged over classes.",
            "recall_score",
            average="macro",
            zero_division=0,
        ),
        _m("f1_macro", _C, "higher", "F1 averaged over classes.", "f1_score", average="macro"),
        _m(
            "precision_weighted",
            _C,
            "higher",
            "Precision averaged over classes, weighted by support.",
            "precision_score",
            average="weighted",
            zero_division=0,
        ),
        _m(
            "recall_weighted",
            _C,
            "higher",
            "Recall averaged over classes, weighted by support.",
            "recall_score",
            average="weighted",
            zero_division=0,
        ),
        _m(
            "f1_weighted",
            _C,
            "higher",
            "F1 averaged over classes, weighted by support.",
            "f1_score",
            average="weighted",
        ),
        _m(
            "roc_auc",
            _C,
            "higher",
            "Area under the ROC curve (binary classification).",
            "roc_auc_score",
            needs="scores",
            classes="binary",
        ),
        _m(
            "roc_auc_ovr",
            _C,
            "higher",
            "One-vs-rest ROC AUC (multiclass classification).",
            "roc_auc_score",
            needs="scores",
            classes="multiclass",
            multi_class="ovr",
        ),
        _m(
            "log_loss",
            _C,
            "lower",
            "Cross-entropy of predicted probabilities.",
            "log_loss",
            needs="scores",
        ),
        _m("r2", _R, "higher", "Coefficient of determination.", "r2_score"),
        _m("mae", _R, "lower", "Mean absolute error.", "mean_absolute_error"),
        _m("rmse", _R, "lower", "Root mean squared error.", "root_mean_squared_error"),
        _m(
            "mape",
            _R,
            "lower",
            "Mean absolute percentage error (as a fraction).",
            "mean_absolute_percentage_error",
        ),
        _m(
            "latency_p50_ms",
            ANY_TASK,
            "lower",
            "Median predict latency in milliseconds (evaluation.latency).",
            None,
            needs="latency",
        ),
        _m(
            "latency_p95_ms",
            ANY_TASK,
            "lower",
            "95th percentile predict latency in milliseconds (evaluation.latency).",
            None,
            needs="latency",
        ),
    )
}

DEFAULT_METRICS: dict[Task, tuple[str, ...]] = {
    "classification": ("accuracy", "f1_macro"),
    "regression": ("r2", "rmse", "mae"),
}


def get(name: str) -> Metric | None:
    return METRICS.get(name)


def names_for(task: Task) -> list[str]:
    return [m.name for m in METRICS.values() if task in m.tasks]

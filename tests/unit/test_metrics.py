"""The metric registry: every entry scores as scikit-learn does, resamples consistently with
its own score, has an interval, and points the right way. Adding a metric is adding one entry;
the tests below walk every entry, so a new one is checked without a new test."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import pytest
from sklearn import datasets
from sklearn import metrics as skm
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from gitops_mlops import bootstrap, estimates, metrics
from gitops_mlops.predictions import Predictions
from gitops_mlops.spec.model import Confidence
from tests.conftest import run_cli

COMPUTED = [m for m in metrics.METRICS.values() if m.rule is not None]


@cache
def problem(kind: str) -> Predictions:
    """A real model's predictions on held-out rows of a real dataset."""
    loader = {
        "binary": datasets.load_breast_cancer,
        "multiclass": datasets.load_iris,
        "regression": datasets.load_diabetes,
    }[kind]
    x, y = loader(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=0)
    if kind == "regression":
        return Predictions.regression(y_test, Ridge().fit(x_train, y_train).predict(x_test))
    # Few features and strong regularisation: a model that is good but makes mistakes.
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.05)).fit(x_train[:, :4], y_train)
    x_test = x_test[:, :4]
    return Predictions.classification(
        y_test, model.predict(x_test), model.predict_proba(x_test), model.classes_
    )


def problems_for(metric: metrics.Metric) -> list[str]:
    if metric.tasks == metrics.REGRESSION:
        return ["regression"]
    return {"binary": ["binary"], "multiclass": ["multiclass"]}.get(
        metric.classes, ["binary", "multiclass"]
    )


CASES = [(m.name, kind) for m in COMPUTED for kind in problems_for(m)]


def on_rows(p: Predictions, rows: np.ndarray) -> Predictions:
    return p.subset(rows)


def full_rule_value(metric: metrics.Metric, p: Predictions) -> float:
    """The rule's own computation on all rows (every row drawn once)."""
    rule = metric.rule
    if isinstance(rule, metrics.FromConfusion):
        return float(rule.formula(estimates._table(p))[0])
    if isinstance(rule, metrics.FromRowSums):
        return float(rule.combine([t.sum(keepdims=True) for t in rule.terms(p)], p.n)[0])
    assert isinstance(rule, metrics.FromWeights)
    return float(rule.estimate(p, None, np.ones((1, p.n)))[0])


def resampled_rule_values(metric: metrics.Metric, p: Predictions, rows: np.ndarray) -> np.ndarray:
    """The rule's values for explicit resampled rows (one row of `rows` per resample)."""
    rule = metric.rule
    if isinstance(rule, metrics.FromConfusion):
        k = len(p.labels)
        cells = p.true_index[rows] * k + p.pred_index[rows]
        tables = np.stack([np.bincount(c, minlength=k * k) for c in cells]).reshape(-1, k, k)
        return rule.formula(bootstrap.Table(tables, p.positive))
    return estimates.resamples(metric, p, rows.shape[0], seed=7)


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_every_metric_resamples_what_it_scores(name: str, kind: str) -> None:
    """The fast rule agrees with the score function on all rows and on each resample."""
    metric = metrics.METRICS[name]
    p = problem(kind)
    assert metric.score is not None
    value = metric.score(p)
    assert full_rule_value(metric, p) == pytest.approx(value, rel=1e-9)
    rows = np.concatenate(list(bootstrap.index_chunks(p.n, 25, seed=7)))
    got = resampled_rule_values(metric, p, rows)
    for i, drawn in enumerate(rows):
        resampled = on_rows(p, drawn)
        reason = metric.undefined(resampled) if metric.undefined else None
        if reason is None:
            assert got[i] == pytest.approx(metric.score(resampled), rel=1e-9), i
        else:
            assert not np.isfinite(got[i]), i


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_every_metric_has_an_interval_around_its_value(name: str, kind: str) -> None:
    metric = metrics.METRICS[name]
    result = estimates.estimate(metric, problem(kind), Confidence(resamples=300, seed=1))
    assert result.value is not None and result.interval is not None, result.reason
    assert result.interval.low <= result.value <= result.interval.high
    assert result.interval.low < result.interval.high
    assert result.method in estimates.METHODS
    proportion = isinstance(metric.rule, metrics.FromConfusion) and metric.rule.proportion
    assert (result.method == "wilson") == bool(proportion)


def perfect(p: Predictions) -> Predictions:
    if p.proba is None and not p.labels:
        return Predictions.regression(p.y_true, p.y_true)
    k = len(p.model_classes)
    one_hot = np.eye(k)[p.true_index] * 0.9 + 0.1 / k  # sure and right, and still sums to 1
    return Predictions.classification(p.y_true, p.y_true, one_hot, p.model_classes)


def shuffled(p: Predictions) -> Predictions:
    order = np.random.default_rng(3).permutation(p.n)
    if p.proba is None and not p.labels:
        return Predictions.regression(p.y_true, p.y_pred[order])
    assert p.proba is not None
    return Predictions.classification(p.y_true, p.y_pred[order], p.proba[order], p.model_classes)


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_every_metric_points_the_way_its_direction_says(name: str, kind: str) -> None:
    """Perfect predictions beat the model, which beats its own predictions shuffled."""
    metric = metrics.METRICS[name]
    assert metric.score is not None
    model = problem(kind)
    best, real, worst = (metric.score(p) for p in (perfect(model), model, shuffled(model)))
    assert metric.better(best, real) and metric.better(real, worst), (best, real, worst)


def test_every_entry_is_consistent() -> None:
    for metric in metrics.METRICS.values():
        assert metric.tasks and metric.direction in ("higher", "lower")
        assert (metric.needs == "latency") == (metric.rule is None) == (metric.score is None)
        if metric.needs == "scores" or metric.classes != "any" or metric.positive_class:
            assert metric.tasks == metrics.CLASSIFICATION, metric.name
        if metric.instead is not None:
            other = metrics.METRICS[metric.instead]
            assert other.tasks == metric.tasks and other.classes != metric.classes
        assert metric.description.endswith(".")


def test_aliases_are_unambiguous_and_suggest_their_metric() -> None:
    names = set(metrics.METRICS)
    seen: dict[str, str] = {}
    for metric in metrics.METRICS.values():
        for alias in metric.aliases:
            assert alias not in names and alias not in seen, alias
            seen[alias] = metric.name
            assert metrics.suggestion(alias) == metric.name


@pytest.mark.parametrize(
    ("typed", "task", "suggested"),
    [
        ("f1_score", "classification", "f1"),
        ("F1", "classification", "f1"),
        ("AUC", "classification", "roc_auc"),
        ("precison", "classification", "precision"),
        ("macro-f1", "classification", "f1_macro"),
        ("mse", "regression", "rmse"),
        ("mean_absolute_eror", "regression", "mae"),
        ("recal_macro", "classification", "recall_macro"),
    ],
)
def test_suggestions(typed: str, task: metrics.Task, suggested: str) -> None:
    assert metrics.suggestion(typed, task) == suggested


def test_no_suggestion_for_something_else() -> None:
    assert metrics.suggestion("banana", "classification") is None


# --- the point estimates, computed independently with scikit-learn ---------------------------

Y_TRUE = np.array([0, 1, 2, 2, 1, 0, 1, 2, 0, 1])
Y_PRED = np.array([0, 2, 2, 2, 1, 0, 0, 2, 1, 1])
PROBA = np.eye(3)[Y_PRED] * 0.7 + 0.1
B_TRUE = np.array(["no", "yes", "yes", "no", "yes", "no", "no", "yes"])
B_PRED = np.array(["no", "yes", "no", "no", "yes", "yes", "no", "yes"])
B_YES = np.array([0.2, 0.9, 0.4, 0.1, 0.8, 0.6, 0.3, 0.7])
R_TRUE = np.array([3.0, 5.0, 2.5, 7.0, 4.0])
R_PRED = np.array([2.5, 5.0, 3.0, 8.0, 4.5])
MULTI = Predictions.classification(Y_TRUE, Y_PRED, PROBA, [0, 1, 2])
BINARY = Predictions.classification(B_TRUE, B_PRED, np.c_[1 - B_YES, B_YES], ["no", "yes"])
NO_IS_POSITIVE = Predictions.classification(
    B_TRUE, B_PRED, np.c_[1 - B_YES, B_YES], ["no", "yes"], positive=0
)
REGRESSION = Predictions.regression(R_TRUE, R_PRED)

EXPECTED: dict[str, list[tuple[Predictions, float]]] = {
    "accuracy": [(MULTI, skm.accuracy_score(Y_TRUE, Y_PRED))],
    "balanced_accuracy": [(MULTI, skm.balanced_accuracy_score(Y_TRUE, Y_PRED))],
    "f1_macro": [(MULTI, skm.f1_score(Y_TRUE, Y_PRED, average="macro"))],
    "f1_weighted": [(MULTI, skm.f1_score(Y_TRUE, Y_PRED, average="weighted"))],
    "precision_macro": [(MULTI, skm.precision_score(Y_TRUE, Y_PRED, average="macro"))],
    "precision_weighted": [(MULTI, skm.precision_score(Y_TRUE, Y_PRED, average="weighted"))],
    "recall_macro": [(MULTI, skm.recall_score(Y_TRUE, Y_PRED, average="macro"))],
    "recall_weighted": [(MULTI, skm.recall_score(Y_TRUE, Y_PRED, average="weighted"))],
    "roc_auc_ovr": [(MULTI, skm.roc_auc_score(Y_TRUE, PROBA, multi_class="ovr"))],
    "log_loss": [(MULTI, skm.log_loss(Y_TRUE, PROBA))],
    # yes/no: "yes" is the greater label, so the default positive class.
    "precision": [(BINARY, 3 / 4), (NO_IS_POSITIVE, 3 / 4)],
    "recall": [(BINARY, 3 / 4), (NO_IS_POSITIVE, 3 / 4)],
    "f1": [(BINARY, 3 / 4), (NO_IS_POSITIVE, 3 / 4)],
    "roc_auc": [(BINARY, skm.roc_auc_score(B_TRUE == "yes", B_YES))],
    "average_precision": [
        (BINARY, skm.average_precision_score(B_TRUE == "yes", B_YES)),
        (NO_IS_POSITIVE, skm.average_precision_score(B_TRUE == "no", 1 - B_YES)),
    ],
    "r2": [(REGRESSION, skm.r2_score(R_TRUE, R_PRED))],
    "mae": [(REGRESSION, float(np.mean(np.abs(R_TRUE - R_PRED))))],
    "rmse": [(REGRESSION, float(np.sqrt(np.mean((R_TRUE - R_PRED) ** 2))))],
    "mape": [(REGRESSION, float(np.mean(np.abs((R_TRUE - R_PRED) / R_TRUE))))],
}


def test_the_independent_table_covers_every_computed_metric() -> None:
    assert set(EXPECTED) == {m.name for m in COMPUTED}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_score_matches_an_independent_computation(name: str) -> None:
    metric = metrics.METRICS[name]
    assert metric.score is not None
    for predictions, expected in EXPECTED[name]:
        assert metric.score(predictions) == pytest.approx(expected)


def test_positive_class_counts_of_a_small_binary_case() -> None:
    """precision = 3 of 4 predicted yes; with `no` positive: 3 of 4 predicted no, too."""
    table = estimates._table(BINARY)
    assert table.at_positive(table.tp)[0] == 3 and table.at_positive(table.predicted)[0] == 4
    assert BINARY.positive_label == "yes" and NO_IS_POSITIVE.positive_label == "no"


def test_directions() -> None:
    lower = {m.name for m in metrics.METRICS.values() if m.direction == "lower"}
    assert lower == {"log_loss", "mae", "rmse", "mape", "latency_p50_ms", "latency_p95_ms"}
    rmse, accuracy = metrics.METRICS["rmse"], metrics.METRICS["accuracy"]
    assert rmse.better(1.0, 2.0) and not rmse.better(2.0, 1.0)
    assert accuracy.better(0.9, 0.8) and not accuracy.better(0.8, 0.8)


def test_latency_is_measured_not_computed() -> None:
    latency = metrics.METRICS["latency_p95_ms"]
    assert latency.score is None and latency.rule is None
    with pytest.raises(ValueError, match="measured by the evaluator"):
        estimates.resamples(latency, REGRESSION, 10, 0)


def test_defaults_fit_their_task() -> None:
    for task, names in metrics.DEFAULT_METRICS.items():
        assert all(task in metrics.METRICS[n].tasks for n in names)


def test_mlops_metrics_lists_the_registry() -> None:
    result = run_cli("metrics")
    assert result.code == 0
    assert [row.split()[0] for row in result.out.splitlines()] == list(metrics.METRICS)


def test_undefined_metrics_say_why() -> None:
    one_class = Predictions.classification(
        np.array([1, 1, 1]), np.array([1, 1, 1]), np.ones((3, 1)), [1]
    )
    result = estimates.estimate(metrics.METRICS["roc_auc"], one_class, Confidence())
    assert result.value is None and result.interval is None
    assert result.reason == "the rows hold one class (1); it needs both classes"
    held: Any = estimates.estimate(metrics.METRICS["recall"], one_class, Confidence())
    assert held.value == 1.0 and held.method == "wilson"

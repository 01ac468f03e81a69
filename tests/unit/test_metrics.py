"""The metric registry: one entry per metric, computing what scikit-learn computes."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from gitops_mlops import metrics
from tests.conftest import run_cli

Y_TRUE = np.array([0, 1, 2, 2, 1, 0, 1, 2, 0, 1])
Y_PRED = np.array([0, 2, 2, 2, 1, 0, 0, 2, 1, 1])
PROBA = np.eye(3)[Y_PRED] * 0.7 + 0.1
R_TRUE = np.array([3.0, 5.0, 2.5, 7.0, 4.0])
R_PRED = np.array([2.5, 5.0, 3.0, 8.0, 4.5])

EXPECTED = {
    "accuracy": (Y_TRUE, Y_PRED, skm.accuracy_score(Y_TRUE, Y_PRED)),
    "balanced_accuracy": (Y_TRUE, Y_PRED, skm.balanced_accuracy_score(Y_TRUE, Y_PRED)),
    "f1_macro": (Y_TRUE, Y_PRED, skm.f1_score(Y_TRUE, Y_PRED, average="macro")),
    "f1_weighted": (Y_TRUE, Y_PRED, skm.f1_score(Y_TRUE, Y_PRED, average="weighted")),
    "precision_macro": (Y_TRUE, Y_PRED, skm.precision_score(Y_TRUE, Y_PRED, average="macro")),
    "recall_weighted": (Y_TRUE, Y_PRED, skm.recall_score(Y_TRUE, Y_PRED, average="weighted")),
    "roc_auc_ovr": (Y_TRUE, PROBA, skm.roc_auc_score(Y_TRUE, PROBA, multi_class="ovr")),
    "log_loss": (Y_TRUE, PROBA, skm.log_loss(Y_TRUE, PROBA)),
    "r2": (R_TRUE, R_PRED, skm.r2_score(R_TRUE, R_PRED)),
    "mae": (R_TRUE, R_PRED, float(np.mean(np.abs(R_TRUE - R_PRED)))),
    "rmse": (R_TRUE, R_PRED, float(np.sqrt(np.mean((R_TRUE - R_PRED) ** 2)))),
    "mape": (R_TRUE, R_PRED, float(np.mean(np.abs((R_TRUE - R_PRED) / R_TRUE)))),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_compute_matches_an_independent_computation(name: str) -> None:
    y_true, other, expected = EXPECTED[name]
    metric = metrics.get(name)
    assert metric is not None
    assert metric.compute(y_true, other) == pytest.approx(expected)


def test_directions() -> None:
    lower = {m.name for m in metrics.METRICS.values() if m.direction == "lower"}
    assert lower == {"log_loss", "mae", "rmse", "mape", "latency_p50_ms", "latency_p95_ms"}
    rmse, accuracy = metrics.METRICS["rmse"], metrics.METRICS["accuracy"]
    assert rmse.better(1.0, 2.0) and not rmse.better(2.0, 1.0)
    assert accuracy.better(0.9, 0.8) and not accuracy.better(0.8, 0.8)


def test_latency_is_measured_not_computed() -> None:
    with pytest.raises(ValueError, match="measured by the evaluator"):
        metrics.METRICS["latency_p95_ms"].compute([1], [1])


def test_defaults_fit_their_task() -> None:
    for task, names in metrics.DEFAULT_METRICS.items():
        assert all(task in metrics.METRICS[n].tasks for n in names)


def test_mlops_metrics_lists_the_registry() -> None:
    result = run_cli("metrics")
    assert result.code == 0
    assert [row.split()[0] for row in result.out.splitlines()] == list(metrics.METRICS)

"""The summaries evaluation records for the report's pictures, checked against direct
computations, bounded whatever the rows, and read back from metrics.json."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gitops_mlops import curves
from gitops_mlops.errors import MlopsError
from gitops_mlops.predictions import Predictions
from gitops_mlops.records.curves import MAX_POINTS, RESIDUAL_BINS
from gitops_mlops.records.metrics import Estimate, Metrics


def _binary(n: int, seed: int = 0) -> Predictions:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, n)
    score = 1 / (1 + np.exp(-(2.0 * truth - 1 + rng.normal(0, 1.2, n))))  # no ties
    proba = np.column_stack([1 - score, score])
    return Predictions.classification(truth, (score > 0.5).astype(int), proba, [0, 1])


def test_roc_is_bounded_and_keeps_its_area() -> None:
    p = _binary(4_000)
    found = curves.roc(p)
    assert 50 < len(found.x) <= MAX_POINTS
    assert (found.x[0], found.y[0]) == (0.0, 0.0) and (found.x[-1], found.y[-1]) == (1.0, 1.0)
    assert all(np.diff(found.x) >= 0) and all(np.diff(found.y) >= 0)
    # The area by Mann-Whitney (a pair of rows, one of each class, ordered by score).
    pos, neg = p.positive_scores[p.is_positive], p.positive_scores[~p.is_positive]
    ranks = np.argsort(np.argsort(np.concatenate([pos, neg]))) + 1
    auc = (ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size)
    assert found.area == pytest.approx(auc, abs=1e-9)
    # The kept vertices still trace the curve: the trapezoid area under them is the AUC.
    assert np.trapezoid(found.y, found.x) == pytest.approx(auc, abs=0.01)


def test_precision_recall_rises_in_recall_and_names_average_precision() -> None:
    p = _binary(5_000, seed=1)
    found = curves.precision_recall(p)
    assert len(found.x) <= MAX_POINTS and all(np.diff(found.x) >= 0)
    assert found.x[0] == 0.0 and found.x[-1] == 1.0
    # At full recall, precision is the share of positive rows.
    assert found.y[-1] == pytest.approx(p.is_positive.mean(), abs=1e-6)
    order = np.argsort(-p.positive_scores, kind="stable")
    hits = p.is_positive[order]
    precision_at = np.cumsum(hits) / np.arange(1, hits.size + 1)
    ap = float((precision_at * hits).sum() / hits.sum())  # no tied scores in this fixture
    assert found.area == pytest.approx(ap, abs=1e-6)


def test_calibration_of_calibrated_scores_follows_the_diagonal() -> None:
    rng = np.random.default_rng(2)
    score = rng.uniform(0, 1, 50_000)
    truth = (rng.uniform(0, 1, score.size) < score).astype(int)
    p = Predictions.classification(truth, (score > 0.5).astype(int), np.c_[1 - score, score])
    found = curves.calibration(p)
    assert len(found.x) == 10
    assert np.allclose(found.x, found.y, atol=0.03)


def test_confusion_counts_rows_by_true_and_predicted_class() -> None:
    truth = np.array(["a", "b", "c", "a", "b", "c", "c"])
    pred = np.array(["a", "c", "c", "b", "b", "c", "a"])
    found = curves.confusion(Predictions.classification(truth, pred, None, ["a", "b", "c"]))
    assert found is not None and found.labels == ("a", "b", "c")
    expected = [[int(((truth == t) & (pred == q)).sum()) for q in "abc"] for t in "abc"]
    assert [list(row) for row in found.counts] == expected


def test_multiclass_has_a_confusion_table_and_no_binary_curves() -> None:
    truth = np.array([0, 1, 2, 2])
    proba = np.full((4, 3), 1 / 3)
    summary = curves.summarise(
        Predictions.classification(truth, truth, proba, [0, 1, 2]), "classification"
    )
    assert summary.confusion is not None and summary.roc is None and summary.residuals is None


def test_residuals_count_every_row_with_the_tails_in_the_end_bins() -> None:
    rng = np.random.default_rng(3)
    truth = rng.normal(0, 1, 1_000)
    pred = truth - rng.normal(0, 1, truth.size)
    pred[0] = 1e9  # one wild prediction
    found = curves.residuals(Predictions.regression(truth, pred))
    assert found is not None and len(found.counts) == RESIDUAL_BINS
    assert sum(found.counts) == truth.size
    low, high = np.quantile(truth - pred, [0.01, 0.99])
    assert found.edges[0] == pytest.approx(low, abs=1e-5)
    assert found.edges[-1] == pytest.approx(high, abs=1e-5)
    assert found.counts[0] >= 10  # the outlier and the rest of the lowest percent


def test_the_summary_reads_back_from_metrics_json() -> None:
    p = _binary(500)
    measured = Metrics(
        {"accuracy": Estimate(0.9, 0.85, 0.95)},
        curves=curves.summarise(p, "classification"),
    )
    again = Metrics.from_json(json.loads(json.dumps(measured.to_json())), "metrics.json")
    assert again == measured
    assert again.curves is not None and again.curves.calibration is not None
    # An older metrics.json, without curves, still reads.
    raw = measured.to_json()
    del raw["curves"]
    assert Metrics.from_json(raw, "metrics.json").curves is None


@pytest.mark.parametrize(
    ("damage", "field"),
    [
        (lambda c: c["roc"].update(y=[0.5]), "curves.roc.y"),
        (lambda c: c["confusion"]["counts"].__setitem__(0, [1, -1]), "curves.confusion.counts"),
        (lambda c: c["roc"].update(x="0, 1"), "curves.roc.x"),
    ],
)
def test_a_damaged_summary_names_its_field(damage: object, field: str) -> None:
    raw = Metrics({}, curves=curves.summarise(_binary(200), "classification")).to_json()
    damage(raw["curves"])  # type: ignore[operator]
    with pytest.raises(MlopsError, match=field.replace(".", r"\.")):
        Metrics.from_json(raw, "metrics.json")

"""Vectorised bootstrap: each resample's metric equals scikit-learn's on that resample."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn import metrics as skm

from gitops_mlops import bootstrap

LABEL_METRICS = {
    "accuracy": skm.accuracy_score,
    "balanced_accuracy": skm.balanced_accuracy_score,
    "precision_macro": lambda t, p: skm.precision_score(t, p, average="macro", zero_division=0),
    "recall_macro": lambda t, p: skm.recall_score(t, p, average="macro", zero_division=0),
    "f1_macro": lambda t, p: skm.f1_score(t, p, average="macro", zero_division=0),
    "precision_weighted": lambda t, p: skm.precision_score(
        t, p, average="weighted", zero_division=0
    ),
    "recall_weighted": lambda t, p: skm.recall_score(t, p, average="weighted", zero_division=0),
    "f1_weighted": lambda t, p: skm.f1_score(t, p, average="weighted", zero_division=0),
}


def expand(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Label arrays whose confusion matrix is `cm`."""
    k = cm.shape[0]
    true = np.repeat(np.repeat(np.arange(k), k), cm.ravel())
    pred = np.repeat(np.tile(np.arange(k), k), cm.ravel())
    return true, pred


@settings(max_examples=60, deadline=None)
@given(
    cm=arrays(
        np.int64,
        st.tuples(st.integers(2, 4)).map(lambda t: (t[0], t[0])),
        elements=st.integers(0, 6),
    ).filter(lambda m: m.sum() > 0)
)
def test_label_metrics_from_a_confusion_matrix_match_scikit_learn(cm: np.ndarray) -> None:
    true, pred = expand(cm)
    import warnings

    for name, reference in LABEL_METRICS.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = reference(true, pred)
        got = bootstrap.from_confusion(name, cm[np.newaxis])[0]
        assert got == pytest.approx(expected), name


def explicit_resamples(n: int, resamples: int, seed: int) -> np.ndarray:
    return np.concatenate(list(bootstrap._index_chunks(n, resamples, seed)))


def test_auc_of_each_resample_matches_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    n = 60
    positive = rng.random(n) < 0.4
    scores = np.round(rng.random(n) + positive * 0.3, 1).astype(np.float64)  # ties
    got = bootstrap.auc_resamples(positive, scores, 50, seed=9)
    for i, rows in enumerate(explicit_resamples(n, 50, 9)):
        if positive[rows].all() or not positive[rows].any():
            assert np.isnan(got[i])
        else:
            assert got[i] == pytest.approx(skm.roc_auc_score(positive[rows], scores[rows]))


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("mae", skm.mean_absolute_error),
        ("rmse", skm.root_mean_squared_error),
        ("mape", skm.mean_absolute_percentage_error),
        ("r2", skm.r2_score),
    ],
)
def test_regression_resamples_match_scikit_learn(name: str, reference: object) -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(10, 3, 80)
    pred = y + rng.normal(0, 1, 80)
    got = bootstrap.regression_resamples(name, y, pred, 40, seed=4)
    for i, rows in enumerate(explicit_resamples(80, 40, 4)):
        assert got[i] == pytest.approx(reference(y[rows], pred[rows]))  # type: ignore[operator]


def test_log_loss_resamples_match_scikit_learn() -> None:
    rng = np.random.default_rng(2)
    proba = rng.dirichlet([1, 1, 1], size=50)
    true = rng.integers(0, 3, 50)
    got = bootstrap.log_loss_resamples(true, proba, 30, seed=5)
    for i, rows in enumerate(explicit_resamples(50, 30, 5)):
        assert got[i] == pytest.approx(skm.log_loss(true[rows], proba[rows], labels=[0, 1, 2]))


def test_multinomial_intervals_agree_with_resampling_rows() -> None:
    """Drawing confusion matrices is the row bootstrap in distribution: same interval."""
    rng = np.random.default_rng(3)
    true = rng.integers(0, 3, 400)
    pred = np.where(rng.random(400) < 0.8, true, rng.integers(0, 3, 400))
    stack = bootstrap.confusion_resamples(true, pred, 3, 4000, seed=1)
    fast = bootstrap.percentile_interval(bootstrap.from_confusion("f1_macro", stack), 0.95)
    rows = explicit_resamples(400, 4000, 2)
    slow_samples = np.array([skm.f1_score(true[r], pred[r], average="macro") for r in rows])
    slow = bootstrap.percentile_interval(slow_samples, 0.95)
    assert fast is not None and slow is not None
    assert fast.low == pytest.approx(slow.low, abs=0.01)
    assert fast.high == pytest.approx(slow.high, abs=0.01)


def test_percentile_interval_ignores_undefined_resamples() -> None:
    samples = np.array([np.nan, 1.0, 2.0, 3.0, np.nan])
    interval = bootstrap.percentile_interval(samples, 0.5)
    assert interval is not None and (interval.low, interval.high) == (1.5, 2.5)
    assert bootstrap.percentile_interval(np.array([np.nan]), 0.9) is None


@pytest.mark.parametrize("metric", ["rmse", "r2", "mae", "roc_auc", "log_loss"])
def test_little_bootstraps_give_the_textbook_interval(
    metric: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over many rows, the bag of little bootstraps stands in for resampling rows: the two
    intervals agree within the Monte Carlo noise of 1,000 resamples (measured: ends 2-19% of
    the half-width apart; r2, the most skewed, is the farthest)."""
    rng = np.random.default_rng(11)
    n = 20_000
    y = rng.gamma(2.0, 10.0, n)  # skewed, so a wrong centre or spread would show
    pred = y + rng.normal(0, 4, n)
    positive = rng.random(n) < 0.3
    scores = np.round(rng.random(n) + positive * 0.4, 2).astype(np.float64)  # ties
    proba = rng.dirichlet([2, 1, 1], size=n)
    labels = rng.integers(0, 3, n)

    def samples() -> bootstrap.FloatArray:
        if metric == "roc_auc":
            return bootstrap.auc_resamples(positive, scores, 1000, seed=3)
        if metric == "log_loss":
            return bootstrap.log_loss_resamples(labels, proba, 1000, seed=3)
        return bootstrap.regression_resamples(metric, y, pred, 1000, seed=3)

    textbook = bootstrap.percentile_interval(samples(), 0.95)
    monkeypatch.setattr(bootstrap, "_EXACT_CELLS", 1_000_000)  # n x 1000 is over it now
    little_samples = samples()
    assert little_samples.shape == (10, 100)  # 10 subsets of 20,000 ** 0.6 = 381 rows
    little = bootstrap.percentile_interval(little_samples, 0.95)
    assert textbook is not None and little is not None
    half = (textbook.high - textbook.low) / 2
    assert little.low == pytest.approx(textbook.low, abs=0.25 * half)
    assert little.high == pytest.approx(textbook.high, abs=0.25 * half)


def test_interval_of_little_bootstraps_is_the_mean_of_the_subsets() -> None:
    groups = np.array([[1.0, 2.0, 3.0, np.nan], [3.0, 4.0, 5.0, 4.0]])
    interval = bootstrap.percentile_interval(groups, 0.5)
    first, second = np.percentile([1, 2, 3], [25, 75]), np.percentile([3, 4, 5, 4], [25, 75])
    assert interval == bootstrap.Interval(
        float((first[0] + second[0]) / 2), float((first[1] + second[1]) / 2)
    )

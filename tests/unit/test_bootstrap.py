"""Intervals: each resample's metric equals scikit-learn's on that resample; Wilson's ends."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from gitops_mlops import bootstrap, estimates, metrics
from gitops_mlops.predictions import Predictions

CONFUSION_METRICS = [
    m for m in metrics.METRICS.values() if isinstance(m.rule, metrics.FromConfusion)
]


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
    ).filter(lambda m: m.sum() > 0),
    positive=st.integers(0, 1),
)
def test_label_metrics_from_a_confusion_table_match_scikit_learn(
    cm: np.ndarray, positive: int
) -> None:
    """Every confusion rule in the registry, against its own scikit-learn score function."""
    true, pred = expand(cm)
    k = cm.shape[0]
    p = Predictions.classification(true, pred, model_classes=range(k), positive=positive)
    for metric in CONFUSION_METRICS:
        if metric.classes == "binary" and k > 2:
            continue  # scikit-learn's pos_label needs two classes
        assert metric.score is not None and isinstance(metric.rule, metrics.FromConfusion)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = metric.score(p)
        got = metric.rule.formula(bootstrap.Table(cm[np.newaxis], positive))[0]
        assert got == pytest.approx(expected), metric.name


def explicit_resamples(n: int, resamples: int, seed: int) -> np.ndarray:
    return np.concatenate(list(bootstrap.index_chunks(n, resamples, seed)))


@pytest.mark.parametrize("name", ["roc_auc", "average_precision"])
def test_ranking_metrics_of_each_resample_match_scikit_learn_with_ties(name: str) -> None:
    rng = np.random.default_rng(0)
    n = 60
    positive = rng.random(n) < 0.4
    scores = np.round(rng.random(n) + positive * 0.3, 1).astype(np.float64) / 1.3  # ties
    p = Predictions.classification(
        positive.astype(int), (scores > 0.5).astype(int), np.c_[1 - scores, scores], [0, 1]
    )
    metric = metrics.METRICS[name]
    assert metric.score is not None
    got = estimates.resamples(metric, p, 50, seed=9)
    for i, rows in enumerate(explicit_resamples(n, 50, 9)):
        if positive[rows].all() or not positive[rows].any():
            assert np.isnan(got[i])
        else:
            assert got[i] == pytest.approx(metric.score(p.subset(rows)))


def test_multinomial_intervals_agree_with_resampling_rows() -> None:
    """Drawing confusion tables is the row bootstrap in distribution: same interval."""
    rng = np.random.default_rng(3)
    true = rng.integers(0, 3, 400)
    pred = np.where(rng.random(400) < 0.8, true, rng.integers(0, 3, 400))
    p = Predictions.classification(true, pred, model_classes=[0, 1, 2])
    samples = estimates.resamples(metrics.METRICS["f1_macro"], p, 4000, seed=1)
    fast = bootstrap.percentile_interval(samples, 0.95)
    rows = explicit_resamples(400, 4000, 2)
    drawn_true, drawn_pred = true[rows], pred[rows]  # macro F1 of each set of drawn rows
    per_class = [
        2
        * ((drawn_true == c) & (drawn_pred == c)).sum(axis=1)
        / ((drawn_true == c).sum(axis=1) + (drawn_pred == c).sum(axis=1))
        for c in range(3)
    ]
    slow = bootstrap.percentile_interval(np.mean(per_class, axis=0), 0.95)
    assert fast is not None and slow is not None
    assert fast.low == pytest.approx(slow.low, abs=0.01)
    assert fast.high == pytest.approx(slow.high, abs=0.01)


def test_paired_tables_share_their_rows() -> None:
    """Each paired draw resamples rows once: both tables hold the same true rows, and a row
    both models predict alike adds to both alike."""
    rng = np.random.default_rng(4)
    true = rng.integers(0, 3, 300)
    a = np.where(rng.random(300) < 0.8, true, rng.integers(0, 3, 300))
    b = np.where(rng.random(300) < 0.1, rng.integers(0, 3, 300), a)
    stack_a, stack_b = bootstrap.paired_confusion_resamples(true, a, b, 3, 500, seed=2)
    assert stack_a.shape == stack_b.shape == (500, 3, 3)
    assert (stack_a.sum(axis=(1, 2)) == 300).all()
    np.testing.assert_array_equal(stack_a.sum(axis=2), stack_b.sum(axis=2))
    same_a, same_b = bootstrap.paired_confusion_resamples(true, a, a, 3, 500, seed=2)
    np.testing.assert_array_equal(same_a, same_b)
    # Each model's tables alone are its own bootstrap: the mean table is the observed one.
    observed = np.bincount(true * 3 + b, minlength=9).reshape(3, 3)
    np.testing.assert_allclose(stack_b.mean(axis=0), observed, atol=1.5)


@pytest.mark.parametrize(("successes", "trials"), [(23, 23), (0, 23), (17, 23), (450, 500)])
def test_wilson_interval_solves_the_score_equation(successes: int, trials: int) -> None:
    """Wilson's ends are the p where the score statistic |p̂ - p| / sqrt(p(1-p)/n) is z."""
    level = 0.95
    z = stats.norm.ppf(0.975)
    interval = bootstrap.wilson_interval(successes, trials, level)
    share = successes / trials
    for end in (interval.low, interval.high):
        if end in (0.0, 1.0) and end == share:
            continue  # the end at the observed 0 % or 100 %
        assert abs(share - end) == pytest.approx(z * np.sqrt(end * (1 - end) / trials))
    assert interval.low < interval.high


def test_twenty_three_right_of_twenty_three_is_not_certain() -> None:
    interval = bootstrap.wilson_interval(23, 23, 0.95)
    assert interval.high == 1.0 and 0.85 < interval.low < 0.87
    assert bootstrap.wilson_interval(0, 0, 0.95) == bootstrap.Interval(0.0, 1.0)


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

    if metric == "roc_auc":
        p = Predictions.classification(positive, positive, np.c_[1 - scores, scores], [0, 1])
    elif metric == "log_loss":
        p = Predictions.classification(labels, labels, proba, [0, 1, 2])
    else:
        p = Predictions.regression(y, pred)

    def samples() -> bootstrap.FloatArray:
        return estimates.resamples(metrics.METRICS[metric], p, 1000, seed=3)

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

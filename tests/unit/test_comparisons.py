"""comparisons.pair: two prediction sets in, Δ per metric and slice out, paired only when both
hold the same rows; checked against a direct paired bootstrap written here in plain numpy."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gitops_mlops import comparisons
from gitops_mlops.predictions import Predictions
from gitops_mlops.records.comparison import Comparison
from gitops_mlops.records.predictions import PredictionSet
from gitops_mlops.spec.model import Confidence

N = 400
RESAMPLES = 3000
WRONG_BEFORE = np.arange(0, 100)  # the champion's wrong rows
FIXED = np.arange(0, 30)  # of those, the candidate gets these right
BROKEN = np.arange(200, 210)  # and gets these wrong, which the champion had right
FIRST_HALF = np.arange(N) < N // 2  # a slice holding every changed row but BROKEN


def _sets(rows: str = "sha256:rows") -> tuple[PredictionSet, PredictionSet]:
    """Binary labels; the two models differ on FIXED and BROKEN and nowhere else."""
    y = np.random.default_rng(3).integers(0, 2, N)
    theirs = y.copy()
    theirs[WRONG_BEFORE] = 1 - y[WRONG_BEFORE]
    ours = theirs.copy()
    ours[FIXED] = y[FIXED]
    ours[BROKEN] = 1 - y[BROKEN]
    slices = {"first-half": FIRST_HALF}
    candidate = Predictions.classification(y, ours, model_classes=[0, 1])
    champion = Predictions.classification(y, theirs, model_classes=[0, 1])
    return (
        PredictionSet("classification", candidate, slices, "sha256:rows"),
        PredictionSet("classification", champion, slices, rows),
    )


def _direct(ours: Predictions, theirs: Predictions, paired: bool) -> tuple[float, float]:
    """The textbook bootstrap of Δ accuracy: draw row indices (the same for both models when
    paired, independent draws otherwise), score both on them, take the percentiles."""
    rng = np.random.default_rng(11)
    right_a = (ours.y_true == ours.y_pred).astype(float)
    right_b = (theirs.y_true == theirs.y_pred).astype(float)
    rows = rng.integers(0, ours.n, size=(RESAMPLES, ours.n))
    other = rows if paired else rng.integers(0, theirs.n, size=(RESAMPLES, theirs.n))
    deltas = right_a[rows].mean(axis=1) - right_b[other].mean(axis=1)
    low, high = np.percentile(deltas, [2.5, 97.5])
    return float(low), float(high)


def test_the_paired_delta_is_the_direct_paired_bootstrap_overall_and_per_slice() -> None:
    candidate, champion = _sets()
    compared = comparisons.pair(
        candidate, champion, ["accuracy"], Confidence(resamples=RESAMPLES, seed=1)
    )
    assert compared.mode == "paired" and compared.n_rows == N and compared.level == 0.95
    for slice_name, gained in ((None, (30 - 10) / N), ("first-half", 30 / (N // 2))):
        row = compared.delta("accuracy", slice_name)
        assert row is not None and row.delta == pytest.approx(gained)
        assert row.method == "paired-bootstrap" and row.verdict == "better"
        assert row.ci_low is not None and row.ci_high is not None
        ours, theirs = candidate.of_slice(slice_name), champion.of_slice(slice_name)
        low, high = _direct(ours, theirs, paired=True)
        width = high - low
        # Monte-Carlo error of 3,000 resamples: the ends agree within 10 % of the width.
        assert row.ci_low == pytest.approx(low, abs=0.1 * width)
        assert row.ci_high == pytest.approx(high, abs=0.1 * width)
        u_low, u_high = _direct(ours, theirs, paired=False)
        assert width < 0.6 * (u_high - u_low)


def test_other_rows_are_compared_unpaired_and_say_so() -> None:
    candidate, champion = _sets(rows="sha256:other-rows")
    confidence = Confidence(resamples=RESAMPLES, seed=1)
    unpaired = comparisons.pair(candidate, champion, ["accuracy"], confidence)
    paired = comparisons.pair(candidate, _sets()[1], ["accuracy"], confidence)
    assert unpaired.mode == "unpaired" and unpaired.n_rows is None
    ours, same = unpaired.delta("accuracy"), paired.delta("accuracy")
    assert ours is not None and same is not None and ours.method == "unpaired-bootstrap"
    assert ours.delta == pytest.approx(same.delta)
    assert ours.ci_low is not None and ours.ci_high is not None
    assert same.ci_low is not None and same.ci_high is not None
    # Unpaired, a gain of 20 rows in 400 is within the noise; paired, it is not.
    assert ours.verdict == "no detectable difference" and same.verdict == "better"
    assert ours.ci_high - ours.ci_low > 1.5 * (same.ci_high - same.ci_low)
    low, high = _direct(candidate.predictions, champion.predictions, paired=False)
    assert ours.ci_low == pytest.approx(low, abs=0.1 * (high - low))
    assert ours.ci_high == pytest.approx(high, abs=0.1 * (high - low))


def test_without_intervals_the_point_difference_is_given_and_why() -> None:
    candidate, champion = _sets()
    compared = comparisons.pair(candidate, champion, ["accuracy", "f1"], None)
    assert compared.mode == "paired" and compared.level is None
    row = compared.delta("f1", "first-half")
    assert row is not None and row.delta is not None and row.ci_low is None
    assert row.verdict == "not comparable" and "confidence is off" in (row.reason or "")


def test_a_comparison_round_trips_through_its_json() -> None:
    candidate, champion = _sets()
    compared = comparisons.pair(
        candidate, champion, ["accuracy", "f1"], Confidence(resamples=200, seed=0)
    )
    back = Comparison.from_json(json.loads(json.dumps(compared.to_json())), "test")
    assert back == compared

"""Bootstrap intervals over 1M predictions, as `mlops evaluate` and the paired comparison
compute them.

    python benchmarks/bootstrap.py [--rows 1000000] [--resamples 1000]

Label metrics come from resampled confusion matrices (exact, whatever the number of rows);
rank and row metrics (ROC AUC, log loss, regression metrics) over this many rows use the bag
of little bootstraps. Side by side, the textbook bootstrap (draw n row indices per resample
and recompute), vectorised in numpy chunks, for one metric, and how far the little
bootstraps' interval is from it. Target (issue 3): 1,000 resamples over 1M predictions in
<= 2 s per metric family.

Then two models on the same rows (issue 13): the paired difference Δ = candidate - champion,
from one joint multinomial over (true, candidate's, champion's label) cells for label metrics
and from the same row weights for the others, with the same target; beside it the direct
paired bootstrap (the same row indices for both models, in numpy) for accuracy, and the
width of the unpaired interval (each model resampled on its own) that pairing replaces.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import numpy as np

from gitops_mlops import bootstrap, estimates, metrics
from gitops_mlops.predictions import Predictions
from gitops_mlops.spec.model import Confidence

LABEL_METRICS = ("accuracy", "f1_macro", "balanced_accuracy", "precision_weighted")
REGRESSION_METRICS = ("r2", "rmse", "mae", "mape")


def timed(work: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = work()
    return time.perf_counter() - start, result


def interval(samples: bootstrap.FloatArray) -> bootstrap.Interval | None:
    return bootstrap.percentile_interval(samples, 0.95)


def resampled(names: tuple[str, ...], p: Predictions, b: int) -> Callable[[], None]:
    def work() -> None:
        for name in names:
            interval(estimates.resamples(metrics.METRICS[name], p, b, 0))

    return work


def paired(names: tuple[str, ...], a: Predictions, c: Predictions, b: int) -> Callable[[], None]:
    def work() -> None:
        for name in names:
            interval(estimates.paired_resamples(metrics.METRICS[name], a, c, b, 0))

    return work


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n, b = args.rows, args.resamples
    true = rng.integers(0, 3, n)
    pred = np.where(rng.random(n) < 0.85, true, rng.integers(0, 3, n))
    proba = rng.dirichlet([1, 1, 1], size=n)
    y = rng.normal(100, 15, n)
    y_hat = y + rng.normal(0, 5, n)
    import sklearn.metrics  # noqa: F401  (imported here, not inside the first timing)

    labels = Predictions.classification(true, pred, proba, [0, 1, 2])
    binary = Predictions.classification(true == 1, pred == 1, proba[:, :2], [False, True])
    regression = Predictions.regression(y, y_hat)
    # A candidate that changes 4 % of the champion's labels and nudges its scores.
    changed = rng.random(n) < 0.04
    candidate_pred = np.where(changed, np.where(rng.random(n) < 0.6, true, (true + 1) % 3), pred)
    nudged = proba + rng.normal(0, 0.02, proba.shape).clip(-0.2, 0.2)
    nudged = np.clip(nudged, 1e-3, None) / np.clip(nudged, 1e-3, None).sum(axis=1, keepdims=True)
    candidate = Predictions.classification(true, candidate_pred, nudged, [0, 1, 2])
    candidate_binary = Predictions.classification(
        true == 1, candidate_pred == 1, nudged[:, :2], [False, True]
    )
    candidate_regression = Predictions.regression(y, y_hat + rng.normal(0, 1, n))
    encoding = timed(lambda: [(p.true_index, p.pred_index) for p in (labels, binary, candidate)])
    print(f"encoding labels as class indices, 3 x {n:,} rows: {encoding[0]:.3f} s")

    figures = {
        "label metrics (4), confusion multinomial": timed(resampled(LABEL_METRICS, labels, b))[0],
        "regression metrics (4), little bootstraps": timed(
            resampled(REGRESSION_METRICS, regression, b)
        )[0],
        "roc_auc, little bootstraps": timed(resampled(("roc_auc",), binary, b))[0],
        "log_loss, little bootstraps": timed(resampled(("log_loss",), labels, b))[0],
        "paired label metrics (4), joint multinomial": timed(
            paired(LABEL_METRICS, candidate, labels, b)
        )[0],
        "paired regression metrics (4), little bootstraps": timed(
            paired(REGRESSION_METRICS, candidate_regression, regression, b)
        )[0],
        "paired roc_auc, little bootstraps": timed(
            paired(("roc_auc",), candidate_binary, binary, b)
        )[0],
        "paired log_loss, little bootstraps": timed(paired(("log_loss",), candidate, labels, b))[0],
    }
    rmse = metrics.METRICS["rmse"]
    little_time, little = timed(lambda: interval(estimates.resamples(rmse, regression, b, 0)))
    limit = bootstrap._EXACT_CELLS
    bootstrap._EXACT_CELLS = sys.maxsize  # the textbook bootstrap, for comparison
    textbook_time, textbook = timed(lambda: interval(estimates.resamples(rmse, regression, b, 0)))
    bootstrap._EXACT_CELLS = limit
    print(f"{b} resamples over {n:,} predictions")
    for label, seconds in figures.items():
        print(f"  {label:50} {seconds:7.3f} s")
    assert isinstance(little, bootstrap.Interval) and isinstance(textbook, bootstrap.Interval)
    half = (textbook.high - textbook.low) / 2
    print(
        f"rmse: little bootstraps {little_time:.3f} s, textbook {textbook_time:.3f} s "
        f"({textbook_time / little_time:.0f}x); intervals [{little.low:.4f}, {little.high:.4f}]"
        f" vs [{textbook.low:.4f}, {textbook.high:.4f}]: ends differ by "
        f"{max(abs(little.low - textbook.low), abs(little.high - textbook.high)) / half:.1%}"
        " of the half-width"
    )
    compare_accuracy(candidate, labels, b)
    met = all(seconds <= 2.0 for seconds in figures.values())
    print(f"target <= 2 s per metric family: {'met' if met else 'NOT met'}")
    return 0 if met else 1


def compare_accuracy(candidate: Predictions, champion: Predictions, b: int) -> None:
    """Paired Δ accuracy three ways: joint multinomial, direct row indices, unpaired."""
    accuracy = metrics.METRICS["accuracy"]
    confidence = Confidence(resamples=b, seed=0)
    fast_time, fast = timed(lambda: estimates.difference(accuracy, candidate, champion, confidence))
    gain = (candidate.y_pred == candidate.y_true).astype(np.float64) - (
        champion.y_pred == champion.y_true
    ).astype(np.float64)

    def direct() -> bootstrap.Interval | None:
        chunks = bootstrap.index_chunks(gain.size, b, seed=1)
        return interval(np.concatenate([gain[rows].mean(axis=1) for rows in chunks]))

    direct_time, textbook = timed(direct)
    unpaired = estimates.unpaired_difference(accuracy, candidate, champion, confidence)
    assert isinstance(fast, estimates.Difference) and fast.interval is not None
    assert isinstance(textbook, bootstrap.Interval) and unpaired.interval is not None
    width = fast.interval.high - fast.interval.low
    print(
        f"Δ accuracy {fast.delta:+.5f}: joint multinomial {fast_time:.3f} s "
        f"[{fast.interval.low:+.5f}, {fast.interval.high:+.5f}] ({fast.verdict}); direct "
        f"paired rows {direct_time:.3f} s [{textbook.low:+.5f}, {textbook.high:+.5f}] "
        f"({direct_time / fast_time:.0f}x); unpaired interval "
        f"{(unpaired.interval.high - unpaired.interval.low) / width:.1f}x as wide "
        f"({unpaired.verdict})"
    )


if __name__ == "__main__":
    sys.exit(main())

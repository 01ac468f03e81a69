"""Bootstrap intervals over 1M predictions, as `mlops evaluate` computes them.

    python benchmarks/bootstrap.py [--rows 1000000] [--resamples 1000]

Label metrics come from resampled confusion matrices (exact, whatever the number of rows);
rank and row metrics (ROC AUC, log loss, regression metrics) over this many rows use the bag
of little bootstraps. Side by side, the textbook bootstrap (draw n row indices per resample
and recompute), vectorised in numpy chunks, for one metric, and how far the little
bootstraps' interval is from it. Target (issue 3): 1,000 resamples over 1M predictions in
<= 2 s per metric family.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import numpy as np

from gitops_mlops import bootstrap, estimates, metrics
from gitops_mlops.predictions import Predictions

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
    encoding = timed(lambda: [(p.true_index, p.pred_index) for p in (labels, binary)])
    print(f"encoding labels as class indices, 2 x {n:,} rows: {encoding[0]:.3f} s")

    figures = {
        "label metrics (4), confusion multinomial": timed(resampled(LABEL_METRICS, labels, b))[0],
        "regression metrics (4), little bootstraps": timed(
            resampled(REGRESSION_METRICS, regression, b)
        )[0],
        "roc_auc, little bootstraps": timed(resampled(("roc_auc",), binary, b))[0],
        "log_loss, little bootstraps": timed(resampled(("log_loss",), labels, b))[0],
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
    met = all(seconds <= 2.0 for seconds in figures.values())
    print(f"target <= 2 s per metric family: {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())

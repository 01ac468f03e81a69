"""Bootstrap intervals over 1M predictions, as `mlops evaluate` computes them.

    python benchmarks/bootstrap.py [--rows 1000000] [--resamples 1000]

Label metrics come from resampled confusion matrices (exact, whatever the number of rows);
rank and row metrics (ROC AUC, log loss, regression metrics) over this many rows use the bag
of little bootstraps. Side by side, the textbook bootstrap (draw n row indices per resample
and recompute), vectorised in numpy chunks, for one metric, and how far the little
bootstraps' interval is from it. Target (issue 3): 1,000 resamples over 1M predictions in
<= 2 s.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import numpy as np

from gitops_mlops import bootstrap


def timed(work: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = work()
    return time.perf_counter() - start, result


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

    def interval(samples: bootstrap.FloatArray) -> bootstrap.Interval | None:
        return bootstrap.percentile_interval(samples, 0.95)

    def labels() -> None:
        stack = bootstrap.confusion_resamples(true, pred, 3, b, seed=0)
        for name in ("accuracy", "f1_macro", "balanced_accuracy", "precision_weighted"):
            interval(bootstrap.from_confusion(name, stack))

    def regression() -> None:
        for name in ("r2", "rmse", "mae", "mape"):
            interval(bootstrap.regression_resamples(name, y, y_hat, b, 0))

    figures = {
        "label metrics (4), confusion multinomial": timed(labels)[0],
        "regression metrics (4), little bootstraps": timed(regression)[0],
        "roc_auc, little bootstraps": timed(
            lambda: interval(bootstrap.auc_resamples(true == 1, proba[:, 1], b, 0))
        )[0],
        "log_loss, little bootstraps": timed(
            lambda: interval(bootstrap.log_loss_resamples(true, proba, b, 0))
        )[0],
    }
    little_time, little = timed(
        lambda: interval(bootstrap.regression_resamples("rmse", y, y_hat, b, 0))
    )
    limit = bootstrap._EXACT_CELLS
    bootstrap._EXACT_CELLS = sys.maxsize  # the textbook bootstrap, for comparison
    textbook_time, textbook = timed(
        lambda: interval(bootstrap.regression_resamples("rmse", y, y_hat, b, 0))
    )
    bootstrap._EXACT_CELLS = limit
    print(f"{b} resamples over {n:,} predictions")
    for label, seconds in figures.items():
        print(f"  {label:44} {seconds:7.3f} s")
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

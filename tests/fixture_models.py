"""A user's own estimator module, trusted through `model.allow_modules: [tests]`.

It also re-exports a standard-library class and defines a function: allowing this module
must not make either of them loadable from a model file.
"""

from __future__ import annotations

from subprocess import Popen  # noqa: F401 - re-exported on purpose (see the trust tests)
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


class NearestMean(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Predicts the class whose training mean is nearest."""

    def fit(self, x: Any, y: Any) -> NearestMean:
        values, labels = np.asarray(x, dtype=float), np.asarray(y)
        self.classes_ = np.unique(labels)
        self.means_ = np.stack([values[labels == c].mean(axis=0) for c in self.classes_])
        return self

    def _distances(self, x: Any) -> Any:
        values = np.asarray(x, dtype=float)
        return np.linalg.norm(values[:, None, :] - self.means_[None, :, :], axis=2)

    def predict(self, x: Any) -> Any:
        return self.classes_[self._distances(x).argmin(axis=1)]

    def predict_proba(self, x: Any) -> Any:
        closeness = np.exp(-self._distances(x))
        return closeness / closeness.sum(axis=1, keepdims=True)


def helper(value: Any) -> Any:
    """A function of an allowed module: functions are never trusted."""
    return value

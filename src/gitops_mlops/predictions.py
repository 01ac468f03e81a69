"""What a model predicted on a set of rows, in the form every metric reads.

Class labels are encoded once as indices into `labels`: the model's classes in the order of
its probability columns, then any class found in the rows that the model never saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
Rows = NDArray[np.intp]
_A = TypeVar("_A", bound=NDArray[Any])


@dataclass(frozen=True)
class Predictions:
    y_true: NDArray[Any]
    y_pred: NDArray[Any]
    proba: FloatArray | None = None  # one column per model class; None: not asked for
    model_classes: tuple[Any, ...] = ()
    labels: tuple[Any, ...] = ()  # model classes, then the rows' classes the model lacks
    positive: int | None = None  # index in `labels` of the positive class
    _index: dict[Any, int] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def regression(cls, y_true: Any, y_pred: Any) -> Predictions:
        return cls(np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64))

    @classmethod
    def classification(
        cls,
        y_true: Any,
        y_pred: Any,
        proba: Any = None,
        model_classes: Sequence[Any] = (),
        positive: int | None = None,
    ) -> Predictions:
        """`positive`: index in `labels_of(...)` of the positive class; None: the greatest."""
        true, pred = np.asarray(y_true), np.asarray(y_pred)
        labels = labels_of(true, pred, model_classes)
        return cls(
            y_true=true,
            y_pred=pred,
            proba=None if proba is None else np.asarray(proba, dtype=np.float64),
            model_classes=labels[: len(model_classes)],
            labels=labels,
            positive=greatest(labels) if positive is None else positive,
            _index={label: i for i, label in enumerate(labels)},
        )

    def subset(self, mask: NDArray[np.bool_]) -> Predictions:
        """The same model's predictions on the rows where `mask` holds."""
        return Predictions(
            self.y_true[mask],
            self.y_pred[mask],
            None if self.proba is None else self.proba[mask],
            self.model_classes,
            self.labels,
            self.positive,
            self._index,
        )

    @property
    def n(self) -> int:
        return int(self.y_true.size)

    @property
    def positive_label(self) -> Any:
        return None if self.positive is None else self.labels[self.positive]

    @cached_property
    def true_index(self) -> Rows:
        return self._encode(self.y_true)

    @cached_property
    def pred_index(self) -> Rows:
        return self._encode(self.y_pred)

    @cached_property
    def is_positive(self) -> NDArray[np.bool_]:
        result: NDArray[np.bool_] = self.true_index == self.positive
        return result

    @cached_property
    def positive_scores(self) -> FloatArray:
        """The probability of the positive class (0 when the model never saw that class)."""
        assert self.proba is not None and self.positive is not None
        if self.positive < self.proba.shape[1]:
            column: FloatArray = self.proba[:, self.positive]
            return column
        return np.zeros(self.n)

    @cached_property
    def classes_present(self) -> list[Any]:
        return [self.labels[i] for i in np.unique(self.true_index)]

    @staticmethod
    def take(array: _A, rows: Rows | None) -> _A:
        """`array`'s entries for `rows` (None: all of them)."""
        return array if rows is None else array[rows]  # type: ignore[return-value]

    def _encode(self, values: NDArray[Any]) -> Rows:
        try:
            unique, inverse = np.unique(values, return_inverse=True)
        except TypeError:  # labels of mixed types do not sort; look them up one by one
            found = np.fromiter((self._index[v] for v in values), dtype=np.intp, count=values.size)
            return found
        codes = np.array([self._index[v] for v in unique.tolist()], dtype=np.intp)
        encoded: Rows = codes[inverse.reshape(-1)]
        return encoded


def labels_of(
    y_true: NDArray[Any], y_pred: NDArray[Any], model_classes: Sequence[Any]
) -> tuple[Any, ...]:
    """The model's classes, then the classes of the rows (true or predicted) it does not have."""
    known = [c.item() if isinstance(c, np.generic) else c for c in model_classes]
    seen = set(known)
    extra = []
    for values in (y_true, y_pred):
        for value in _distinct(values):
            if value not in seen:
                seen.add(value)
                extra.append(value)
    return (*known, *extra)


def greatest(labels: Sequence[Any]) -> int | None:
    """The index of the greatest label: the default positive class (1 of 0/1, True, "yes")."""
    if not labels:
        return None
    try:
        return max(range(len(labels)), key=lambda i: labels[i])
    except TypeError:  # labels of mixed types: the last one
        return len(labels) - 1


def _distinct(values: NDArray[Any]) -> list[Any]:
    try:
        found: list[Any] = np.unique(values).tolist()
    except TypeError:
        found = list(dict.fromkeys(values.tolist()))
    return found

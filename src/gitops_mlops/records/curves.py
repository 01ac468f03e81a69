"""What the report's pictures are drawn from: summaries of the predictions, never the rows.

Evaluation records them in metrics.json (`Metrics.curves`) so the pull request comment's
Mermaid charts and report.html draw from the file alone. Each summary is bounded whatever
the number of test rows: a confusion table of at most `MAX_CLASSES` classes, curves of at
most `MAX_POINTS` points, a histogram of `RESIDUAL_BINS` bins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gitops_mlops.records.fields import Fields

WHAT = "metrics.json"
MAX_CLASSES = 50  # a confusion table of more classes is not drawn (nor recorded)
MAX_POINTS = 101  # vertices kept of a ROC, precision-recall or calibration curve
RESIDUAL_BINS = 20

Label = str | int | float | bool


@dataclass(frozen=True)
class Curve:
    """A curve's vertices in drawing order, and the area the report names it by (ROC AUC,
    average precision; None for calibration)."""

    x: tuple[float, ...]
    y: tuple[float, ...]
    area: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"x": list(self.x), "y": list(self.y), "area": self.area}

    @classmethod
    def from_json(cls, fields: Fields) -> Curve:
        x, y = _numbers(fields, "x"), _numbers(fields, "y")
        if len(x) != len(y) or len(x) > MAX_POINTS:
            raise fields.bad("y", f"as many numbers as x (at most {MAX_POINTS})")
        return cls(x, y, fields.opt_number("area"))


@dataclass(frozen=True)
class Confusion:
    """Counts of rows by true class (rows) and predicted class (columns)."""

    labels: tuple[Label, ...]
    counts: tuple[tuple[int, ...], ...]

    def to_json(self) -> dict[str, Any]:
        return {"labels": list(self.labels), "counts": [list(row) for row in self.counts]}

    @classmethod
    def from_json(cls, fields: Fields) -> Confusion:
        labels = fields.raw.get("labels")
        if not isinstance(labels, list) or not all(
            isinstance(label, str | int | float) for label in labels
        ):
            raise fields.bad("labels", "a list of class labels")
        counts = fields.raw.get("counts")
        k = len(labels)
        square = (
            isinstance(counts, list)
            and len(counts) == k <= MAX_CLASSES
            and all(
                isinstance(row, list)
                and len(row) == k
                and all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in row)
                for row in counts
            )
        )
        if not square:
            raise fields.bad("counts", f"a {k}x{k} table of counts (one row per label)")
        assert isinstance(counts, list)
        return cls(tuple(labels), tuple(tuple(row) for row in counts))


@dataclass(frozen=True)
class Histogram:
    """Residuals (true - predicted) counted in bins between consecutive `edges`. The first
    and last edges are the 1st and 99th percentiles: rows beyond them count in the end bins,
    so one outlier does not squeeze every other row into one bar."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"edges": list(self.edges), "counts": list(self.counts)}

    @classmethod
    def from_json(cls, fields: Fields) -> Histogram:
        edges, counts = _numbers(fields, "edges"), fields.integers("counts")
        if len(edges) != len(counts) + 1 or len(counts) > MAX_POINTS:
            raise fields.bad("edges", "one more number than counts")
        return cls(edges, counts)


@dataclass(frozen=True)
class Curves:
    """Every summary evaluation made of the predictions on all test rows (None: not for this
    task or model: ROC, precision-recall and calibration need a binary classifier with
    probabilities and both classes among the rows)."""

    confusion: Confusion | None = None
    roc: Curve | None = None
    precision_recall: Curve | None = None
    calibration: Curve | None = None  # x: mean predicted probability, y: share positive
    residuals: Histogram | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "confusion": None if self.confusion is None else self.confusion.to_json(),
            "roc": None if self.roc is None else self.roc.to_json(),
            "precision_recall": (
                None if self.precision_recall is None else self.precision_recall.to_json()
            ),
            "calibration": None if self.calibration is None else self.calibration.to_json(),
            "residuals": None if self.residuals is None else self.residuals.to_json(),
        }

    @classmethod
    def from_json(cls, fields: Fields) -> Curves:
        def curve(key: str) -> Curve | None:
            found = fields.obj(key)
            return None if found is None else Curve.from_json(found)

        confusion, residuals = fields.obj("confusion"), fields.obj("residuals")
        return cls(
            confusion=None if confusion is None else Confusion.from_json(confusion),
            roc=curve("roc"),
            precision_recall=curve("precision_recall"),
            calibration=curve("calibration"),
            residuals=None if residuals is None else Histogram.from_json(residuals),
        )


def _numbers(fields: Fields, key: str) -> tuple[float, ...]:
    value = fields.raw.get(key)
    if isinstance(value, list) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value
    ):
        return tuple(float(v) for v in value)
    raise fields.bad(key, "a list of numbers")

"""metrics.json: what evaluate measured, read by the gate, the report, build and promote."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from gitops_mlops.records.curves import Curves
from gitops_mlops.records.fields import Fields

WHAT = "metrics.json"


@dataclass(frozen=True)
class Estimate:
    """One metric's value, with its confidence interval when one was computed."""

    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    method: str | None = None  # how the interval was computed (estimates.METHODS)
    reason: str | None = None  # why `value` is None (e.g. ROC AUC of rows holding one class)

    def to_json(self) -> dict[str, float | str | None]:
        out: dict[str, float | str | None] = {
            "value": self.value,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
        }
        if self.method is not None:
            out["method"] = self.method
        if self.reason is not None:
            out["reason"] = self.reason
        return out

    @classmethod
    def from_json(cls, raw: object, source: str, where: str, what: str = WHAT) -> Estimate:
        """An estimate; a bare number (older release records) is its value."""
        if raw is None:
            return cls(None)
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            return cls(float(raw))
        fields = Fields(raw, source, what, where)
        return cls(
            fields.opt_number("value"),
            fields.opt_number("ci_low"),
            fields.opt_number("ci_high"),
            fields.opt_text("method"),
            fields.opt_text("reason"),
        )


MetricTable = Mapping[str, Estimate]
EMPTY: MetricTable = MappingProxyType({})


def table_to_json(table: MetricTable) -> dict[str, dict[str, float | str | None]]:
    return {name: estimate.to_json() for name, estimate in table.items()}


def table_from_json(fields: Fields, key: str) -> MetricTable:
    where = f"{fields.where}.{key}" if fields.where else key
    return MappingProxyType(
        {
            name: Estimate.from_json(raw, fields.source, f"{where}.{name}", fields.what)
            for name, raw in fields.table(key).items()
        }
    )


def slices_from_json(fields: Fields, key: str) -> Mapping[str, MetricTable]:
    names = fields.table(key)  # checks that it is a mapping of names
    sub = fields.obj(key)
    return MappingProxyType({name: table_from_json(sub, name) for name in names} if sub else {})


@dataclass(frozen=True)
class IntervalSettings:
    """How the intervals were computed (evaluation.confidence at the time)."""

    level: float
    resamples: int
    seed: int

    def to_json(self) -> dict[str, Any]:
        return {"level": self.level, "resamples": self.resamples, "seed": self.seed}


@dataclass(frozen=True)
class Metrics:
    metrics: MetricTable
    slices: Mapping[str, MetricTable] = field(default_factory=dict)
    slice_rows: Mapping[str, int] = field(default_factory=dict)
    n_test: int | None = None
    confidence: IntervalSettings | None = None
    custom: Mapping[str, float] = field(default_factory=dict)  # from a training command
    # The class precision, recall, f1, roc_auc and average_precision are about (classifiers).
    positive_label: str | int | float | bool | None = None
    # What the report draws (confusion table, ROC and precision-recall curves, residuals).
    curves: Curves | None = None

    def estimate(self, metric: str, slice_name: str | None = None) -> Estimate | None:
        table = self.metrics if slice_name is None else self.slices.get(slice_name, EMPTY)
        return table.get(metric)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "metrics": table_to_json(self.metrics),
            "slices": {name: table_to_json(table) for name, table in self.slices.items()},
            "slice_rows": dict(self.slice_rows),
            "n_test": self.n_test,
            "confidence": None if self.confidence is None else self.confidence.to_json(),
        }
        if self.custom:
            out["custom"] = dict(self.custom)
        if self.positive_label is not None:
            out["positive_label"] = self.positive_label
        if self.curves is not None:
            out["curves"] = self.curves.to_json()
        return out

    @classmethod
    def from_json(cls, raw: object, source: str) -> Metrics:
        fields = Fields(raw, source, WHAT)
        confidence = fields.obj("confidence")
        curves = fields.obj("curves")
        return cls(
            metrics=table_from_json(fields, "metrics"),
            slices=slices_from_json(fields, "slices"),
            slice_rows=MappingProxyType(fields.integers_by_name("slice_rows")),
            n_test=fields.opt_integer("n_test"),
            confidence=None
            if confidence is None
            else IntervalSettings(
                confidence.number("level"),
                confidence.integer("resamples"),
                confidence.integer("seed"),
            ),
            custom=MappingProxyType(fields.numbers_by_name("custom")),
            positive_label=_label(fields, "positive_label"),
            curves=None if curves is None else Curves.from_json(curves),
        )


def _label(fields: Fields, key: str) -> str | int | float | bool | None:
    """A class label: a string, a number or a boolean."""
    value = fields.raw.get(key)
    if value is None or isinstance(value, str | int | float):  # bool is an int
        return value
    raise fields.bad(key, "a class label (a string, a number or a boolean)")

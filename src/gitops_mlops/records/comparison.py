"""comparison.json: the candidate against the champion, metric by metric and slice by slice.

How the two were compared (`mode`):

- `paired`: both models predicted the same rows (the champion's model was fetched and
  re-evaluated on the candidate's test rows, or `mlops diff` found the same rows in both
  runs). Each metric has Δ = candidate - champion with an interval from resampling the
  shared rows once for both models, and a verdict.
- `unpaired`: two sets of predictions of different rows (`mlops diff` of runs on other
  data); each is resampled on its own, so the intervals are wider.
- `recorded`: the champion's model could not be fetched or cannot score these rows; its
  recorded metrics (measured on its own test rows) are the baseline. `note` says why.
  Δ is the difference of the two point estimates, with no interval.
- `none`: there is no champion.

The gate's `max_regression` rows read Δ from here (`Comparison.delta`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from gitops_mlops.records.curves import Curves
from gitops_mlops.records.fields import Fields

WHAT = "comparison.json"
Mode = Literal["paired", "unpaired", "recorded", "none"]
MODES: tuple[Mode, ...] = ("paired", "unpaired", "recorded", "none")
VERDICTS = ("better", "worse", "no detectable difference", "not comparable")


@dataclass(frozen=True)
class Delta:
    """One metric on one set of rows (slice None: every test row)."""

    metric: str
    slice: str | None
    candidate: float | None
    champion: float | None
    delta: float | None  # candidate - champion
    ci_low: float | None = None
    ci_high: float | None = None
    method: str | None = None  # estimates.METHODS
    verdict: str = "not comparable"  # better | worse | no detectable difference | …
    reason: str | None = None  # why not comparable

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "slice": self.slice,
            "candidate": self.candidate,
            "champion": self.champion,
            "delta": self.delta,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "method": self.method,
            "verdict": self.verdict,
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, fields: Fields) -> Delta:
        return cls(
            metric=fields.text("metric"),
            slice=fields.opt_text("slice"),
            candidate=fields.opt_number("candidate"),
            champion=fields.opt_number("champion"),
            delta=fields.opt_number("delta"),
            ci_low=fields.opt_number("ci_low"),
            ci_high=fields.opt_number("ci_high"),
            method=fields.opt_text("method"),
            verdict=fields.one_of("verdict", VERDICTS, "not comparable"),
            reason=fields.opt_text("reason"),
        )


@dataclass(frozen=True)
class Comparison:
    mode: Mode
    champion: str = ""  # who: "production 0123456789ab", a run directory, …
    source: str = ""  # where its model came from (registry reference, cache, path)
    note: str = ""  # why this mode, in words (a fallback's reason)
    level: float | None = None  # the intervals' confidence level
    n_rows: int | None = None  # rows both models predicted (paired)
    rows: tuple[Delta, ...] = ()
    timings: Mapping[str, float] = field(default_factory=dict)  # seconds: fetch, predict, …
    cached: bool = False  # the champion's model came from the local cache
    # The champion's confusion table and curves on the same rows, for the report's pictures.
    curves: Curves | None = None

    def delta(self, metric: str, slice_name: str | None = None) -> Delta | None:
        for row in self.rows:
            if row.metric == metric and row.slice == slice_name:
                return row
        return None

    @property
    def paired(self) -> bool:
        return self.mode == "paired"

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "champion": self.champion,
            "source": self.source,
            "note": self.note,
            "level": self.level,
            "n_rows": self.n_rows,
            "rows": [row.to_json() for row in self.rows],
            "timings": dict(self.timings),
            "cached": self.cached,
            "curves": None if self.curves is None else self.curves.to_json(),
        }

    @classmethod
    def from_json(cls, raw: object, source: str) -> Comparison:
        fields = Fields(raw, source, WHAT)
        curves = fields.obj("curves")
        return cls(
            mode=fields.one_of("mode", MODES),
            champion=fields.text("champion"),
            source=fields.text("source"),
            note=fields.text("note"),
            level=fields.opt_number("level"),
            n_rows=fields.opt_integer("n_rows"),
            rows=tuple(Delta.from_json(row) for row in fields.objects("rows")),
            timings=fields.numbers_by_name("timings"),
            cached=fields.flag("cached"),
            curves=None if curves is None else Curves.from_json(curves),
        )

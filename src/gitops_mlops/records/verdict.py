"""verdict.json: the gate's decision, one row per bound of every threshold."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from gitops_mlops.records.fields import Fields

WHAT = "verdict.json"
Kind = Literal["min", "max", "max_regression"]
KINDS: tuple[Kind, ...] = ("min", "max", "max_regression")


@dataclass(frozen=True)
class GateRow:
    threshold: int  # position in gate.thresholds
    metric: str
    slice: str | None
    kind: Kind
    on: str  # estimate | bound
    observed: float | None
    bound: float | None
    champion: float | None
    passed: bool
    reason: str
    # max_regression rows: Δ = candidate - champion as the row used it (the estimate, or the
    # pessimistic end of its interval), and against what: "paired" (the champion's model on
    # the same rows) or "recorded" (its recorded metrics).
    delta: float | None = None
    compared: str | None = None

    @property
    def label(self) -> str:
        return self.metric + (f" [{self.slice}]" if self.slice else "")

    def to_json(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "metric": self.metric,
            "slice": self.slice,
            "kind": self.kind,
            "on": self.on,
            "observed": self.observed,
            "bound": self.bound,
            "champion": self.champion,
            "passed": self.passed,
            "reason": self.reason,
            "delta": self.delta,
            "compared": self.compared,
        }

    @classmethod
    def from_json(cls, fields: Fields) -> GateRow:
        return cls(
            threshold=fields.integer("threshold"),
            metric=fields.text("metric"),
            slice=fields.opt_text("slice"),
            kind=fields.one_of("kind", KINDS),
            on=fields.text("on", "estimate"),
            observed=fields.opt_number("observed"),
            bound=fields.opt_number("bound"),
            champion=fields.opt_number("champion"),
            passed=fields.flag("passed"),
            reason=fields.text("reason"),
            delta=fields.opt_number("delta"),
            compared=fields.opt_text("compared"),
        )


@dataclass(frozen=True)
class ChampionRef:
    """Which release the candidate was compared with."""

    environment: str
    version: str


@dataclass(frozen=True)
class Verdict:
    passed: bool
    rows: tuple[GateRow, ...]
    champion: ChampionRef | None = None

    @property
    def failed(self) -> tuple[GateRow, ...]:
        return tuple(row for row in self.rows if not row.passed)

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "rows": [row.to_json() for row in self.rows],
            "champion": None
            if self.champion is None
            else {"environment": self.champion.environment, "version": self.champion.version},
        }

    @classmethod
    def from_json(cls, raw: object, source: str) -> Verdict:
        fields = Fields(raw, source, WHAT)
        champion = fields.obj("champion")
        return cls(
            passed=fields.flag("passed"),
            rows=tuple(GateRow.from_json(row) for row in fields.objects("rows")),
            champion=None
            if champion is None
            else ChampionRef(
                champion.text("environment", scalar=True), champion.text("version", scalar=True)
            ),
        )

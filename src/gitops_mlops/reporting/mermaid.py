"""Charts for the pull request comment and the job summary, as Mermaid, which GitHub draws
itself: no image host, nothing uploaded. Pure: typed records in, Markdown text out.

Mermaid's `xychart-beta` has bars and lines only. Its bars start at the axis and the bars of
every series in a category are drawn over each other, in order. So an interval is a
floating bar: its high end in the model's colour, a dark band at the estimate, then its low
end in the background colour drawn last, over the rest. The chart's background is set to
white, so the mask is invisible in GitHub's light and dark themes alike. Curves are lines
read on an even grid of x (a line's points are spread evenly over a numeric x axis).

Every name from user data goes through `escaping`; the tests render every chart kind, with
hostile names, in the real Mermaid (tests/integration/test_mermaid_render.py).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from gitops_mlops.records.curves import Confusion, Curve, Curves, Histogram
from gitops_mlops.records.metrics import Estimate
from gitops_mlops.reporting.escaping import markdown_code, mermaid_text

BACKGROUND = "#ffffff"
CANDIDATE, CANDIDATE_MARK = "#4c78a8", "#14263a"
CHAMPION, CHAMPION_MARK = "#b4b4b4", "#3c3c3c"
DELTA, DELTA_MARK = "#f58518", "#5c2c00"
CHANCE, ZERO = "#d0d0d0", "#555555"
GRID = 21  # points of a curve drawn as a line: every 0.05 of x
METRICS_PER_CHART = 12  # a chart of more metrics is split (bars stay readable)
TABLE_CLASSES = 20  # a confusion table of more classes is not shown in the comment
NAME = 28  # characters of a name on an axis: longer ones would push the labels out


@dataclass(frozen=True)
class MetricRow:
    """One metric of the report: the candidate's estimate, the champion's value (with its
    interval when one is known) and Δ = candidate - champion (with its interval when both
    models predicted the same rows)."""

    name: str
    candidate: Estimate
    champion: Estimate | None = None
    delta: Estimate | None = None
    lower_is_better: bool = False


@dataclass(frozen=True)
class Chart:
    """One picture as Markdown: a ```mermaid block, or a table with its caption."""

    kind: str  # metrics | delta | confusion | roc | precision-recall | residuals
    markdown: str


def charts(
    rows: Sequence[MetricRow],
    level: str,
    candidate: Curves | None,
    champion: Curves | None = None,
) -> list[Chart]:
    """Every picture these records make, the most useful first."""
    found = [*delta_charts(rows, level), *metric_charts(rows, level)]
    if candidate is not None:
        found += curve_charts(candidate, champion)
    return found


def curve_charts(candidate: Curves, champion: Curves | None = None) -> list[Chart]:
    theirs = champion or Curves()
    found = []
    if candidate.confusion is not None:
        found.append(Chart("confusion", confusion_table(candidate.confusion, theirs.confusion)))
    if candidate.roc is not None:
        found.append(Chart("roc", roc_chart(candidate.roc, theirs.roc)))
    if candidate.precision_recall is not None:
        pr = precision_recall_chart(candidate.precision_recall, theirs.precision_recall)
        found.append(Chart("precision-recall", pr))
    if candidate.residuals is not None:
        found.append(Chart("residuals", residual_chart(candidate.residuals)))
    return found


# --- candidate vs champion, and Δ, per metric ----------------------------------------------


def metric_charts(rows: Sequence[MetricRow], level: str) -> list[Chart]:
    """Candidate (blue) and champion (grey) per metric, each with its interval."""
    found = []
    for group in _scale_groups(rows, lambda r: [r.candidate, r.champion]):
        categories: list[str] = []
        ours: dict[int, Estimate] = {}
        theirs: dict[int, Estimate] = {}
        for row in group:
            name = mermaid_text(row.name, NAME)
            champion = row.champion if _value(row.champion) is not None else None
            ours[len(categories)] = row.candidate
            categories.append(f"{name} candidate" if champion else name)
            if champion is not None:
                theirs[len(categories)] = champion
                categories.append(f"{name} champion")
        body = _floating(
            _title(group, "candidate vs champion" if theirs else "candidate"),
            categories,
            [_Bars(CANDIDATE, CANDIDATE_MARK, ours), _Bars(CHAMPION, CHAMPION_MARK, theirs)],
            "value",
        )
        if body is not None:
            who = "candidate blue, champion grey" if theirs else "candidate blue"
            caption = f"*{who}; bars: {level} intervals, dark band: the estimate.*"
            found.append(Chart("metrics", f"{caption}\n\n{fenced(body)}"))
    return found


def delta_charts(rows: Sequence[MetricRow], level: str) -> list[Chart]:
    """Δ = candidate - champion per metric, its interval and where 0 (no difference) is."""
    with_delta = [row for row in rows if _value(row.delta) is not None]
    found = []
    for group in _scale_groups(with_delta, lambda r: [r.candidate, r.champion]):
        spans = {i: row.delta for i, row in enumerate(group) if row.delta is not None}
        categories = [
            mermaid_text(row.name, NAME) + (" (lower better)" if row.lower_is_better else "")
            for row in group
        ]
        body = _floating(
            _title(group, "Δ candidate - champion"),
            categories,
            [_Bars(DELTA, DELTA_MARK, spans)],
            "Δ",
            zero=True,
        )
        if body is not None:
            caption = (
                f"*Δ = candidate - champion; bars: {level} intervals, dark band: the estimate. "
                "Right of the line at 0: the candidate scores higher.*"
            )
            found.append(Chart("delta", f"{caption}\n\n{fenced(body)}"))
    return found


@dataclass(frozen=True)
class _Bars:
    """One colour's floating bars: the categories that are its, with their estimates."""

    colour: str
    mark: str
    spans: Mapping[int, Estimate]


def _floating(
    title: str, categories: Sequence[str], groups: Sequence[_Bars], axis: str, zero: bool = False
) -> str | None:
    ends = [v for g in groups for e in g.spans.values() for v in _ends(e)]
    if not ends:
        return None
    low, high = _axis(ends, zero)
    band = (high - low) * 0.012  # the estimate's dark band
    series: list[list[float]] = []
    palette: list[str] = []
    mask = [low] * len(categories)
    for group in groups:
        top, mark, value = ([low] * len(categories) for _ in range(3))
        for i, estimate in group.spans.items():
            v = _value(estimate)
            if v is None:
                continue
            lo, hi = min(_ends(estimate)), max(_ends(estimate))
            top[i], mark[i], value[i], mask[i] = max(hi, v + band), v + band, v, lo
        series += [top, mark, value]
        palette += [group.colour, group.mark, group.colour]
    series.append(mask)
    palette.append(BACKGROUND)
    lines = [
        _init([*palette, ZERO]),
        "xychart-beta horizontal",
        f'    title "{title}"',
        "    x-axis [" + ", ".join(f'"{c}"' for c in categories) + "]",
        f'    y-axis "{axis}" {_number(low)} --> {_number(high)}',
        *("    bar [" + ", ".join(_number(v) for v in s) + "]" for s in series),
    ]
    if zero:
        lines.append("    line [" + ", ".join("0" for _ in categories) + "]")
    return "\n".join(lines)


def _scale_groups(
    rows: Sequence[MetricRow], of: Callable[[MetricRow], Sequence[Estimate | None]]
) -> list[list[MetricRow]]:
    """Metrics whose values (`of` a row) all lie in [0, 1] share charts (of at most
    METRICS_PER_CHART); any other metric (errors, log loss, latency) has its own scale, so
    its own chart."""
    unit: list[MetricRow] = []
    others: list[list[MetricRow]] = []
    for row in rows:
        ends = [v for e in of(row) if e is not None for v in _ends(e)]
        if not ends:
            continue
        if all(0.0 <= v <= 1.0 for v in ends):
            unit.append(row)
        else:
            others.append([row])
    chunks = [unit[i : i + METRICS_PER_CHART] for i in range(0, len(unit), METRICS_PER_CHART)]
    return [*chunks, *others]


def _title(group: Sequence[MetricRow], what: str) -> str:
    """`what`, of the one metric of its chart when it has its own scale."""
    return f"{mermaid_text(group[0].name, NAME)}: {what}" if len(group) == 1 else what


def _value(estimate: Estimate | None) -> float | None:
    if estimate is None or estimate.value is None or not math.isfinite(estimate.value):
        return None
    return estimate.value


def _ends(estimate: Estimate) -> list[float]:
    """The estimate and its interval's ends: the numbers a bar spans."""
    if _value(estimate) is None:
        return []
    values = [estimate.value, estimate.ci_low, estimate.ci_high]
    return [v for v in values if v is not None and math.isfinite(v)]


def _axis(values: Sequence[float], zero: bool) -> tuple[float, float]:
    low, high = min(values), max(values)
    if zero:
        low, high = min(low, 0.0), max(high, 0.0)
    pad = (high - low) * 0.08 or max(abs(high), 1.0) * 0.05
    return low - pad, high + pad


# --- confusion table, curves, residuals ----------------------------------------------------


def confusion_table(candidate: Confusion, champion: Confusion | None = None) -> str:
    """Rows: the true class; columns: the predicted one. The champion's count is in
    brackets where it differs (when both models know the same classes)."""
    k = len(candidate.labels)
    if k > TABLE_CLASSES:
        return (
            f"**Confusion table**: {k} classes, too many to show here "
            "(metrics.json and report.html have it)."
        )
    theirs = champion if champion is not None and champion.labels == candidate.labels else None
    names = [markdown_code(str(label)) for label in candidate.labels]
    lines = [
        "**Confusion table** (rows: true class, columns: predicted"
        + ("; the champion's count in brackets where it differs)" if theirs else ")"),
        "",
        "| true \\ predicted | " + " | ".join(names) + " |",
        "|---|" + "---:|" * k,
    ]
    for i, name in enumerate(names):
        cells = []
        for j in range(k):
            cell = str(candidate.counts[i][j])
            if theirs is not None and theirs.counts[i][j] != candidate.counts[i][j]:
                cell += f" ({theirs.counts[i][j]})"
            cells.append(f"**{cell}**" if i == j else cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def roc_chart(candidate: Curve, champion: Curve | None = None) -> str:
    return _curves(
        "ROC",
        "AUC",
        [c for c in (candidate, champion) if c is not None],
        "false positive rate",
        "true positive rate",
        _roc_at,
        chance=True,
    )


def precision_recall_chart(candidate: Curve, champion: Curve | None = None) -> str:
    return _curves(
        "Precision-recall",
        "average precision",
        [c for c in (candidate, champion) if c is not None],
        "recall",
        "precision",
        _precision_at,
    )


def _curves(
    name: str,
    area: str,
    curves: Sequence[Curve],
    x_axis: str,
    y_axis: str,
    read: Callable[[Curve, float], float],
    chance: bool = False,
) -> str:
    who = ["candidate", "champion"][: len(curves)]
    areas = [f"{w} {c.area:.3f}" for w, c in zip(who, curves, strict=True) if c.area is not None]
    title = f"{name} ({area}: {', '.join(areas)})" if areas else name
    caption = "*" + ", ".join(f"{w} {c}" for w, c in zip(who, ("blue", "grey"), strict=False))
    caption += ("; light grey: chance" if chance else "") + ".*"
    grid = [i / (GRID - 1) for i in range(GRID)]
    lines = [
        _init([CANDIDATE, CHAMPION_MARK][: len(curves)] + ([CHANCE] if chance else [])),
        "xychart-beta",
        f'    title "{title}"',
        f'    x-axis "{x_axis}" 0 --> 1',
        f'    y-axis "{y_axis}" 0 --> 1',
        *(
            "    line [" + ", ".join(_number(read(curve, x)) for x in grid) + "]"
            for curve in curves
        ),
    ]
    if chance:
        lines.append("    line [" + ", ".join(_number(x) for x in grid) + "]")
    body = "\n".join(lines)
    return f"{caption}\n\n{fenced(body)}"


def _roc_at(curve: Curve, x: float) -> float:
    """A ROC curve is straight between its vertices (rows of tied scores make a slope): the
    highest point of a segment over `x` (a vertical segment: its top)."""
    found = 0.0
    points = list(zip(curve.x, curve.y, strict=True))
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if x0 - 1e-9 <= x <= x1 + 1e-9:
            found = max(found, y1 if x1 - x0 < 1e-12 else y0 + (y1 - y0) * (x - x0) / (x1 - x0))
    return found


def _precision_at(curve: Curve, recall: float) -> float:
    """Interpolated precision: the best precision at this recall or beyond."""
    held = (y for cx, y in zip(curve.x, curve.y, strict=True) if cx >= recall - 1e-9)
    return max(held, default=0.0)


def residual_chart(found: Histogram) -> str:
    """How far off the predictions are: rows by residual (true - predicted)."""
    centres = [(a + b) / 2 for a, b in itertools.pairwise(found.edges)]
    width = (found.edges[-1] - found.edges[0]) / max(len(found.counts), 1)
    top = max(found.counts, default=0) or 1
    lines = [
        _init([CANDIDATE]),
        "xychart-beta",
        f'    title "Residuals (true - predicted), {sum(found.counts)} rows"',
        "    x-axis [" + ", ".join(f'"{_tick(c, width)}"' for c in centres) + "]",
        f'    y-axis "rows" 0 --> {top}',
        "    bar [" + ", ".join(str(c) for c in found.counts) + "]",
    ]
    body = "\n".join(lines)
    caption = (
        "*Rows by residual (true - predicted); the end bars also hold the rows beyond the "
        "1st and 99th percentiles.*"
    )
    return f"{caption}\n\n{fenced(body)}"


# --- Mermaid text ----------------------------------------------------------------------------


def _tick(value: float, width: float) -> str:
    """A bin's centre with the decimals that tell it from its neighbours."""
    decimals = max(0, 1 - math.floor(math.log10(width))) if width > 0 else 3
    text = f"{value:.{min(decimals, 9)}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def fenced(body: str) -> str:
    return f"```mermaid\n{body}\n```"


def _init(palette: Sequence[str]) -> str:
    """Colours and a white background: the same picture in GitHub's light and dark themes."""
    config = {
        "theme": "base",
        "themeVariables": {
            "xyChart": {"backgroundColor": BACKGROUND, "plotColorPalette": ", ".join(palette)}
        },
    }
    return f"%%{{init: {json.dumps(config)}}}%%"


def _number(value: float) -> str:
    """Plain decimals (Mermaid reads no exponents)."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text

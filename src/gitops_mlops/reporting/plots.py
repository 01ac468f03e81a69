"""The plots of report.html, drawn by matplotlib's SVG backend into inline SVG text.

No raster anywhere (no `imshow`, nothing `rasterized`): every mark is an SVG path, and text
stays text (`svg.fonttype: none`, drawn by the reader's own sans-serif font, none is loaded).
Text from user data (metric, slice and class names) is escaped by the SVG writer, and math
parsing is off, so a `$` in a class name is a dollar sign, not a formula. Each figure's ids
get a prefix, so several figures live in one page without clashing, and the output does not
depend on the time or a random salt: the same run gives the same bytes.

Curves and histograms come bounded from the records (`records.curves`); a scatter plot
samples at most MAX_SCATTER rows, so the page does not grow with the test set.

matplotlib is imported when a plot is drawn, never at import: `mlops validate` and the
stages before the report do not pay for it. `available()` says whether it is installed.
"""

from __future__ import annotations

import importlib.util
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gitops_mlops.predictions import Predictions
    from gitops_mlops.records.curves import Curves, Histogram

CANDIDATE, CHAMPION, DELTA, GUIDE = "#4c78a8", "#9a9a9a", "#f58518", "#888888"
RC: dict[Any, Any] = {  # keys are rcParams names
    "svg.fonttype": "none",
    "svg.hashsalt": "gitops-mlops",  # ids from content, not a random salt
    "text.parse_math": False,
    "text.usetex": False,
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
# Metadata keys set to None are left out: no date, no creator line.
METADATA = {"Date": None, "Creator": None, "Format": None, "Type": None}
LABEL_CHARS = 28  # longer names are cut in plots (the tables beside them show them whole)
MAX_SCATTER = 2000  # rows in a scatter plot (all rows go into the histograms)
ANNOTATED_CLASSES = 20  # a confusion matrix with more classes has no count in each cell
_REFERENCE = re.compile(r'(\bid="|href="#|url\(#)')
_TAG = re.compile(r"<[^>]*>")


def available() -> bool:
    """Whether matplotlib is installed (it is in the `ml` extra)."""
    return importlib.util.find_spec("matplotlib") is not None


def short(label: object) -> str:
    text = str(label)
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


@dataclass(frozen=True)
class ForestRow:
    """One metric on one set of rows: the candidate, and the champion and Δ when known."""

    label: str
    value: float
    low: float | None = None
    high: float | None = None
    champion: float | None = None
    delta: float | None = None  # candidate - champion
    delta_low: float | None = None
    delta_high: float | None = None


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasSVG(figure)
    return figure


def svg(figure: Any, prefix: str) -> str:
    """The figure as an inline <svg> element whose ids all start with `prefix`."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata=METADATA)
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    # Only inside tags: text between tags is escaped data and is left as it is.
    return _TAG.sub(lambda tag: _REFERENCE.sub(rf"\g<1>{prefix}", tag.group(0)), text)


def draw(prefix: str, plot: Callable[..., Any], *args: Any) -> str:
    """`plot(*args)` (a function of this module) as inline SVG with ids prefixed `prefix`."""
    import matplotlib

    with matplotlib.rc_context(RC):
        return svg(plot(*args), prefix)


def forest(rows: Sequence[ForestRow], level: str) -> Any:
    """Each metric on its own row and scale (metrics differ in units): the candidate's value
    with its interval, the champion's beside it, and Δ with its interval against zero."""
    with_delta = any(row.delta is not None for row in rows)
    figure = _figure(9.5 if with_delta else 6.5, 0.35 + 0.5 * len(rows))
    axes = figure.subplots(len(rows), 2 if with_delta else 1, squeeze=False)
    for i, row in enumerate(rows):
        left = axes[i][0]
        _interval(left, row.value, row.low, row.high, 0.0, CANDIDATE)
        if row.champion is not None:
            _interval(left, row.champion, None, None, -0.45, CHAMPION)
        left.set_ylim(-0.8, 0.4)
        left.set_yticks([])
        left.set_ylabel(short(row.label), rotation=0, ha="right", va="center")
        if with_delta:
            right = axes[i][1]
            right.axvline(0.0, color=GUIDE, linewidth=0.8)
            if row.delta is not None:
                _interval(right, row.delta, row.delta_low, row.delta_high, 0.0, DELTA)
            right.set_ylim(-0.6, 0.6)
            right.set_yticks([])
    axes[0][0].set_title(f"candidate (blue), champion (grey); {level} intervals")
    if with_delta:
        axes[0][1].set_title(f"Δ = candidate - champion; {level} intervals")
    return figure


def _interval(
    axis: Any, value: float, low: float | None, high: float | None, y: float, colour: str
) -> None:
    if low is not None and high is not None:
        axis.hlines(y, low, high, color=colour, linewidth=2.5)
    axis.plot([value], [y], marker="o", markersize=5, color=colour)


def confusion(labels: Sequence[str], counts: Sequence[Sequence[int]]) -> Any:
    """Counts of true (rows) against predicted (columns) classes, as vector cells."""
    import numpy as np

    matrix = np.asarray(counts, dtype=np.int64)
    k = len(labels)
    side = min(2.5 + 0.45 * k, 10.0)
    figure = _figure(side + 1.0, side)
    axis = figure.subplots()
    mesh = axis.pcolormesh(matrix, cmap="Blues", edgecolors="white", linewidth=0.5)
    scale = figure.colorbar(mesh, ax=axis, label="rows")
    scale.solids.set_rasterized(False)  # a colour bar of many steps is a PNG by default
    axis.set_xlim(0, k)
    axis.set_ylim(k, 0)
    axis.set_aspect("equal")
    ticks = [i + 0.5 for i in range(k)]
    shown = [short(label) for label in labels] if k <= 2 * ANNOTATED_CLASSES else []
    axis.set_xticks(ticks if shown else [], shown, rotation=45, ha="right")
    axis.set_yticks(ticks if shown else [], shown)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    if k <= ANNOTATED_CLASSES:
        top = int(matrix.max()) or 1
        for i in range(k):
            for j in range(k):
                ink = "white" if matrix[i, j] > top / 2 else "black"
                axis.text(j + 0.5, i + 0.5, str(matrix[i, j]), ha="center", va="center", color=ink)
    return figure


def binary_curves(ours: Curves, theirs: Curves | None) -> Any:
    """ROC, precision-recall and calibration of the positive class, as evaluation recorded
    them (`records.curves`), the champion's on the same rows beside the candidate's."""
    figure = _figure(11.5, 3.8)
    roc_axis, pr_axis, cal_axis = figure.subplots(1, 3)
    panels = (
        (roc_axis, "roc", "ROC", "false positive rate", "true positive rate"),
        (pr_axis, "precision_recall", "Precision-recall", "recall", "precision"),
        (cal_axis, "calibration", "Calibration", "mean predicted probability", "share positive"),
    )
    for axis, key, title, x_label, y_label in panels:
        for who, found, colour in (("candidate", ours, CANDIDATE), ("champion", theirs, CHAMPION)):
            curve = getattr(found, key) if found is not None else None
            if curve is None:
                continue
            area = "" if curve.area is None else f" ({curve.area:.3f})"
            style = {"marker": "o", "markersize": 3} if key == "calibration" else {}
            axis.plot(curve.x, curve.y, color=colour, label=who + area, **style)
        if key != "precision_recall":
            axis.plot([0, 1], [0, 1], linestyle=":", color=GUIDE)
        axis.set_title(title)
        axis.set_xlabel(x_label)
        axis.set_ylabel(y_label)
        axis.set_xlim(0, 1)
        axis.set_ylim(0, 1.02)
        axis.legend(loc="lower left" if key == "precision_recall" else "lower right")
    return figure


def residuals(ours: Histogram, theirs: Histogram | None, rows: Predictions | None) -> Any:
    """The residuals' histogram (as evaluation recorded it; the champion's outlined) and,
    when the run kept its predictions, predicted against true for a sample of rows."""
    import numpy as np

    figure = _figure(11.0 if rows is not None else 6.0, 3.8)
    axes = figure.subplots(1, 2 if rows is not None else 1, squeeze=False)[0]
    left = axes[0]
    left.stairs(ours.counts, ours.edges, fill=True, color=CANDIDATE, label="candidate")
    if theirs is not None:
        left.stairs(theirs.counts, theirs.edges, color="#333333", label="champion")
        left.legend()
    left.axvline(0.0, color=GUIDE, linewidth=0.8)
    left.set_title("Residuals (true - predicted; tails in the end bins)")
    left.set_xlabel("residual")
    left.set_ylabel("rows")
    if rows is None:
        return figure
    y_true, y_pred = rows.y_true.astype(float), rows.y_pred.astype(float)
    sample = np.arange(y_true.size)
    if y_true.size > MAX_SCATTER:  # the same rows every time: a fixed seed
        sample = np.sort(np.random.default_rng(0).choice(y_true.size, MAX_SCATTER, replace=False))
    note = "" if sample.size == y_true.size else f" ({sample.size} of {y_true.size} rows)"
    right = axes[1]
    right.scatter(y_true[sample], y_pred[sample], s=6, color=CANDIDATE, alpha=0.6)
    ends = [float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))]
    right.plot(ends, ends, linestyle=":", color=GUIDE)
    right.set_title("Predicted against true" + note)
    right.set_xlabel("true")
    right.set_ylabel("predicted")
    return figure

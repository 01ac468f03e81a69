"""How the reports write a number: four significant digits, a difference with its sign, and
"—" where there is no value.

report.md, report.html, the model card, `mlops runs` and `mlops diff` all write numbers
through these, so the same value reads the same wherever it is shown.
"""

from __future__ import annotations

NONE = "—"  # no value (not measured, not comparable)


def number(value: float | None) -> str:
    return NONE if value is None else f"{value:.4g}"


def signed(value: float | None) -> str:
    """A difference (Δ): always with its sign, so "+0.01" and "-0.01" do not read alike."""
    return NONE if value is None else f"{value:+.4g}"


def span(low: float | None, high: float | None, *, sign: bool = False) -> str:
    """An interval `[low, high]` (of a difference, with `sign`), or "—" when an end is
    missing."""
    if low is None or high is None:
        return NONE
    write = signed if sign else number
    return f"[{write(low)}, {write(high)}]"

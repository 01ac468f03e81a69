"""The one way the reports write numbers and names (report.md, report.html, the model card,
`mlops runs`, `mlops diff`): a change here shows everywhere at once, so it is pinned."""

from __future__ import annotations

import pytest

from gitops_mlops.reporting.escaping import terminal_text
from gitops_mlops.reporting.numbers import number, signed, span


@pytest.mark.parametrize(
    ("value", "plain", "with_sign"),
    [
        (None, "—", "—"),
        (0.912345, "0.9123", "+0.9123"),
        (-0.0123456, "-0.01235", "-0.01235"),
        (0.0, "0", "+0"),
        (12345.6, "1.235e+04", "+1.235e+04"),
        (3, "3", "+3"),
    ],
)
def test_numbers_have_four_significant_digits_and_a_dash_for_none(
    value: float | None, plain: str, with_sign: str
) -> None:
    assert number(value) == plain
    assert signed(value) == with_sign


def test_an_interval_needs_both_ends() -> None:
    assert span(0.9, 0.95) == "[0.9, 0.95]"
    assert span(-0.01, 0.02, sign=True) == "[-0.01, +0.02]"
    assert span(None, 0.95) == span(0.9, None) == span(None, None, sign=True) == "—"


def test_terminal_text_escapes_what_would_move_the_cursor_or_split_the_line() -> None:
    assert terminal_text("long-petals ü") == "long-petals ü"
    assert terminal_text("a\x1b[2J\nb\tc") == "a\\x1b[2J\\nb\\tc"

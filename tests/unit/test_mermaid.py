"""The Mermaid charts as text: what each one encodes, that it stays bounded, and that no name
can break out of its string, its chart or its Markdown table (read by cmark-gfm, GitHub's
own Markdown renderer). The real Mermaid draws them in tests/integration/test_mermaid_render.py.
"""

from __future__ import annotations

import html
import re

import cmarkgfm
import pytest
from cmarkgfm.cmark import Options

from gitops_mlops.records.curves import Confusion, Curve, Curves, Histogram
from gitops_mlops.records.metrics import Estimate
from gitops_mlops.reporting import escaping, mermaid
from tests.mermaid_cli import blocks

HOSTILE = (
    'f1"]\n```\n<script>alert(1)</script>',
    '%%{init: {"theme": "dark"}}%%',
    "a; line [1, 2]\n    bar [3]",
    "@octocat #1 [x](https://evil.example) <img src=x onerror=alert(1)> ``code`` | pipe \\|",
    "`",
    "x | y \\| z `",
    "é 中文 \u202eevil\u202c\x00",
    "",
)
# Every line of a chart is one of these: strings hold no quote, numbers no exponent.
NUMBER = r"-?\d+(\.\d+)?"
NUMBERS = rf"\[({NUMBER}(, {NUMBER})*)?\]"
STRINGS = r'\[("[^"\n]*"(, "[^"\n]*")*)?\]'
GRAMMAR = [
    r'%%\{init: \{"theme": "base", "themeVariables": \{"xyChart": \{"backgroundColor": '
    r'"#ffffff", "plotColorPalette": "#[0-9a-f]{6}(, #[0-9a-f]{6})*"\}\}\}\}%%',
    r"xychart-beta( horizontal)?",
    r'    title "[^"\n]*"',
    rf'    x-axis ({STRINGS}|"[^"\n]*" {NUMBER} --> {NUMBER})',
    rf'    y-axis "[^"\n]*" {NUMBER} --> {NUMBER}',
    rf"    (bar|line) {NUMBERS}",
]


def _rows(names: tuple[str, ...] = ("accuracy", "f1")) -> list[mermaid.MetricRow]:
    return [
        mermaid.MetricRow(
            name, Estimate(0.8, 0.7, 0.9), Estimate(0.75, 0.7, 0.8), Estimate(0.05, 0.01, 0.09)
        )
        for name in names
    ]


def _curves() -> Curves:
    return Curves(
        confusion=Confusion(("no", "yes"), ((40, 5), (3, 52))),
        roc=Curve((0.0, 0.0, 0.5, 1.0), (0.0, 0.6, 0.9, 1.0), 0.85),
        precision_recall=Curve((0.0, 0.5, 0.9, 1.0), (1.0, 0.95, 0.7, 0.55), 0.8),
        residuals=Histogram((-2.0, -1.0, 0.0, 1.0, 2.0), (3, 10, 12, 4)),
    )


def _series(block: str, kind: str) -> list[list[float]]:
    return [
        [float(v) for v in found.split(", ")]
        for found in re.findall(rf"^    {kind} \[(.*)\]$", block, re.MULTILINE)
    ]


def test_every_line_of_every_chart_is_mermaid_with_hostile_names() -> None:
    rows = _rows(HOSTILE) + [
        mermaid.MetricRow(name, Estimate(1e-9, -5e-7, 3e8), Estimate(2.5e7), Estimate(-1e-8))
        for name in HOSTILE
    ]
    charts = mermaid.charts(rows, "95%", _curves(), _curves())
    found = [block for chart in charts for block in blocks(chart.markdown)]
    assert len(found) == sum(chart.kind != "confusion" for chart in charts) >= 6
    for block in found:
        for line in block.splitlines():
            assert any(re.fullmatch(rule, line) for rule in GRAMMAR), line
        assert "```" not in block and "<" not in block.split("\n", 1)[1]
    # The Markdown around them: every fence closes, nothing else starts one.
    text = "\n\n".join(chart.markdown for chart in charts)
    fences = [line for line in text.splitlines() if line.startswith("```")]
    assert fences == ["```mermaid", "```"] * len(found)


def test_an_interval_is_a_floating_bar_with_a_band_at_the_estimate() -> None:
    (chart,) = mermaid.metric_charts(
        [mermaid.MetricRow("accuracy", Estimate(0.8, 0.7, 0.9), Estimate(0.6))], "95%"
    )
    top, mark, value, their_top, their_mark, their_value, mask = _series(chart.markdown, "bar")
    # Categories: accuracy candidate, accuracy champion.
    assert (top[0], value[0], mask[0]) == (0.9, 0.8, 0.7)
    assert value[0] < mark[0] < top[0]
    # The champion has no interval: only the band at its value shows.
    assert their_value[1] == mask[1] == 0.6 and their_mark[1] == their_top[1] > 0.6
    # The other series are empty (at the axis' low end) in the other's category.
    low = float(re.search(r'y-axis "value" (\S+)', chart.markdown).group(1))  # type: ignore[union-attr]
    assert top[1] == mark[1] == value[1] == their_value[0] == low < 0.6
    assert "candidate blue, champion grey; bars: 95% intervals" in chart.markdown


def test_delta_has_its_zero_line_and_says_which_metrics_are_better_low() -> None:
    rows = [
        mermaid.MetricRow("accuracy", Estimate(0.8), Estimate(0.7), Estimate(0.1, 0.05, 0.15)),
        mermaid.MetricRow(
            "log_loss", Estimate(0.3), Estimate(0.4), Estimate(-0.1, -0.2, 0.0), True
        ),
        mermaid.MetricRow("f1", Estimate(0.8), None, None),  # no champion: no Δ
    ]
    (chart,) = mermaid.delta_charts(rows, "90%")
    assert '["accuracy", "log_loss (lower better)"]' in chart.markdown
    assert _series(chart.markdown, "line") == [[0.0, 0.0]]
    low, high = map(
        float, re.findall(rf'y-axis "Δ" ({NUMBER}) --> ({NUMBER})', chart.markdown)[0][::2]
    )
    assert low < -0.2 and high > 0.15


def test_metrics_of_other_scales_get_their_own_charts_and_many_metrics_are_split() -> None:
    rows = [
        *_rows(tuple(f"m{i}" for i in range(30))),
        mermaid.MetricRow("rmse", Estimate(52.0, 48.0, 57.0)),
        mermaid.MetricRow("r2", Estimate(-0.2, -0.4, 0.1)),
    ]
    charts = mermaid.metric_charts(rows, "95%")
    assert len(charts) == 3 + 2
    axes = [re.findall(r"x-axis \[(.*)\]", c.markdown)[0] for c in charts]
    categories = [len(axis.split('", "')) for axis in axes]
    assert categories == [24, 24, 12, 1, 1]
    assert 'title "rmse: candidate"' in charts[3].markdown


def test_curves_are_read_on_an_even_grid() -> None:
    roc = mermaid.roc_chart(_curves().roc, Curve((0.0, 1.0), (0.0, 1.0), 0.5))  # type: ignore[arg-type]
    ours, theirs, chance = _series(roc, "line")
    assert len(ours) == len(chance) == mermaid.GRID
    # Straight between vertices, the top of a vertical step.
    assert ours[0] == 0.6 and ours[5] == 0.75 and ours[10] == 0.9 and ours[15] == 0.95
    assert theirs[10] == 0.5 and chance[4] == 0.2
    assert 'title "ROC (AUC: candidate 0.850, champion 0.500)"' in roc
    (pr,) = _series(mermaid.precision_recall_chart(_curves().precision_recall), "line")  # type: ignore[arg-type]
    # Interpolated precision: the best precision at that recall or beyond.
    assert pr[0] == 1.0 and pr[10] == 0.95 and pr[11] == 0.7 and pr[-1] == 0.55


def test_residuals_are_bars_over_the_bin_centres() -> None:
    chart = mermaid.residual_chart(Histogram((-2.0, -1.0, 0.0, 1.0, 2.0), (3, 10, 12, 4)))
    assert '["-1.5", "-0.5", "0.5", "1.5"]' in chart
    assert _series(chart, "bar") == [[3.0, 10.0, 12.0, 4.0]]
    assert 'title "Residuals (true - predicted), 29 rows"' in chart
    fine = mermaid.residual_chart(Histogram((1000.0, 1000.01, 1000.02), (1, 2)))
    assert '["1000.005", "1000.015"]' in fine  # neighbours stay apart


def _render(markdown: str) -> str:
    # Unsafe: raw HTML would pass through, so what keeps it out is our escaping.
    return cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE)  # type: ignore[no-any-return]


def test_class_labels_cannot_break_out_of_the_confusion_table() -> None:
    labels = HOSTILE
    k = len(labels)
    counts = tuple(tuple(i * k + j for j in range(k)) for i in range(k))
    champion = Confusion(
        labels,
        tuple(tuple(c + (i == j) for j, c in enumerate(row)) for i, row in enumerate(counts)),
    )
    table = mermaid.confusion_table(Confusion(labels, counts), champion)
    page = _render(table)
    rows = re.findall(r"<tr>(.*?)</tr>", page, re.DOTALL)
    assert len(rows) == k + 1
    assert all(row.count("<td") + row.count("<th") == k + 1 for row in rows)
    for tag in ("<script", "<img", "<a ", "<em>", "<strong>x"):
        assert tag not in page
    codes = [html.unescape(c) for c in re.findall(r"<code>(.*?)</code>", page, re.DOTALL)]
    shown = [escaping.markdown_code(label).strip("`").strip(" ") or " " for label in labels]
    assert codes == [s.replace("\\|", "|") for s in shown] * 2
    assert (
        "@octocat #1 [x](https://evil.example) <img src=x onerror=alert(1)> ``code`` | p…" in codes
    )
    assert (
        "x | y \\| z `" in codes and "`" in codes and 'f1"] ``` <script>alert(1)</script>' in codes
    )
    # The diagonal is bold; the champion's differing count in brackets.
    assert "<strong>0 (1)</strong>" in page and '<td align="right">1</td>' in page


def test_a_confusion_table_of_many_classes_is_a_note() -> None:
    labels = tuple(f"c{i}" for i in range(mermaid.TABLE_CLASSES + 1))
    counts = tuple(tuple(0 for _ in labels) for _ in labels)
    note = mermaid.confusion_table(Confusion(labels, counts))
    assert "21 classes, too many to show here" in note and "|" not in note


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("petal length (cm)", "petal length (cm)"),
        ('a"b', "a_b"),
        ("%%{init}%%", "___init___"),
        ("x\ny", "x y"),
        ("Δ 中文", "Δ 中文"),
        ("a" * 100, "a" * 79 + "…"),
    ],
)
def test_mermaid_names_keep_letters_and_lose_syntax(name: str, shown: str) -> None:
    assert escaping.mermaid_text(name) == shown


def test_numbers_are_plain_decimals() -> None:
    (chart,) = mermaid.metric_charts([mermaid.MetricRow("x", Estimate(1e-9, -2e-7, 4.5e8))], "95%")
    assert "e-" not in chart.markdown.split("\n", 3)[3] and "450000000" in chart.markdown

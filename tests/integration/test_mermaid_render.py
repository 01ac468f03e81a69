"""Every kind of chart the report holds, drawn by the real Mermaid (mermaid-cli in headless
Chromium), from summaries of real models' predictions and with hostile names: any parse or
render error fails. All charts are drawn in one browser session (one `mmdc` run)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from gitops_mlops import curves
from gitops_mlops.predictions import Predictions
from gitops_mlops.records.metrics import Estimate
from gitops_mlops.reporting import mermaid
from tests import mermaid_cli

# Names a user can give a slice, a training command's metric or a class.
HOSTILE = (
    'f1"]\n```\n<script>alert(1)</script>',
    '%%{init: {"theme": "dark", "themeVariables": {"xyChart": {"backgroundColor": "#000"}}}}%%',
    "a; line [1, 2]\n    bar [3]",
    "@octocat #1 [x](https://evil.example) <img src=x onerror=alert(1)> `code` | pipe",
    "é 中文 \u202eevil\u202c " + "x" * 200,
)


def _fit(seed: int, c: float) -> tuple[Predictions, Predictions]:
    """Two logistic regressions on breast cancer rows: a candidate and a weaker champion."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    x, y = load_breast_cancer(return_X_y=True)
    x = (x - x.mean(axis=0)) / x.std(axis=0)  # scaled: the solver converges at once
    rng = np.random.default_rng(seed)
    test = rng.permutation(y.size)[:150]
    train = np.setdiff1d(np.arange(y.size), test)
    found = []
    for strength in (c, 1e-3):
        model = LogisticRegression(C=strength).fit(x[train], y[train])
        found.append(
            Predictions.classification(
                y[test], model.predict(x[test]), model.predict_proba(x[test]), [0, 1]
            )
        )
    return found[0], found[1]


def _regression() -> Predictions:
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    x, y = load_diabetes(return_X_y=True)
    model = Ridge(alpha=0.1).fit(x[:300], y[:300])
    return Predictions.regression(y[300:], model.predict(x[300:]))


def _rows() -> list[mermaid.MetricRow]:
    rows = [
        mermaid.MetricRow(
            "accuracy",
            Estimate(0.95, 0.92, 0.97),
            Estimate(0.9, 0.86, 0.94),
            Estimate(0.05, 0.02, 0.08),
        ),
        mermaid.MetricRow("roc_auc", Estimate(0.99, 0.98, 1.0), Estimate(0.99), Estimate(0.0)),
        mermaid.MetricRow(
            "log_loss", Estimate(0.1, 0.07, 0.14), Estimate(0.3), Estimate(-0.2, -0.25, -0.15), True
        ),
        mermaid.MetricRow(
            "rmse", Estimate(52.5, 48.0, 57.1), Estimate(55.0), Estimate(-2.5, -4.0, -1.0), True
        ),
        mermaid.MetricRow("r2", Estimate(-0.35, -0.6, -0.1)),  # below 0: its own scale
    ]
    rows += [
        mermaid.MetricRow(
            name, Estimate(0.5 + i / 20, 0.4, 0.7), Estimate(0.6), Estimate(-0.1, -0.3, 0.1)
        )
        for i, name in enumerate(HOSTILE)
    ]
    return rows


@pytest.fixture(scope="module")
def document() -> tuple[str, list[mermaid.Chart]]:
    candidate, champion = _fit(seed=0, c=1.0)
    binary = mermaid.charts(
        _rows(),
        "95%",
        curves.summarise(candidate, "classification"),
        curves.summarise(champion, "classification"),
    )
    # Three classes with hostile labels: a table, no curves.
    labels = np.array(HOSTILE[:3], dtype=object)
    truth = labels[np.arange(30) % 3]
    guess = labels[(np.arange(30) + (np.arange(30) % 4 == 0)) % 3]
    multiclass = mermaid.curve_charts(
        curves.summarise(
            Predictions.classification(truth, guess, None, HOSTILE[:3]), "classification"
        )
    )
    regression = mermaid.curve_charts(curves.summarise(_regression(), "regression"))
    every = [*binary, *multiclass, *regression]
    return "\n\n".join(chart.markdown for chart in every) + "\n", every


@pytest.fixture(scope="module")
def renderer() -> mermaid_cli.MermaidCli:
    return mermaid_cli.require()


@pytest.fixture(scope="module")
def drawn(
    renderer: mermaid_cli.MermaidCli,
    document: tuple[str, list[mermaid.Chart]],
    tmp_path_factory: pytest.TempPathFactory,
) -> list[str]:
    return renderer.render(document[0], tmp_path_factory.mktemp("mermaid"))


def test_every_chart_kind_is_drawn(
    drawn: list[str], document: tuple[str, list[mermaid.Chart]]
) -> None:
    text, charts = document
    kinds = {chart.kind for chart in charts}
    assert kinds == {"metrics", "delta", "confusion", "roc", "precision-recall", "residuals"}
    blocks = mermaid_cli.blocks(text)
    assert len(drawn) == len(blocks) == sum(c.kind != "confusion" for c in charts)
    for block, svg in zip(blocks, drawn, strict=True):
        assert svg.startswith("<svg") and "Syntax error" not in svg
        title = re.search(r'title "([^"]*)"', block)
        assert title is not None and _texts(svg)[0] == title.group(1)
        bars = block.count("\n    bar [")
        lines = block.count("\n    line [")
        # Mermaid drew every series: one group of bars or one line per series.
        assert len(re.findall(r'class="bar-plot-\d+"', svg)) == bars
        assert len(re.findall(r'class="line-plot-\d+"', svg)) == lines


def test_intervals_are_drawn_in_the_chosen_colours(
    drawn: list[str], document: tuple[str, list[mermaid.Chart]]
) -> None:
    """The palette (and the white mask that makes bars float) took effect: no name, however
    hostile, set another theme."""
    blocks = mermaid_cli.blocks(document[0])
    metric_svgs = [svg for block, svg in zip(blocks, drawn, strict=True) if "candidate vs" in block]
    assert metric_svgs
    for svg in metric_svgs:
        fills = _bar_fills(svg)
        assert fills[0] == mermaid.CANDIDATE.lower() and fills[-1] == mermaid.BACKGROUND
        assert mermaid.CHAMPION.lower() in fills


def test_hostile_names_stay_text(
    drawn: list[str], document: tuple[str, list[mermaid.Chart]]
) -> None:
    for svg in drawn:
        assert "<script" not in svg and "onerror" not in svg and "<img" not in svg
        assert "#000" not in _bar_fills(svg)
    labels = [t for svg in drawn for t in _texts(svg)]
    assert "f1__ ___ _script_alert(1)_/… candidate" in labels
    assert any(t.startswith("é 中文") for t in labels)


def test_a_chart_mermaid_cannot_read_fails(
    renderer: mermaid_cli.MermaidCli, tmp_path: Path
) -> None:
    """The check above can fail: a chart with a broken string is refused, saying where."""
    (tmp_path / "bad.md").write_text(
        '```mermaid\nxychart-beta\n    title "open\n    bar [1]\n```\n'
    )
    (tmp_path / "p.json").write_text(
        "{}" if not mermaid_cli.PUPPETEER_CONFIG else '{"args": ["--no-sandbox"]}'
    )
    done = renderer.run(tmp_path / "bad.md", tmp_path / "out.md", tmp_path / "p.json")
    assert done.returncode != 0 and "Parse error" in done.stderr


def _texts(svg: str) -> list[str]:
    return re.findall(r"<text[^>]*>([^<]*)</text>", svg)


def _bar_fills(svg: str) -> list[str]:
    """The fill of the first bar of each bar series, in drawing order."""
    groups = re.findall(r'class="bar-plot-\d+">\s*<rect[^>]*fill="([^"]+)"', svg)
    return [fill.lower() for fill in groups]

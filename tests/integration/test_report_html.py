"""report.html: written by every run, self-contained, escaped, and opened in a real browser.

The browser is Debian's Chromium driven over the DevTools protocol (tests/chromium.py): the
page must load with no console error, no exception, no browser log error (a blocked
request is one) and no request at all, and its screenshot must show something. A control
page shows that the checks see each of those things when they happen.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from gitops_mlops import curves
from gitops_mlops.predictions import Predictions
from gitops_mlops.records.comparison import Comparison, Delta
from gitops_mlops.records.metrics import Estimate, IntervalSettings, Metrics
from gitops_mlops.records.verdict import ChampionRef, GateRow, Verdict
from gitops_mlops.reporting import html
from gitops_mlops.spec.model import Spec
from gitops_mlops.stages.report import html_link
from gitops_mlops.stages.validate import load
from tests import chromium
from tests.conftest import run_cli
from tests.integration.helpers import run_until, write_spec

HOSTILE_COLUMN = "<img src=x onerror=alert('column')>"
HOSTILE_LABELS = ("<script>alert('label')</script>", "$\\frac{a}{b}$ & </text></svg>")
HOSTILE_DESCRIPTION = "</title><script>alert('description')</script>"


@pytest.fixture(scope="module")
def browser() -> Iterator[chromium.Chromium]:
    started = chromium.Chromium(chromium.require())
    try:
        yield started
    finally:
        started.close()


def _hostile_project(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 2))
    label = np.where(x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.7, size=240) > 0, 1, 0)
    lines = [f'"{HOSTILE_COLUMN}",other,label']
    for (a, b), y in zip(x, label, strict=True):
        text = HOSTILE_LABELS[y].replace('"', '""')
        lines.append(f'{a:.4f},{b:.4f},"{text}"')
    (folder / "data.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    spec = folder / "mlops.yaml"
    spec.write_text(
        f"""apiVersion: mlops/v1
kind: ModelPipeline
metadata:
  name: hostile
  description: "{HOSTILE_DESCRIPTION}"
task: classification
data:
  train: {{path: data.csv, target: label}}
  split: {{test_size: 0.3, seed: 0}}
model:
  estimator: sklearn.linear_model.LogisticRegression
evaluation:
  metrics: [accuracy, f1, roc_auc]
  confidence: {{level: 0.9, resamples: 200}}
  latency: false
  slices:
    - {{name: positive-column, where: {{column: "{HOSTILE_COLUMN}", op: ">", value: 0}}}}
gate:
  thresholds:
    - {{metric: accuracy, min: 0.6}}
""",
        encoding="utf-8",
    )
    return spec


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`mlops run` of a spec and data whose names and labels are HTML and SVG."""
    folder = tmp_path_factory.mktemp("hostile")
    spec = _hostile_project(folder)
    result = run_cli("run", str(spec), "--out", str(folder / "run"))
    assert result.code == 0, result.out + result.err
    assert f"report with plots: {folder / 'run' / 'report.html'}" in result.err
    return folder / "run"


def test_every_run_writes_report_html_with_user_text_escaped(hostile_run: Path) -> None:
    page = (hostile_run / "report.html").read_text(encoding="utf-8")
    lowered = page.lower()
    assert "<script" not in lowered and "<img" not in lowered and "</text></svg>" not in page
    assert html.CSP in page
    assert "&lt;/title&gt;&lt;script&gt;alert(&#x27;description&#x27;)" in page
    assert "&lt;img src=x onerror=alert(&#x27;column&#x27;)&gt;" in page  # provenance features
    assert re.search(r"<th>test rows digest</th><td><code>sha256:[0-9a-f]{64}</code>", page)
    for tag in ("<link", "<iframe", "<object", "<embed", "<image", "http://", "https://", "url("):
        remaining = page.replace("http://www.w3.org/", "")  # SVG namespaces, not requests
        assert tag not in re.sub(r"url\(#f\d+-", "", remaining), tag
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert ids and len(ids) == len(set(ids)), "ids clash between figures"


def test_report_html_opens_offline_in_chromium(
    hostile_run: Path, browser: chromium.Chromium
) -> None:
    seen = browser.visit(hostile_run / "report.html")
    assert seen.problems == [] and seen.requests == []
    assert seen.facts["scripts"] == 0
    assert seen.facts["svgs"] == 4  # forest plots (every row, the slice), confusion, curves
    assert seen.facts["title"] == "hostile " + seen.facts["title"].split()[-1]
    text = seen.facts["text"]
    assert HOSTILE_DESCRIPTION in text and HOSTILE_COLUMN in text  # shown, as text
    sections = " ".join(seen.facts["sections"])
    assert "Slice positive-column" in sections and "Confusion matrix" in sections
    assert "ROC, precision-recall and calibration" in sections
    assert all(label in text for label in HOSTILE_LABELS)  # the confusion table's classes
    assert chromium.ink(seen.screenshot) > 0.02


def test_the_browser_checks_see_errors_and_requests(
    tmp_path: Path, browser: chromium.Chromium
) -> None:
    """The control: a page that fetches, logs an error and throws is caught on each count."""
    page = tmp_path / "bad.html"
    page.write_text(
        "<!DOCTYPE html><html><head><title>bad</title>"
        '<link rel="stylesheet" href="http://127.0.0.1:9/style.css"></head><body>'
        '<img src="http://127.0.0.1:9/picture.png"><script>console.error("logged");'
        "not_defined();</script></body></html>",
        encoding="utf-8",
    )
    seen = browser.visit(page)
    assert seen.console_errors == ["logged"]
    assert len(seen.exceptions) == 1 and "not_defined" in seen.exceptions[0]
    assert sorted(seen.requests) == [
        "http://127.0.0.1:9/picture.png",
        "http://127.0.0.1:9/style.css",
    ]
    assert seen.facts["scripts"] == 1
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><title>blank</title>", encoding="utf-8")
    assert chromium.ink(browser.visit(blank).screenshot) == 0.0


def test_the_policy_blocks_what_slips_into_the_page(
    tmp_path: Path, browser: chromium.Chromium
) -> None:
    """Defence in depth: under report.html's Content-Security-Policy, a reference to the
    outside is blocked before it leaves (the browser says so) and a script does not run."""
    page = tmp_path / "slipped.html"
    page.write_text(
        f'<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" '
        f'content="{html.CSP}"><title>x</title></head><body>'
        '<img src="http://127.0.0.1:9/picture.png"><script>console.error("ran")</script>'
        "</body></html>",
        encoding="utf-8",
    )
    seen = browser.visit(page)
    assert seen.blocked == [("http://127.0.0.1:9/picture.png", "csp")]
    assert seen.console_errors == []  # the script did not run
    assert any("Content Security Policy" in line for line in seen.log_errors), seen.log_errors


# --- the plots of predictions, from real models ------------------------------------------


def _spec(task: str, tmp_path: Path) -> Spec:
    folder = tmp_path / task
    folder.mkdir()
    dataset, estimator, metric = {
        "classification": ("breast_cancer", "DummyClassifier", "accuracy"),
        "regression": ("diabetes", "DummyRegressor", "r2"),
    }[task]
    (folder / "mlops.yaml").write_text(
        f"apiVersion: mlops/v1\nkind: ModelPipeline\nmetadata: {{name: {task}}}\n"
        f"task: {task}\ndata: {{train: {{builtin: {dataset}}}}}\n"
        f"model: {{estimator: sklearn.dummy.{estimator}}}\n"
        f"evaluation: {{metrics: [{metric}]}}\n",
        encoding="utf-8",
    )
    return load(folder / "mlops.yaml")


def _binary_predictions() -> tuple[Predictions, Predictions]:
    """A candidate and a weaker champion, on the same test rows."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load_breast_cancer(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, random_state=0)
    found = []
    for model in (
        make_pipeline(StandardScaler(), LogisticRegression()),
        DummyClassifier(strategy="stratified", random_state=0),
    ):
        model.fit(x_train, y_train)
        found.append(
            Predictions.classification(
                y_test, model.predict(x_test), model.predict_proba(x_test), model.classes_
            )
        )
    return found[0], found[1]


def _regression_predictions() -> Predictions:
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import train_test_split

    x, y = load_diabetes(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, random_state=0)
    return Predictions.regression(y_test, Ridge().fit(x_train, y_train).predict(x_test))


MEASURED = Metrics(
    {"accuracy": Estimate(0.95, 0.92, 0.97, "wilson"), "latency_p95_ms": Estimate(3.2)},
    slices={"large": {"accuracy": Estimate(0.9, 0.8, 0.95, "wilson")}},
    slice_rows={"large": 40},
    n_test=143,
    confidence=IntervalSettings(0.95, 200, 0),
)
VERDICT = Verdict(
    passed=False,
    rows=(
        GateRow(0, "accuracy", None, "max_regression", "estimate", 0.95, 0.96, 0.97, False, "r"),
    ),
    champion=ChampionRef("production", "0123456789ab"),
)
PAIRED = Comparison(
    mode="paired",
    champion="production 0123456789ab",
    source="registry.example/acme/model@sha256:00",
    level=0.95,
    n_rows=143,
    rows=(
        Delta("accuracy", None, 0.95, 0.62, 0.33, 0.25, 0.41, "wilson", "better"),
        Delta("accuracy", "large", 0.9, 0.6, 0.3, 0.1, 0.5, "bootstrap", "better"),
    ),
)


def test_gate_rows_give_the_champion_when_there_is_no_comparison(tmp_path: Path) -> None:
    page = html.Page(_spec("classification", tmp_path), MEASURED, VERDICT, {})
    text = html.render(page)
    assert "its recorded metrics, measured on its own test rows" in text
    # The champion's recorded value from the gate row: Δ = 0.95 - 0.97, no interval.
    assert "<td class='n'>0.97</td><td class='n'>-0.02</td><td class='n'>—</td>" in text


def test_binary_page_has_every_plot_and_opens_cleanly(
    tmp_path: Path, browser: chromium.Chromium
) -> None:
    ours, theirs = _binary_predictions()
    page = html.Page(
        _spec("classification", tmp_path),
        replace(MEASURED, curves=curves.summarise(ours, "classification"), positive_label=1),
        VERDICT,
        {"model_version": "abc"},
        comparison=replace(PAIRED, curves=curves.summarise(theirs, "classification")),
    )
    text = html.render(page)
    assert text == html.render(page)  # the same records give the same bytes
    assert text.count("<svg") == 4  # forest (rows), forest (slice), confusion, curves
    for part in ("Confusion matrix", "positive class: 1", ">ROC<", "Calibration", "champion ("):
        assert part in text, part
    assert "<image" not in text  # vector only: nothing rasterised
    assert "re-evaluated on the same 143 test rows" in text
    # Δ and its paired interval and verdict, from comparison.json.
    assert "<td class='n'>+0.33</td><td class='n'>[+0.25, +0.41]</td><td>better</td>" in text
    (tmp_path / "binary.html").write_text(text, encoding="utf-8")
    seen = browser.visit(tmp_path / "binary.html")
    assert seen.problems == [] and seen.requests == [] and seen.facts["svgs"] == 4
    assert chromium.ink(seen.screenshot) > 0.02


def _binary_run(folder: Path, params: str) -> Path:
    folder.mkdir()
    spec = write_spec(
        folder,
        "task: classification\n"
        "data: {train: {builtin: breast_cancer}, split: {test_size: 0.3, seed: 0}}\n"
        f"model: {{estimator: sklearn.tree.DecisionTreeClassifier, params: {params}}}\n"
        "evaluation: {metrics: [accuracy, roc_auc], confidence: {resamples: 100}, "
        "latency: false}\n",
    )
    return run_until(spec, folder / "run", "evaluate")


def test_the_champion_curves_come_from_the_comparison_alone(tmp_path: Path) -> None:
    """The champion's curves are summarised once, where the comparison is made, into
    comparison.json; report.html draws those and does not read the champion's predictions
    (champion-predictions.npz) again."""
    weak = _binary_run(tmp_path / "weak", "{max_depth: 1, random_state: 0}")
    run = _binary_run(tmp_path / "strong", "{max_depth: 4, random_state: 0}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    env["MLOPS_CHAMPION_CACHE"] = str(tmp_path / "champions")
    gated = run_cli("gate", str(run), "--champion", str(weak), env=env)
    assert gated.code == 0, gated.out + gated.err

    def page() -> str:
        made = run_cli("report", str(run), "--event", "push", env=env)
        assert made.code == 0, made.out + made.err
        return (run / "report.html").read_text(encoding="utf-8")

    comparison = json.loads((run / "comparison.json").read_text())
    area = comparison["curves"]["roc"]["area"]
    drawn = page()
    assert f"champion ({area:.3f})" in drawn
    (run / "champion-predictions.npz").unlink()
    assert page() == drawn  # byte for byte: the predictions were not read
    comparison["curves"]["roc"]["area"] = 0.123
    (run / "comparison.json").write_text(json.dumps(comparison))
    assert "champion (0.123)" in page()  # what comparison.json says is what is drawn


def _md_comparison(text: str) -> list[list[str]]:
    """metric, candidate, champion, Δ and Δ interval of each row of report.md's table."""
    lines = text.split("### Gate")[0].splitlines()
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines if line[:2] == "| "]
    return [[r[0], r[1], r[3], r[4], r[5]] for r in rows if len(r) == 7 and r[0] != "metric"]


def _html_comparison(text: str) -> list[list[str]]:
    """The same cells of report.html's table."""
    rows = re.findall(r"<tr><td>(.*?)</td></tr>", text.split("<h2>Gate</h2>")[0])
    cells = [re.split(r"</td><td[^>]*>", row) for row in rows]
    return [[r[0], r[1], r[3], r[4], r[5]] for r in cells if len(r) == 7]


def test_report_md_and_report_html_write_the_same_deltas(tmp_path: Path) -> None:
    """Δ and its interval read the same in both reports of a run, with their sign whichever
    way the candidate differs from the champion."""
    weak = _binary_run(tmp_path / "weak", "{max_depth: 1, random_state: 0}")
    strong = _binary_run(tmp_path / "strong", "{max_depth: 4, random_state: 0}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    env["MLOPS_CHAMPION_CACHE"] = str(tmp_path / "champions")
    signs = set()
    for run, champion in ((strong, weak), (weak, strong)):
        gated = run_cli("gate", str(run), "--champion", str(champion), env=env)
        assert gated.code == 0, gated.out + gated.err
        made = run_cli("report", str(run), "--event", "push", env=env)
        assert made.code == 0, made.out + made.err
        written = _md_comparison((run / "report.md").read_text(encoding="utf-8"))
        assert [row[0] for row in written] == ["accuracy", "roc_auc"], written
        assert _html_comparison((run / "report.html").read_text(encoding="utf-8")) == written
        signs |= {row[3][0] for row in written}
    assert signs == {"+", "-"}


def test_regression_page_shows_residuals(tmp_path: Path) -> None:
    rows = _regression_predictions()
    measured = Metrics(
        {"r2": Estimate(0.4, 0.3, 0.5, "bootstrap")},
        n_test=111,
        curves=curves.summarise(rows, "regression"),
    )
    spec = _spec("regression", tmp_path)
    text = html.render(html.Page(spec, measured, None, {}, predictions=rows))
    assert "<h2>Residuals</h2>" in text and text.count("<svg") == 2
    assert "Predicted against true" in text and "Confusion" not in text
    alone = html.render(html.Page(spec, measured, None, {}))  # no predictions.npz
    assert "<h2>Residuals</h2>" in alone and "Predicted against true" not in alone


def test_many_rows_stay_small(tmp_path: Path) -> None:
    """The scatter plot samples rows, so the page does not grow with the test set."""
    rng = np.random.default_rng(1)
    rows = Predictions.regression(rng.normal(size=200_000), rng.normal(size=200_000))
    measured = Metrics({"r2": Estimate(0.0)}, curves=curves.summarise(rows, "regression"))
    text = html.render(
        html.Page(_spec("regression", tmp_path), measured, None, {}, predictions=rows)
    )
    assert "2000 of 200000 rows" in text and len(text) < 600_000, len(text)


def test_without_matplotlib_the_tables_stay_and_the_plots_say_why(tmp_path: Path) -> None:
    """matplotlib is in the `ml` extra: a Python without it still gets every table."""
    spec = _spec("classification", tmp_path)
    script = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from gitops_mlops.reporting import html\n"
        "from gitops_mlops.stages.validate import load\n"
        "from tests.integration.test_report_html import MEASURED, VERDICT\n"
        f"spec = load(__import__('pathlib').Path({str(spec.file)!r}))\n"
        "print(html.render(html.Page(spec, MEASURED, VERDICT, {'model_version': 'abc'})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    assert "<svg" not in done.stdout and html.NO_PLOTS.replace("'", "&#x27;") in done.stdout
    assert "<h2>Gate</h2>" in done.stdout and "Slice large" in done.stdout


def test_the_link_names_only_a_plain_artifact_of_a_real_run() -> None:
    env = {
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "acme/models",
        "GITHUB_RUN_ID": "17",
        "MLOPS_REPORT_ARTIFACT": "mlops-report-iris",
    }
    assert "[mlops-report-iris](https://github.com/acme/models/actions/runs/17#artifacts)" in (
        html_link(env)
    )
    assert html_link({**env, "MLOPS_REPORT_ARTIFACT": "x](https://evil.example)"}) == ""
    assert html_link({**env, "GITHUB_RUN_ID": "17/../../x"}) == ""
    assert html_link({k: v for k, v in env.items() if k != "MLOPS_REPORT_ARTIFACT"}) == ""

"""The report's pictures from real runs: a binary candidate gated against its champion on
the same rows (data whose class labels are hostile), and a regression. Every chart of both
reports is drawn by the real Mermaid in one browser session; the comment, with ten metrics
and five slices, fits in GitHub's 65,536 characters; with too many slices the pictures go
first, and the report says so."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

import cmarkgfm
import pytest
from cmarkgfm.cmark import Options

from gitops_mlops.integrations.github import BODY_LIMIT
from gitops_mlops.release import read_champion
from gitops_mlops.reporting import markdown
from gitops_mlops.rundir import RunDir
from gitops_mlops.stages.report import comment_marker
from gitops_mlops.stages.validate import load
from tests import mermaid_cli
from tests.conftest import run_cli
from tests.integration.helpers import run_until, write_spec

LABELS = {
    0: "malignant <img src=x onerror=alert(1)> | `x`",
    1: 'benign"] %%{init: {"theme": "dark"}}%% @octocat',
}
TEN_METRICS = (
    "accuracy, balanced_accuracy, precision, recall, f1, average_precision, "
    "precision_macro, recall_macro, f1_macro, roc_auc"
)
FIVE_SLICES = "\n".join(
    f"    - {{name: {name}, where: {{column: {column}, op: '>', value: {value}}}}}"
    for name, column, value in (
        ("big", "mean radius", 15),
        ("rough", "mean texture", 20),
        ("wide", "mean perimeter", 90),
        ("large-area", "mean area", 700),
        ("smooth", "mean smoothness", 0.1),
    )
)
BINARY = """task: classification
data:
  train: {{path: cells.csv, target: diagnosis}}
  split: {{test_size: 0.3, seed: 3, stratify: true}}
model:
  estimator: sklearn.ensemble.RandomForestClassifier
  params: {params}
evaluation:
  metrics: [{metrics}]
  confidence: {{level: 0.95, resamples: 200, seed: 0}}
  slices:
{slices}
"""
REGRESSION = """task: regression
data:
  train: {builtin: diabetes}
  split: {test_size: 0.3, seed: 1}
model:
  estimator: sklearn.linear_model.Ridge
  params: {alpha: 0.1}
evaluation:
  metrics: [r2, rmse, mae]
  confidence: {level: 0.9, resamples: 200, seed: 0}
"""


def _binary(folder: Path, params: str) -> Path:
    from sklearn.datasets import load_breast_cancer

    folder.mkdir(parents=True)
    frame = load_breast_cancer(as_frame=True).frame
    frame = frame.assign(diagnosis=frame.pop("target").map(LABELS))
    frame.to_csv(folder / "cells.csv", index=False)
    return write_spec(folder, BINARY.format(params=params, metrics=TEN_METRICS, slices=FIVE_SLICES))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pictures")
    weak = _binary(root / "champion", "{n_estimators: 1, max_depth: 1, random_state: 0}")
    strong = _binary(root / "candidate", "{n_estimators: 20, max_depth: 4, random_state: 0}")
    champion = run_until(weak, root / "champion-run", "evaluate")
    candidate = run_until(strong, root / "candidate-run", "evaluate")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    env["MLOPS_CHAMPION_CACHE"] = str(root / "champions")
    gated = run_cli("gate", str(candidate), "--champion", str(champion), env=env)
    assert gated.code in (0, 1), gated.out + gated.err
    (root / "regression").mkdir()
    regression = run_until(write_spec(root / "regression", REGRESSION), root / "r-run", "gate")
    return {"binary": candidate, "regression": regression, "root": root}


def _html(text: str) -> str:
    # Unsafe: raw HTML would pass through, so what keeps it out is the report's escaping.
    page: str = cmarkgfm.github_flavored_markdown_to_html(text, options=Options.CMARK_OPT_UNSAFE)
    return page


def test_each_task_gets_its_pictures(runs: dict[str, Path]) -> None:
    binary = (runs["binary"] / "report.md").read_text()
    assert "re-evaluated on the same" in binary and "### Pictures" in binary
    assert 'title "Δ candidate - champion"' in binary and 'title "candidate vs champion"' in binary
    # Both models' curves, on the same rows.
    assert re.search(r'title "ROC \(AUC: candidate 0\.\d{3}, champion 0\.\d{3}\)"', binary)
    assert re.search(
        r'title "Precision-recall \(average precision: candidate 0\.\d+, champion', binary
    )
    assert "**Confusion table**" in binary and "the champion's count in brackets" in binary
    assert "left out" not in binary
    regression = (runs["regression"] / "report.md").read_text()
    assert 'title "Residuals (true - predicted), 133 rows"' in regression
    assert "Confusion" not in regression and "ROC" not in regression


def test_hostile_class_labels_stay_text_in_the_comment(runs: dict[str, Path]) -> None:
    page = _html((runs["binary"] / "report.md").read_text())
    assert "<img" not in page and "<script" not in page
    confusion = page.split("<strong>Confusion table</strong>")[1].split("</table>")[0]
    rows = re.findall(r"<tr>(.*?)</tr>", confusion, re.DOTALL)
    assert len(rows) == 3 and all(r.count("<td") + r.count("<th") == 3 for r in rows)
    assert "<code>malignant &lt;img src=x onerror=alert(1)&gt; | `x`</code>" in confusion
    # Tables: the overall one, five slices, the confusion table (no thresholds: no gate table).
    assert page.count("<table>") == 1 + 5 + 1


def test_every_chart_of_the_reports_is_drawn(runs: dict[str, Path], tmp_path: Path) -> None:
    renderer = mermaid_cli.require()
    both = "\n\n".join((runs[kind] / "report.md").read_text() for kind in ("binary", "regression"))
    charts = mermaid_cli.blocks(both)
    assert len(charts) >= 6
    drawn = renderer.render(both, tmp_path)  # one browser session for every chart
    assert len(drawn) == len(charts)
    for chart, svg in zip(charts, drawn, strict=True):
        title = re.search(r'title "([^"]*)"', chart)
        assert title is not None and f">{title.group(1)}</text>" in svg.replace("&amp;", "&")


def test_the_comment_with_ten_metrics_and_five_slices_fits(runs: dict[str, Path]) -> None:
    spec = load(runs["root"] / "candidate" / "mlops.yaml")
    build: dict[str, Any] = {
        "reference": "127.0.0.1:5000/test-model:" + "0" * 12,
        "digest": "sha256:" + "a" * 64,
        "size_bytes": 400 << 20,
        "runtime": {"runtime": "sklearn", "reason": "…"},
    }
    text = markdown.with_image((runs["binary"] / "report.md").read_text(), build)
    comment = f"{comment_marker(spec)}\n{text}"
    assert len(comment) <= BODY_LIMIT < 65_536
    print(f"comment with 10 metrics and 5 slices: {len(comment)} characters")


def test_with_too_many_slices_pictures_go_before_tables(runs: dict[str, Path]) -> None:
    run = RunDir(runs["binary"])
    measured = run.read_metrics()
    big = measured.slices["big"]
    many = {f"slice-{i:03d}": big for i in range(60)}
    crowded = dataclasses.replace(measured, slices=many, slice_rows=dict.fromkeys(many, 50))
    spec = load(runs["root"] / "candidate" / "mlops.yaml")
    champion = read_champion(runs["root"] / "champion-run")
    text = markdown.report(
        spec, "0" * 12, crowded, run.read_verdict(), champion, run.find_comparison()
    )
    assert len(text) <= BODY_LIMIT - markdown.RESERVED
    assert all(f"**Slice `{name}`**" in text for name in many)  # every table is there
    left = re.search(r"\*(\d+) picture\(s\) left out \(([^)]*)\) to keep this comment", text)
    assert left is not None, text[-2000:]
    kept = mermaid_cli.blocks(text)
    assert len(kept) > 0 and int(left.group(1)) >= 1
    assert text.index("### Gate") < text.index("### Pictures")

"""Evaluation through the CLI: proportions near 100 %, the positive class, binary metrics on
data that does not fit them, and metrics a set of rows cannot define."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sklearn import datasets, metrics
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from tests.conftest import run_cli
from tests.integration.helpers import write_spec


def csv(path: Path, rows: list[tuple[float, str]]) -> str:
    path.write_text("x,label\n" + "".join(f"{x},{label}\n" for x, label in rows))
    return path.name


def separable(folder: Path, test_rows: int, labels: tuple[str, str] = ("neg", "pos")) -> None:
    """x < 0 is one class, x >= 0 the other: a decision tree gets every test row right."""
    train = [(x - 30.0, labels[x >= 30]) for x in range(60)]
    xs = [x - test_rows // 2 + 0.25 for x in range(test_rows)]
    test = [(x, labels[x >= 0]) for x in xs]
    csv(folder / "train.csv", train)
    csv(folder / "test.csv", test)


DATA = """data:
  train: {path: train.csv, target: label}
  test: {path: test.csv}
model:
  estimator: sklearn.tree.DecisionTreeClassifier
  preprocess: none
"""


def measured(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / "metrics.json").read_text()))


def test_every_row_right_is_not_certain(tmp_path: Path) -> None:
    """23 of 23 right: Wilson's interval reaches below 0.87, and `on: bound` sees it."""
    separable(tmp_path, 23)
    spec = write_spec(
        tmp_path,
        "task: classification\n" + DATA + "evaluation:\n"
        "  metrics: [accuracy, f1_macro]\n  latency: false\n"
        "gate:\n  thresholds:\n    - {metric: accuracy, min: 0.9, on: bound}\n",
    )
    result = run_cli("run", str(spec), "--out", str(tmp_path / "run"))
    assert result.code == 4, result.out + result.err
    got = measured(tmp_path / "run")
    accuracy = got["metrics"]["accuracy"]
    assert accuracy["value"] == 1.0 and accuracy["ci_high"] == 1.0
    assert 0.85 < accuracy["ci_low"] < 0.87
    assert accuracy["method"] == "wilson"
    assert got["metrics"]["f1_macro"]["method"] == "bootstrap"
    assert got["positive_label"] == "pos"
    verdict = json.loads((tmp_path / "run" / "verdict.json").read_text())
    assert verdict["rows"][0]["observed"] == pytest.approx(accuracy["ci_low"])
    report = (tmp_path / "run" / "report.md").read_text()
    assert f"[{accuracy['ci_low']:.4g}, 1] Wilson" in report


def test_a_one_class_target_gives_no_roc_auc_and_says_why(tmp_path: Path) -> None:
    """Used to crash with an IndexError: the model has one probability column."""
    csv(tmp_path / "train.csv", [(float(x), "yes") for x in range(20)])
    csv(tmp_path / "test.csv", [(float(x), "yes") for x in range(8)])
    spec = write_spec(
        tmp_path,
        "task: classification\n" + DATA + "evaluation:\n"
        "  metrics: [accuracy, roc_auc]\n  latency: false\n"
        "gate:\n  thresholds:\n    - {metric: roc_auc, min: 0.8}\n",
    )
    result = run_cli("run", str(spec), "--out", str(tmp_path / "run"))
    assert result.code == 4, result.out + result.err
    assert "Traceback" not in result.out + result.err
    got = measured(tmp_path / "run")["metrics"]
    assert got["accuracy"]["value"] == 1.0
    why = "the rows hold one class ('yes'); it needs both classes"
    assert got["roc_auc"] == {"value": None, "ci_low": None, "ci_high": None, "reason": why}
    verdict = json.loads((tmp_path / "run" / "verdict.json").read_text())
    assert why in verdict["rows"][0]["reason"]
    assert why in (tmp_path / "run" / "report.md").read_text()


def test_a_binary_metric_on_three_classes_is_a_located_error(tmp_path: Path) -> None:
    rows = [(float(x), "abc"[x % 3]) for x in range(30)]
    csv(tmp_path / "train.csv", rows)
    csv(tmp_path / "test.csv", rows[:12])
    spec = write_spec(
        tmp_path,
        "task: classification\n" + DATA + "evaluation:\n"
        "  metrics: [accuracy, f1]\n  latency: false\n",
    )
    result = run_cli("run", str(spec), "--out", str(tmp_path / "run"))
    assert result.code == 2, result.out + result.err
    assert (
        f"{spec}:12:23: 'f1' needs two classes, the data has 3; use f1_macro "
        "(classes: 'a', 'b', 'c')"
    ) in result.out + result.err


def test_a_positive_label_the_data_lacks_is_a_located_error(tmp_path: Path) -> None:
    separable(tmp_path, 10)
    spec = write_spec(
        tmp_path,
        "task: classification\n" + DATA + "evaluation:\n"
        "  metrics: [precision]\n  positive_label: positive\n  latency: false\n",
    )
    result = run_cli("run", str(spec), "--out", str(tmp_path / "run"))
    assert result.code == 2, result.out + result.err
    assert (
        f"{spec}:13:19: positive_label 'positive' is not a class of the data; its classes "
        "are 'neg', 'pos'"
    ) in result.out + result.err


@pytest.mark.parametrize("positive", [None, 0])
def test_binary_metrics_match_plain_scikit_learn(positive: int | None, tmp_path: Path) -> None:
    """breast_cancer: 0 is malignant. Default positive class: the greater label, 1."""
    setting = "" if positive is None else f"  positive_label: {positive}\n"
    spec = write_spec(
        tmp_path,
        "task: classification\ndata:\n  train: {builtin: breast_cancer}\n"
        "  split: {test_size: 0.3, seed: 2}\n"
        "model:\n  estimator: sklearn.linear_model.LogisticRegression\n"
        "  params: {max_iter: 5000}\n  preprocess: none\n"
        "evaluation:\n  metrics: [precision, recall, f1, average_precision, roc_auc]\n"
        f"{setting}  confidence: {{resamples: 200}}\n  latency: false\n",
    )
    result = run_cli("run", str(spec), "--out", str(tmp_path / "run"))
    assert result.code == 0, result.out + result.err
    frame = datasets.load_breast_cancer(as_frame=True).frame
    x, y = frame.drop(columns="target"), frame["target"]
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.3, random_state=2, stratify=y
    )
    model = LogisticRegression(max_iter=5000, random_state=0).fit(x_train, y_train)
    predicted, proba = model.predict(x_test), model.predict_proba(x_test)
    label = 1 if positive is None else positive
    got = measured(tmp_path / "run")
    assert got["positive_label"] == label
    expected = {
        "precision": metrics.precision_score(y_test, predicted, pos_label=label),
        "recall": metrics.recall_score(y_test, predicted, pos_label=label),
        "f1": metrics.f1_score(y_test, predicted, pos_label=label),
        "average_precision": metrics.average_precision_score(y_test == label, proba[:, label]),
        "roc_auc": metrics.roc_auc_score(y_test == label, proba[:, label]),
    }
    for name, value in expected.items():
        entry = got["metrics"][name]
        assert entry["value"] == pytest.approx(value), name
        assert entry["ci_low"] < entry["value"] or entry["value"] == 0, name
        assert entry["ci_low"] <= entry["value"] <= entry["ci_high"], name

"""Gate scenarios against expectations computed here with scikit-learn."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from sklearn import datasets, metrics
from sklearn.model_selection import train_test_split

from gitops_mlops import bundle
from tests.conftest import run_cli
from tests.integration.helpers import alias_bomb_record, write_spec

BODY = """task: classification
data:
  train: {builtin: iris}
  split: {test_size: 0.4, seed: 11}
model:
  estimator: sklearn.linear_model.LogisticRegression
  params: {C: 0.05, max_iter: 500}
evaluation:
  metrics: [accuracy, log_loss, roc_auc_ovr]
  slices:
    - {name: long-petals, where: {column: petal length (cm), op: ">", value: 4.5}}
    - {name: setosa-only, where: {column: target, op: "==", value: 0}}
  latency: false
promotion:
  repository: gitops
  environments:
    - {name: production, targets: [{file: prod/values.yaml, yaml_path: image.digest}]}
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("trained")
    spec = write_spec(folder, BODY)
    result = run_cli("run", str(spec), "--until", "evaluate", "--out", str(folder / "run"))
    assert result.code == 0, result.out + result.err
    return folder


@pytest.fixture(scope="module")
def expected(trained: Path) -> dict[str, float]:
    """Accuracy overall and on the long-petals slice, recomputed from the data and model."""
    frame = datasets.load_iris(as_frame=True).frame
    _, test = train_test_split(frame, test_size=0.4, random_state=11, stratify=frame["target"])
    model = bundle.load_model(trained / "run" / "model" / "model.skops")
    x = test.drop(columns="target")
    predicted = model.predict(x)
    long = (test["petal length (cm)"] > 4.5).to_numpy()
    return {
        "accuracy": metrics.accuracy_score(test["target"], predicted),
        "log_loss": metrics.log_loss(test["target"], model.predict_proba(x)),
        "slice_accuracy": metrics.accuracy_score(test["target"][long], predicted[long]),
    }


def gate(
    trained: Path,
    tmp_path: Path,
    section: str,
    champion: dict[str, Any] | None = None,
) -> tuple[int, dict[str, Any], str]:
    """Run `mlops gate` on a copy of the trained run with another gate section."""
    shutil.copytree(trained / "run", tmp_path / "run")
    (tmp_path / "gitops").mkdir(exist_ok=True)  # a local GitOps folder (no release yet)
    spec = write_spec(tmp_path, BODY + section)
    (tmp_path / "run" / "run.json").write_text(json.dumps({"spec": str(spec)}))
    args = ["gate", str(tmp_path / "run")]
    if champion is not None:
        record = tmp_path / "champion.yaml"
        record.write_text(
            yaml.safe_dump(
                {
                    "kind": "ModelRelease",
                    "environment": "production",
                    "version": "0123456789ab",
                    **champion,
                }
            )
        )
        args += ["--champion", str(record)]
    result = run_cli(*args)
    verdict = json.loads((tmp_path / "run" / "verdict.json").read_text())
    return result.code, verdict, result.out + result.err


def champion_with(**values: float) -> dict[str, Any]:
    return {
        "metrics": {k: {"value": v, "ci_low": None, "ci_high": None} for k, v in values.items()}
    }


def test_pass_and_fail_on_absolute_bounds(
    trained: Path, expected: dict[str, float], tmp_path: Path
) -> None:
    acc = expected["accuracy"]
    code, verdict, _ = gate(
        trained,
        tmp_path / "a",
        f"gate:\n  thresholds:\n    - {{metric: accuracy, min: {acc - 0.01}}}\n",
    )
    assert code == 0 and verdict["passed"]
    row = verdict["rows"][0]
    assert set(row) >= {
        "metric",
        "slice",
        "kind",
        "observed",
        "bound",
        "champion",
        "passed",
        "reason",
    }
    assert row["observed"] == pytest.approx(acc)
    code, verdict, out = gate(
        trained,
        tmp_path / "b",
        f"gate:\n  thresholds:\n    - {{metric: accuracy, min: {acc + 0.01}}}\n",
    )
    assert code == 4 and not verdict["passed"]
    assert "gate failed: 1 of 1 checks" in out
    code, verdict, _ = gate(
        trained,
        tmp_path / "c",
        f"gate:\n  thresholds:\n    - {{metric: log_loss, max: {expected['log_loss'] - 0.001}}}\n",
    )
    assert code == 4 and verdict["rows"][0]["observed"] == pytest.approx(expected["log_loss"])


@pytest.mark.parametrize(("allowed", "passes"), [(0.01, False), (0.06, True)])
def test_regression_against_the_champion_in_metric_units(
    trained: Path, expected: dict[str, float], tmp_path: Path, allowed: float, passes: bool
) -> None:
    acc = expected["accuracy"]
    champion = acc + 0.05
    code, verdict, _ = gate(
        trained,
        tmp_path,
        "gate:\n  champion: production\n  thresholds:\n"
        f"    - {{metric: accuracy, max_regression: {allowed}}}\n",
        champion_with(accuracy=champion),
    )
    row = verdict["rows"][0]
    assert (code == 0) is passes and row["passed"] is passes
    assert row["champion"] == pytest.approx(champion)
    assert row["bound"] == pytest.approx(champion - allowed)


@pytest.mark.parametrize(("fraction", "passes"), [(0.01, False), (0.2, True)])
def test_relative_regression(
    trained: Path, expected: dict[str, float], tmp_path: Path, fraction: float, passes: bool
) -> None:
    champion = expected["accuracy"] + 0.05
    code, verdict, _ = gate(
        trained,
        tmp_path,
        "gate:\n  champion: production\n  thresholds:\n"
        f"    - {{metric: accuracy, max_regression: {fraction}, relative: true}}\n",
        champion_with(accuracy=champion),
    )
    assert verdict["rows"][0]["bound"] == pytest.approx(champion * (1 - fraction))
    assert (code == 0) is passes


def test_regression_of_a_lower_is_better_metric(
    trained: Path, expected: dict[str, float], tmp_path: Path
) -> None:
    champion = expected["log_loss"] - 0.05  # the champion is better (lower)
    code, verdict, _ = gate(
        trained,
        tmp_path,
        "gate:\n  champion: production\n  thresholds:\n"
        "    - {metric: log_loss, max_regression: 0.01}\n",
        champion_with(log_loss=champion),
    )
    assert code == 4
    assert verdict["rows"][0]["bound"] == pytest.approx(champion + 0.01)
    assert "worse than champion" in verdict["rows"][0]["reason"]


def test_bound_versus_estimate(trained: Path, tmp_path: Path) -> None:
    measured = json.loads((trained / "run" / "metrics.json").read_text())["metrics"]["accuracy"]
    assert measured["ci_low"] < measured["value"]
    between = (measured["ci_low"] + measured["value"]) / 2
    section = (
        f"gate:\n  thresholds:\n    - {{metric: accuracy, min: {between}}}\n"
        f"    - {{metric: accuracy, min: {between}, on: bound}}\n"
    )
    code, verdict, _ = gate(trained, tmp_path, section)
    estimate, bound = verdict["rows"]
    assert estimate["passed"] and estimate["observed"] == pytest.approx(measured["value"])
    assert not bound["passed"] and bound["observed"] == pytest.approx(measured["ci_low"])
    assert code == 4


@pytest.mark.parametrize(("policy", "code"), [("pass", 0), ("fail", 4)])
def test_first_run_without_a_champion(
    trained: Path, tmp_path: Path, policy: str, code: int
) -> None:
    got, verdict, _ = gate(
        trained,
        tmp_path,
        f"gate:\n  champion: production\n  no_champion: {policy}\n"
        "  thresholds:\n    - {metric: accuracy, max_regression: 0.01}\n",
    )
    assert got == code
    assert "no champion release" in verdict["rows"][0]["reason"]
    assert verdict["champion"] is None


def test_champion_without_the_metric_follows_no_champion(trained: Path, tmp_path: Path) -> None:
    got, verdict, _ = gate(
        trained,
        tmp_path,
        "gate:\n  champion: production\n  no_champion: fail\n"
        "  thresholds:\n    - {metric: accuracy, max_regression: 0.01}\n",
        champion_with(log_loss=0.3),
    )
    assert got == 4 and "the champion has no value" in verdict["rows"][0]["reason"]


@pytest.mark.parametrize(("policy", "code"), [("pass", 0), ("fail", 4)])
def test_missing_metric(trained: Path, tmp_path: Path, policy: str, code: int) -> None:
    # ROC AUC is undefined on a slice holding one class, so the metric is missing there.
    got, verdict, _ = gate(
        trained,
        tmp_path,
        f"gate:\n  missing_metric: {policy}\n"
        "  thresholds:\n    - {metric: roc_auc_ovr, slice: setosa-only, min: 0.5}\n",
    )
    assert got == code
    assert verdict["rows"][0]["observed"] is None
    assert "was not measured" in verdict["rows"][0]["reason"]


def test_slice_threshold(trained: Path, expected: dict[str, float], tmp_path: Path) -> None:
    value = expected["slice_accuracy"]
    section = (
        "gate:\n  thresholds:\n"
        f"    - {{metric: accuracy, slice: long-petals, min: {value - 0.01}}}\n"
        f"    - {{metric: accuracy, slice: long-petals, max: {value - 0.01}}}\n"
    )
    code, verdict, _ = gate(trained, tmp_path, section)
    low, high = verdict["rows"]
    assert low["slice"] == "long-petals" and low["observed"] == pytest.approx(value)
    assert low["passed"] and not high["passed"] and code == 4


def test_champion_is_read_from_a_local_gitops_repository(
    trained: Path, expected: dict[str, float], tmp_path: Path
) -> None:
    record = tmp_path / "gitops" / "prod" / "model-release.yaml"
    record.parent.mkdir(parents=True)
    record.write_text(
        yaml.safe_dump(
            {
                "kind": "ModelRelease",
                "environment": "production",
                "version": "feedfacecafe",
                **champion_with(accuracy=expected["accuracy"] + 0.2),
            }
        )
    )
    code, verdict, _ = gate(
        trained,
        tmp_path,
        "gate:\n  champion: production\n  thresholds:\n"
        "    - {metric: accuracy, max_regression: 0.01}\n",
    )
    assert verdict["champion"] == {"environment": "production", "version": "feedfacecafe"}
    assert code == 4
    report = (tmp_path / "run" / "report.md").read_text()
    assert "Compared with **production** `feedfacecafe`" in report
    assert "| accuracy |" in report


def test_a_broken_champion_record_is_a_clear_error(trained: Path, tmp_path: Path) -> None:
    shutil.copytree(trained / "run", tmp_path / "run")
    (tmp_path / "bad.yaml").write_text("kind: Deployment\n")
    result = run_cli("gate", str(tmp_path / "run"), "--champion", str(tmp_path / "bad.yaml"))
    assert result.code == 1
    assert "not a release record" in result.err


def test_an_alias_bomb_as_champion_is_refused_with_its_location(
    trained: Path, tmp_path: Path
) -> None:
    section = "gate:\n  champion: production\n  thresholds:\n    - {metric: accuracy, min: 0.1}\n"
    # `--champion FILE`
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb_record("production"))
    shutil.copytree(trained / "run", tmp_path / "run")
    spec = write_spec(tmp_path, BODY + section)
    (tmp_path / "run" / "run.json").write_text(json.dumps({"spec": str(spec)}))
    result = run_cli("gate", str(tmp_path / "run"), "--champion", str(bomb))
    assert result.code == 1, result.out + result.err
    assert f"error: {bomb}:8:" in result.err
    assert "more than 100000 values after expanding aliases" in result.err
    # the release record of gate.champion in the (local) GitOps repository
    gitops = tmp_path / "gitops"
    (gitops / "prod").mkdir(parents=True)
    (gitops / "prod" / "model-release.yaml").write_text(alias_bomb_record("production"))
    git = ["git", "-C", str(gitops), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "bomb"], check=True)
    result = run_cli("gate", str(tmp_path / "run"))
    assert result.code == 1, result.out + result.err
    assert "error: prod/model-release.yaml:8:" in result.err
    assert "expanding exponentially" in result.err

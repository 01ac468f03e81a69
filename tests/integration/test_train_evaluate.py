"""Training and evaluation on real data, checked against scikit-learn computed independently."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import datasets, metrics
from sklearn.model_selection import train_test_split
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from gitops_mlops import bundle
from tests.conftest import ROOT, run_cli
from tests.integration.helpers import write_spec

CLASSIFIERS = ["iris", "wine", "breast_cancer", "digits"]


def run(spec: Path, out: Path, *extra: str) -> dict[str, Any]:
    result = run_cli("run", str(spec), "--out", str(out), *extra)
    assert result.code == 0, result.out + result.err
    return dict(json.loads((out / "metrics.json").read_text()))


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_builtin_classification_matches_plain_scikit_learn(name: str, tmp_path: Path) -> None:
    spec = write_spec(
        tmp_path,
        f"task: classification\ndata:\n  train: {{builtin: {name}}}\n"
        "  split: {test_size: 0.25, seed: 5}\n"
        "model:\n  estimator: sklearn.tree.DecisionTreeClassifier\n"
        "  params: {max_depth: 4}\n  preprocess: none\n  seed: 3\n"
        "evaluation:\n  metrics: [accuracy, f1_macro, balanced_accuracy]\n  latency: false\n",
    )
    measured = run(spec, tmp_path / "run")
    frame = getattr(datasets, f"load_{name}")(as_frame=True).frame
    x, y = frame.drop(columns="target"), frame["target"]
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, random_state=5, stratify=y
    )
    predicted = (
        DecisionTreeClassifier(max_depth=4, random_state=3).fit(x_train, y_train).predict(x_test)
    )
    assert measured["n_test"] == len(y_test)
    got = measured["metrics"]
    assert got["accuracy"]["value"] == pytest.approx(metrics.accuracy_score(y_test, predicted))
    assert got["f1_macro"]["value"] == pytest.approx(
        metrics.f1_score(y_test, predicted, average="macro")
    )
    assert got["balanced_accuracy"]["value"] == pytest.approx(
        metrics.balanced_accuracy_score(y_test, predicted)
    )
    for entry in got.values():
        assert entry["ci_low"] <= entry["value"] <= entry["ci_high"]


def test_builtin_regression_matches_plain_scikit_learn(tmp_path: Path) -> None:
    spec = write_spec(
        tmp_path,
        "task: regression\ndata:\n  train: {builtin: diabetes}\n"
        "  split: {test_size: 0.3, seed: 1}\n"
        "model:\n  estimator: sklearn.tree.DecisionTreeRegressor\n  params: {max_depth: 3}\n"
        "  preprocess: none\nevaluation:\n  metrics: [r2, rmse, mae, mape]\n"
        "  confidence: {resamples: 300}\n",
    )
    measured = run(spec, tmp_path / "run")
    frame = datasets.load_diabetes(as_frame=True).frame
    x_train, x_test, y_train, y_test = train_test_split(
        frame.drop(columns="target"), frame["target"], test_size=0.3, random_state=1
    )
    predicted = (
        DecisionTreeRegressor(max_depth=3, random_state=0).fit(x_train, y_train).predict(x_test)
    )
    got = measured["metrics"]
    assert got["r2"]["value"] == pytest.approx(metrics.r2_score(y_test, predicted))
    assert got["rmse"]["value"] == pytest.approx(metrics.root_mean_squared_error(y_test, predicted))
    assert got["mae"]["value"] == pytest.approx(metrics.mean_absolute_error(y_test, predicted))
    assert got["mape"]["value"] == pytest.approx(
        metrics.mean_absolute_percentage_error(y_test, predicted)
    )
    assert got["latency_p95_ms"]["value"] >= got["latency_p50_ms"]["value"] > 0


def test_csv_with_categories_and_missing_values(tmp_path: Path) -> None:
    """The diabetes-csv example: the saved pipeline takes raw rows, NaN and text included."""
    out = tmp_path / "run"
    measured = run(ROOT / "examples" / "diabetes-csv" / "mlops.yaml", out)
    manifest = bundle.read_manifest(out / "model")
    assert manifest["best_params"]["max_depth"] in (3, 5, None)
    assert {f["name"]: f["dtype"] for f in manifest["features"]}["sex"] in ("object", "str")
    model = bundle.load_model(out / "model" / "model.skops")
    raw = pd.read_csv(ROOT / "examples" / "diabetes-csv" / "data" / "diabetes.csv")
    rows = raw.drop(columns="progression").head(20)
    assert rows.isna().any().any() or raw["bmi"].isna().any()
    rows.loc[0, "bmi"] = np.nan
    rows.loc[1, "sex"] = "unknown"  # a category never seen in training is ignored, not an error
    assert model.predict(rows).shape == (20,)
    assert measured["slice_rows"]["seniors"] > 0
    assert set(measured["slices"]["seniors"]) == {"r2", "rmse", "mae"}


def test_same_spec_and_data_give_the_same_bytes_and_version(tmp_path: Path) -> None:
    spec = ROOT / "examples" / "iris" / "mlops.yaml"
    first, second = tmp_path / "a", tmp_path / "b"
    for out in (first, second):
        result = run_cli("run", str(spec), "--until", "train", "--out", str(out))
        assert result.code == 0, result.out
    assert (first / "model" / "model.skops").read_bytes() == (
        second / "model" / "model.skops"
    ).read_bytes()
    versions = [bundle.read_manifest(p / "model")["model_version"] for p in (first, second)]
    assert versions[0] == versions[1]
    assert len(versions[0]) == 12


def forest_pipeline() -> Any:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = datasets.load_iris(return_X_y=True, as_frame=True)
    return make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=5)).fit(x, y)


def test_the_helper_process_writes_what_this_process_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = forest_pipeline()
    direct = bundle.save_model(model, tmp_path / "direct.skops")
    with bundle.ModelWriter() as writer:
        assert writer.save(model, tmp_path / "helper.skops") == direct
    assert (tmp_path / "helper.skops").read_bytes() == (tmp_path / "direct.skops").read_bytes()
    # No helper (it cannot start): this process writes the same bytes.
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    with bundle.ModelWriter() as writer:
        assert writer.save(model, tmp_path / "fallback.skops") == direct


def test_an_unused_helper_is_stopped(tmp_path: Path) -> None:
    writer = bundle.ModelWriter()
    helper = writer._helper
    assert helper is not None and helper.poll() is None
    writer.close()
    assert helper.poll() is not None
    # A model the helper cannot take (pickle refuses a lambda) is saved here instead.
    from sklearn.preprocessing import FunctionTransformer

    unpicklable = FunctionTransformer(lambda x: x).fit([[1.0]])
    direct = bundle.save_model(unpicklable, tmp_path / "direct.skops")
    with bundle.ModelWriter() as writer:
        assert writer.save(unpicklable, tmp_path / "lambda.skops") == direct


def test_manifest_records_provenance(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run_cli(
        "run", str(ROOT / "examples" / "iris" / "mlops.yaml"), "--until", "train", "--out", str(out)
    )
    assert result.code == 0
    manifest = bundle.read_manifest(out / "model")
    for key in (
        "model_version",
        "model_digest",
        "spec_digest",
        "data_digest",
        "seed",
        "versions",
        "features",
        "input_example",
        "files",
        "git_commit",
    ):
        assert key in manifest
    assert set(manifest["versions"]) >= {"python", "scikit-learn", "numpy", "scipy"}
    assert manifest["files"]["model.skops"] == bundle.sha256_file(out / "model" / "model.skops")
    assert manifest["model_digest"].removeprefix("sha256:").startswith(manifest["model_version"])
    assert len(manifest["input_example"]) == 5
    assert manifest["git_commit"] is None or len(manifest["git_commit"]) == 40


def test_stages_one_at_a_time(tmp_path: Path) -> None:
    out = tmp_path / "run"
    spec = str(ROOT / "examples" / "iris" / "mlops.yaml")
    assert run_cli("train", spec, "--out", str(out)).code == 0
    assert run_cli("evaluate", str(out)).code == 0
    gated = run_cli("gate", str(out))
    assert gated.code == 0, gated.out + gated.err
    assert json.loads((out / "verdict.json").read_text())["passed"] is True
    assert "passed the gate" in (out / "report.md").read_text()


def test_evaluate_and_compare_refuse_data_that_changed_after_training(tmp_path: Path) -> None:
    work = tmp_path / "project"
    shutil.copytree(ROOT / "examples" / "diabetes-csv", work)
    out = tmp_path / "run"
    trained = run_cli("run", str(work / "mlops.yaml"), "--until", "evaluate", "--out", str(out))
    assert trained.code == 0, trained.out + trained.err
    then = json.loads((out / "model" / "manifest.json").read_text())["data_digest"]
    csv = work / "data" / "diabetes.csv"
    csv.write_text(csv.read_text().replace("151", "152", 1))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    env["MLOPS_CHAMPION_CACHE"] = str(tmp_path / "champions")
    # Both stages that read the data again (evaluate; compare, run by gate) say the same.
    for argv in (["evaluate", str(out)], ["gate", str(out), "--champion", str(out)]):
        result = run_cli(*argv, env=env)
        assert result.code == 1, result.out + result.err
        said = re.search(
            r"the data changed since (.*) was trained \((\S+) then, (\S+) now\)", result.err
        )
        assert said is not None, result.err
        assert said.groups()[:2] == (str(out / "model"), then) and said[3] != then
        assert "; retrain with `mlops run`" in result.err


def test_a_model_holding_an_untrusted_type_is_refused(tmp_path: Path) -> None:
    import skops.io
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    model = make_pipeline(FunctionTransformer(shutil.rmtree), DecisionTreeClassifier())
    path = tmp_path / "model.skops"
    skops.io.dump(model, path)
    with pytest.raises(bundle.UntrustedModel, match=r"shutil\.rmtree \(a function\)"):
        bundle.load_model(path)


def test_a_file_that_is_not_skops_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.skops"
    path.write_bytes(b"\x80\x04K\x01.")  # a pickle
    with pytest.raises(bundle.UntrustedModel, match="not a skops model file"):
        bundle.load_model(path)


def test_run_prints_one_line_per_stage_and_groups_under_actions(tmp_path: Path) -> None:
    spec = str(ROOT / "examples" / "iris" / "mlops.yaml")
    # The README's main command, on a machine without a Docker engine.
    no_engine = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    no_engine["DOCKER_HOST"] = f"unix://{tmp_path}/no-docker.sock"
    plain = run_cli("run", spec, "--out", str(tmp_path / "a"), env=no_engine)
    stages = [line.split()[0] for line in plain.out.splitlines() if line and line[0] != " "]
    assert stages[:7] == ["validate", "train", "evaluate", "gate", "build", "promote", "report"]
    assert "::group::" not in plain.out
    assert "build     skip" in plain.out and "promote   skip" in plain.out
    summary, outputs = tmp_path / "summary.md", tmp_path / "outputs"
    actions = run_cli(
        "run",
        spec,
        "--out",
        str(tmp_path / "b"),
        env={
            "DOCKER_HOST": no_engine["DOCKER_HOST"],
            "GITHUB_ACTIONS": "true",
            "GITHUB_STEP_SUMMARY": str(summary),
            "GITHUB_OUTPUT": str(outputs),
        },
    )
    assert actions.code == 0
    assert "passed the gate" in summary.read_text()
    assert re.search(r"^verdict<<(mlops_[0-9a-f]{16})\npassed\n\1$", outputs.read_text(), re.M)
    assert [line for line in actions.out.splitlines() if line.startswith("::")] == [
        "::group::validate",
        "::endgroup::",
        "::group::train",
        "::endgroup::",
        "::group::evaluate",
        "::endgroup::",
        "::group::gate",
        "::endgroup::",
        "::group::report",
        "::endgroup::",
    ]


def test_run_until_validate_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_cli("run", str(ROOT / "examples" / "iris" / "mlops.yaml"), "--until", "validate")
    assert result.code == 0
    assert not (tmp_path / ".mlops").exists()

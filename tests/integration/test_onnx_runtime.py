"""The onnx serving runtime: converted with skl2onnx, proven on the test set, served as V2.

Real models, trained by `mlops run`, converted and compared by the code `mlops build` runs,
then served by the model server and asked over HTTP: the answers must be the local
scikit-learn model's, whichever runtime serves them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from gitops_mlops import bundle, image_runtime, onnx_export
from gitops_mlops.errors import BuildError
from gitops_mlops.rundir import RunDir
from gitops_mlops.serving import runtimes
from gitops_mlops.stages.validate import load
from tests.conftest import ROOT, run_cli
from tests.integration.helpers import copy_example, run_until, write_spec
from tests.integration.server_helpers import free_port, request, serving

CSV = ROOT / "examples" / "diabetes-csv" / "data" / "diabetes.csv"


def trained(folder: Path, body: str) -> RunDir:
    """A run trained on the diabetes CSV (text, integer and float columns, gaps), plus a
    text target `band` for classifiers."""
    (folder / "data").mkdir()
    frame = pd.read_csv(CSV)
    frame["band"] = np.where(frame["progression"] > 140, "high", "low")
    frame.to_csv(folder / "data" / "diabetes.csv", index=False)
    return RunDir(run_until(write_spec(folder, body), folder / "run", "train"))


def csv_spec(estimator: str, task: str, target: str, params: str = "{random_state: 0}") -> str:
    return (
        f"task: {task}\ndata:\n  train:\n    path: data/diabetes.csv\n    target: {target}\n"
        f"    features: [age, age_group, sex, bmi, bp, s1, s2, s3, s4, s5, s6]\n"
        f"  split: {{test_size: 0.3, seed: 1}}\n"
        f"model:\n  estimator: {estimator}\n  params: {params}\n  preprocess: auto\n"
        "container: {image: localhost:5000/test/onnx, runtime: onnx}\n"
    )


def choose(run: RunDir, requested: str = "onnx") -> image_runtime.RuntimeChoice:
    manifest = bundle.read_manifest(run.model_dir)
    return image_runtime.choose(load(run.spec_path()), run, manifest, requested=requested)


def serve_dir(model_dir: Path) -> tuple[list[str], int]:
    port = free_port()
    command = [sys.executable, "-m", "gitops_mlops.serving", "--model-dir", str(model_dir)]
    return [*command, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"], port


def infer(port: int, model: str, frame: pd.DataFrame, datatypes: dict[str, str]) -> Any:
    inputs = [
        {
            "name": column,
            "shape": [len(frame)],
            "datatype": datatypes[column],
            "data": [None if pd.isna(v) else v for v in frame[column].tolist()],
        }
        for column in frame.columns
    ]
    status, body = request(port, "POST", f"/v2/models/{model}/infer", {"inputs": inputs})
    assert status == 200, body
    return {o["name"]: o for o in body["outputs"]}


def awkward_rows() -> pd.DataFrame:
    """Rows with gaps in a number and in a text column, and a category never seen."""
    frame = pd.read_csv(CSV).drop(columns="progression").head(8)
    frame.loc[0, "bmi"] = np.nan
    frame.loc[1, "sex"] = np.nan
    frame.loc[2, "age_group"] = "centenarian"
    return frame


@pytest.fixture(scope="module")
def forest(tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    folder = tmp_path_factory.mktemp("forest")
    return trained(
        folder, csv_spec("sklearn.ensemble.RandomForestRegressor", "regression", "progression")
    )


def test_a_forest_on_text_and_number_columns_is_converted_proven_and_served(
    forest: RunDir,
) -> None:
    choice = choose(forest)
    assert choice.runtime == "onnx" and choice.comparison is not None
    comparison = choice.comparison
    n_test = bundle.read_manifest(forest.model_dir)["n_test"]
    assert comparison["rows"] == n_test and comparison["passed"]
    assert comparison["probe_rows"] == 11 * min(n_test, onnx_export.PROBE_ROWS)
    assert comparison["max_relative_difference"] <= onnx_export.REGRESSION_TOLERANCE
    record = json.loads((choice.model_dir / "runtime.json").read_text())
    assert record["comparison"] == comparison and record["refuses_missing"] == []
    model = bundle.load_model(forest.model_file)
    rows = awkward_rows()
    datatypes = {"age_group": "BYTES", "sex": "BYTES", "s1": "INT64", "age": "INT64"}
    datatypes |= {c: "FP64" for c in rows.columns if c not in datatypes}
    command, port = serve_dir(choice.model_dir)
    with serving(command, port):
        got = infer(port, "test-model", rows, datatypes)["predict"]
        meta = request(port, "GET", "/v2/models/test-model")[1]
    assert got["datatype"] == "FP64"
    expected = model.predict(rows)
    assert np.allclose(got["data"], expected, rtol=onnx_export.REGRESSION_TOLERANCE, atol=0)
    assert {i["name"]: i["datatype"] for i in meta["inputs"]}["sex"] == "BYTES"


def test_a_classifier_with_text_labels(tmp_path: Path) -> None:
    run = trained(
        tmp_path,
        csv_spec("sklearn.ensemble.GradientBoostingClassifier", "classification", "band"),
    )
    choice = choose(run)
    assert choice.runtime == "onnx" and choice.comparison is not None
    assert choice.comparison["label_agreement"] == 1.0
    model = bundle.load_model(run.model_file)
    rows = awkward_rows()
    datatypes = {"age_group": "BYTES", "sex": "BYTES", "s1": "INT64", "age": "INT64"}
    datatypes |= {c: "FP64" for c in rows.columns if c not in datatypes}
    command, port = serve_dir(choice.model_dir)
    with serving(command, port):
        outputs = infer(port, "test-model", rows, datatypes)
    assert outputs["predict"]["datatype"] == "BYTES"
    assert outputs["predict"]["data"] == model.predict(rows).tolist()
    proba = np.array(outputs["predict_proba"]["data"]).reshape(len(rows), 2)
    assert np.abs(proba - model.predict_proba(rows)).max() <= onnx_export.PROBABILITY_TOLERANCE


def test_where_scikit_learn_refuses_a_missing_value_so_does_onnx(tmp_path: Path) -> None:
    """No imputer: scikit-learn's LogisticRegression refuses NaN (422); ONNX would compute
    something, so the runtime refuses it too, and clients see the same answer."""
    spec = write_spec(
        tmp_path,
        "task: classification\ndata:\n  train: {builtin: iris}\n"
        "model:\n  estimator: sklearn.linear_model.LogisticRegression\n"
        "  params: {max_iter: 500}\n  preprocess: none\n"
        "container: {image: localhost:5000/test/onnx}\n",
    )
    run = RunDir(run_until(spec, tmp_path / "run", "train"))
    choice = choose(run, "auto")
    assert choice.runtime == "onnx" and choice.comparison is not None
    features = [f["name"] for f in bundle.read_manifest(run.model_dir)["features"]]
    assert choice.comparison["refuses_missing"] == features
    body = {
        "inputs": [
            {"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [5.1, None, 1.4, 0.2]}
        ]
    }
    answers = []
    for folder in (run.model_dir, choice.model_dir):
        command, port = serve_dir(folder)
        with serving(command, port):
            answers.append(request(port, "POST", "/v2/models/test-model/infer", body))
    (sklearn_status, sklearn_body), (onnx_status, onnx_body) = answers
    assert sklearn_status == onnx_status == 422
    assert "NaN" in sklearn_body["error"] and "NaN" in onnx_body["error"]


def test_a_model_skl2onnx_cannot_convert(tmp_path: Path) -> None:
    """KernelRidge has no converter: `onnx` is a build error (exit 5), `auto` says why it
    ships the scikit-learn runtime."""
    run = trained(
        tmp_path,
        csv_spec("sklearn.kernel_ridge.KernelRidge", "regression", "progression", "{alpha: 1.0}"),
    )
    result = run_cli("build", str(run.root))
    assert result.code == 5
    assert "container.runtime is onnx, but the ONNX model cannot ship" in result.err
    assert "skl2onnx cannot convert it" in result.err
    choice = choose(run, "auto")
    assert choice.runtime == "sklearn" and choice.model_dir == run.model_dir
    assert choice.reason.startswith("ONNX not used: skl2onnx cannot convert it")
    assert "KernelRidge" in choice.reason
    assert image_runtime.summary(choice.to_json()).startswith("runtime   sklearn: ONNX not used")


def test_a_conversion_that_disagrees_is_not_shipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The iris forest's ONNX probabilities are within 1e-6 of scikit-learn's; with a zero
    tolerance the same comparison must refuse it."""
    run = RunDir(run_until(copy_example(tmp_path), tmp_path / "run", "train"))
    monkeypatch.setattr(onnx_export, "PROBABILITY_TOLERANCE", 0.0)
    choice = choose(run, "auto")
    assert choice.runtime == "sklearn"
    assert "probabilities differ by up to" in choice.reason
    assert choice.comparison is not None and choice.comparison["passed"] is False
    with pytest.raises(BuildError, match="probabilities differ"):
        choose(run, "onnx")
    monkeypatch.undo()
    assert choose(run, "auto").runtime == "onnx"  # the cached refusal is not reused


def test_every_runtime_in_the_registry_serves_the_same_answers(forest: RunDir) -> None:
    model = bundle.load_model(forest.model_file)
    folders = {"sklearn": forest.model_dir, "onnx": choose(forest).model_dir}
    assert set(folders) == set(runtimes.RUNTIMES)
    rows = awkward_rows().dropna()
    datatypes = {"age_group": "BYTES", "sex": "BYTES", "s1": "INT64", "age": "INT64"}
    datatypes |= {c: "FP64" for c in rows.columns if c not in datatypes}
    metadata = []
    for name, runtime in runtimes.RUNTIMES.items():
        folder = folders[name]
        assert runtimes.of(folder) is runtime
        assert all((folder / file).is_file() for file in runtime.files), name
        command, port = serve_dir(folder)
        with serving(command, port):
            got = infer(port, "test-model", rows, datatypes)["predict"]["data"]
            metadata.append(request(port, "GET", "/v2/models/test-model"))
        assert np.allclose(got, model.predict(rows), rtol=onnx_export.REGRESSION_TOLERANCE), name
    assert all(m == metadata[0] for m in metadata)

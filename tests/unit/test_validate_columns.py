"""`mlops validate` checks columns against the data's header; `mlops columns` shows them."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import load_wine

from tests.conftest import run_cli

HEADER = "apiVersion: mlops/v1\nkind: ModelPipeline\nmetadata: {name: wines}\n"
MODEL = "model:\n  estimator: sklearn.linear_model.LogisticRegression\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / ".git").mkdir()  # the repository the data must stay in
    (tmp_path / "data").mkdir()
    frame = load_wine(as_frame=True).frame.rename(columns={"alcohol": "Alcohol_pct"})
    frame.to_csv(tmp_path / "data" / "train.csv", index=False)
    frame.to_parquet(tmp_path / "data" / "train.parquet")
    frame.drop(columns=["hue"]).to_csv(tmp_path / "data" / "test.csv", index=False)
    return tmp_path


def spec(folder: Path, body: str) -> Path:
    path = folder / "mlops.yaml"
    path.write_text(HEADER + "task: classification\n" + body + MODEL)
    return path


def problems(path: Path) -> list[tuple[str, str]]:
    result = run_cli("validate", str(path))
    assert "Traceback" not in result.out + result.err
    return [
        (where.removeprefix(f"{path}:"), message)
        for where, message in (row.split(": ", 1) for row in result.out.splitlines())
        if not message.startswith("valid (")
    ]


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_target_features_and_slices_against_the_header(project: Path, suffix: str) -> None:
    path = spec(
        project,
        f"data:\n  train:\n    path: data/train.{suffix}\n    target: tagret\n"
        "    features: [Alcohol, malic_acid, hue]\n"
        "evaluation:\n  slices:\n"
        "    - {name: strong, where: {column: Alcohol, op: '>', value: 13}}\n",
    )
    assert problems(path) == [
        ("8:13", f"target column 'tagret' is not in data/train.{suffix}; did you mean 'target'?"),
        (
            "9:16",
            f"feature column 'Alcohol' is not in data/train.{suffix}; did you mean 'Alcohol_pct'?",
        ),
    ]
    # Fixed: the slice now names a column that is not among the features.
    path.write_text(path.read_text().replace("tagret", "target").replace("[Alcohol,", "["))
    assert problems(path) == [
        (
            "12:38",
            "slice column 'Alcohol' is not a feature or the target of the model "
            "(columns: malic_acid, hue, target)",
        )
    ]


def test_slices_may_use_every_column_when_features_are_not_listed(project: Path) -> None:
    path = spec(
        project,
        "data:\n  train: {path: data/train.csv, target: target}\n"
        "evaluation:\n  slices:\n"
        "    - {name: a, where: {column: ash, op: '>', value: 2}}\n"
        "    - {name: b, where: {column: target, op: '==', value: 1}}\n"
        "    - {name: c, where: {column: alcohol, op: '>', value: 13}}\n",
    )
    assert problems(path) == [
        (
            "11:33",
            "slice column 'alcohol' is not a feature or the target of the model; "
            "did you mean 'Alcohol_pct'?",
        )
    ]


def test_builtin_columns_come_without_loading_anything(tmp_path: Path) -> None:
    path = spec(
        tmp_path,
        "data:\n  train: {builtin: iris}\n"
        "evaluation:\n  slices:\n"
        "    - {name: long, where: {column: petal lenght (cm), op: '>', value: 4}}\n",
    )
    assert problems(path) == [
        (
            "9:36",
            "slice column 'petal lenght (cm)' is not a feature or the target of the model; "
            "did you mean 'petal length (cm)'?",
        )
    ]


def test_test_data_must_hold_the_model_columns(project: Path) -> None:
    path = spec(
        project,
        "data:\n  train: {path: data/train.csv, target: target}\n  test: {path: data/test.csv}\n",
    )
    assert problems(path) == [
        ("7:16", "test data columns differ from the training data (missing hue)")
    ]


def test_data_that_is_not_there_yet_or_remote_is_not_read(project: Path) -> None:
    # A file fetched later (`dvc pull`) and a URL: training reads them; validate cannot.
    for location in ("data/later.csv", "s3://bucket/train.csv"):
        path = spec(project, f"data:\n  train: {{path: {location}, target: whatever}}\n")
        assert problems(path) == []


def test_an_unreadable_file_is_reported_at_its_path(project: Path) -> None:
    (project / "data" / "broken.parquet").write_bytes(b"not parquet at all")
    path = spec(project, "data:\n  train: {path: data/broken.parquet, target: y}\n")
    assert problems(path) == [
        (
            "6:17",
            "cannot read 'data/broken.parquet' as Parquet: "
            "the file does not end with PAR1: it is not Parquet",
        )
    ]


def test_columns_command_shows_names_dtypes_and_roles(project: Path) -> None:
    path = spec(
        project,
        "data:\n  train: {path: data/train.parquet, target: tagret, features: [ash, hue]}\n"
        "  test: {path: data/test.csv}\n",
    )
    # The spec's target is wrong: that is when the columns are worth seeing.
    result = run_cli("columns", str(path), "--format", "json")
    assert result.code == 0, result.out + result.err
    train, test = json.loads(result.out)
    frame = pd.read_parquet(project / "data" / "train.parquet")
    assert train["dataset"] == "data.train" and train["format"] == "parquet"
    assert [(c["name"], c["dtype"]) for c in train["columns"]] == [
        (str(n), str(t)) for n, t in frame.dtypes.items()
    ]
    roles = {c["name"]: c["role"] for c in train["columns"]}
    assert (roles["ash"], roles["hue"], roles["proline"]) == ("feature", "feature", "unused")
    assert test["dtypes_from"] == "pandas' inference on all 178 rows"
    text = run_cli("columns", str(path))
    assert text.out.splitlines()[0] == (
        "data.train: data/train.parquet (parquet; dtypes from the Parquet schema "
        "(pandas dtypes where the file records them))"
    )
    assert "  hue " in text.out and text.out.count("feature") == 3  # ash, hue; test has no hue


def test_columns_command_on_a_builtin_and_on_broken_data(tmp_path: Path) -> None:
    path = spec(tmp_path, "data:\n  train: {builtin: wine}\n")
    result = run_cli("columns", str(path))
    assert result.code == 0
    assert "  proline  " in result.out and "  target  " in result.out
    path.write_text(path.read_text().replace("{builtin: wine}", "{builtin: wines}"))
    broken = run_cli("columns", str(path))
    assert broken.code == 2 and f"{path}:6:20: data.train.builtin must be one of" in broken.out

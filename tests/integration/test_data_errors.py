"""Bad data is reported at the spec key that named it, with exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.integration.helpers import write_spec

MODEL = "model:\n  estimator: sklearn.linear_model.LogisticRegression\n"


def check(spec: Path, tmp_path: Path, line: int, column: int, fragment: str) -> None:
    result = run_cli("run", str(spec), "--out", str(tmp_path / "run"))
    assert result.code == 2, result.out + result.err
    assert f"{spec}:{line}:{column}: " in result.out, result.out
    assert fragment in result.out


def test_file_not_found(tmp_path: Path) -> None:
    spec = write_spec(
        tmp_path, "task: classification\ndata:\n  train: {path: nope.csv, target: y}\n" + MODEL
    )
    check(spec, tmp_path, 6, 17, "data file 'nope.csv' not found")


def test_target_column_missing(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("a,b\n1,2\n3,4\n")
    spec = write_spec(
        tmp_path, "task: classification\ndata:\n  train: {path: d.csv, target: y}\n" + MODEL
    )
    check(spec, tmp_path, 6, 32, "target column 'y' is not in d.csv (columns: a, b)")


def test_feature_column_missing(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("a,y\n1,2\n3,4\n")
    spec = write_spec(
        tmp_path,
        "task: classification\ndata:\n  train: {path: d.csv, target: y, features: [a, c]}\n"
        + MODEL,
    )
    check(spec, tmp_path, 6, 49, "feature column 'c' is not in d.csv")


@pytest.mark.parametrize("content", ["", "a,y\n"], ids=["no-bytes", "header-only"])
def test_empty_data(tmp_path: Path, content: str) -> None:
    (tmp_path / "d.csv").write_text(content)
    spec = write_spec(
        tmp_path, "task: classification\ndata:\n  train: {path: d.csv, target: y}\n" + MODEL
    )
    result = run_cli("run", str(spec), "--out", str(tmp_path / "run"))
    assert result.code == 2
    assert f"{spec}:6:17: " in result.out
    assert any(s in result.out for s in ("no rows", "cannot read", "is empty: a CSV file starts"))


def test_non_numeric_target_for_regression(tmp_path: Path) -> None:
    rows = "".join(f"{i},{'abc'[i % 3]}\n" for i in range(30))
    (tmp_path / "d.csv").write_text("a,y\n" + rows)
    spec = write_spec(
        tmp_path,
        "task: regression\ndata:\n  train: {path: d.csv, target: y}\n"
        "model:\n  estimator: sklearn.linear_model.Ridge\n",
    )
    check(spec, tmp_path, 6, 32, "task is regression, but target column 'y' is not numeric")


def test_missing_values_in_the_target(tmp_path: Path) -> None:
    rows = "".join(f"{i},{'' if i == 7 else i % 2}\n" for i in range(30))
    (tmp_path / "d.csv").write_text("a,y\n" + rows)
    spec = write_spec(
        tmp_path, "task: classification\ndata:\n  train: {path: d.csv, target: y}\n" + MODEL
    )
    check(spec, tmp_path, 6, 32, "target column 'y' has 1 missing value(s) (rows [7])")


def test_test_file_with_other_columns(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text(
        "a,b,y\n" + "".join(f"{i},{i},{i % 2}\n" for i in range(20))
    )
    (tmp_path / "test.csv").write_text("a,c,y\n1,2,0\n2,3,1\n")
    spec = write_spec(
        tmp_path,
        "task: classification\ndata:\n  train: {path: train.csv, target: y}\n"
        "  test: {path: test.csv}\n" + MODEL,
    )
    check(
        spec,
        tmp_path,
        7,
        16,
        "test data columns differ from the training data (missing b; not in the training data: c)",
    )


def test_unparseable_parquet(tmp_path: Path) -> None:
    (tmp_path / "d.parquet").write_text("not parquet")
    spec = write_spec(
        tmp_path, "task: classification\ndata:\n  train: {path: d.parquet, target: y}\n" + MODEL
    )
    check(spec, tmp_path, 6, 17, "cannot read 'd.parquet' as Parquet")


def test_parquet_files_are_read(tmp_path: Path) -> None:
    import pandas as pd

    frame = pd.DataFrame(
        {"a": range(40), "b": [i % 3 for i in range(40)], "y": [i % 2 for i in range(40)]}
    )
    frame.to_parquet(tmp_path / "d.parquet")
    spec = write_spec(
        tmp_path, "task: classification\ndata:\n  train: {path: d.parquet, target: y}\n" + MODEL
    )
    result = run_cli("run", str(spec), "--out", str(tmp_path / "run"))
    assert result.code == 0, result.out + result.err


def test_slice_on_a_missing_column(tmp_path: Path) -> None:
    spec = write_spec(
        tmp_path,
        "task: classification\ndata:\n  train: {builtin: iris}\n"
        + MODEL
        + "evaluation:\n  slices:\n    - {name: s, where: {column: colour, op: ==, value: red}}\n",
    )
    check(spec, tmp_path, 11, 33, "slice column 'colour' is not a feature or the target")


def test_bad_estimator_params_are_reported_at_params(tmp_path: Path) -> None:
    # Validation reads scikit-learn's constraint: at the value, before any data is loaded.
    spec = write_spec(
        tmp_path,
        "task: classification\ndata:\n  train: {builtin: iris}\n"
        "model:\n  estimator: sklearn.tree.DecisionTreeClassifier\n  params: {max_depth: -3}\n",
    )
    check(spec, tmp_path, 9, 23, "'max_depth' must be an int in the range [1, inf) or None")
    # A constraint validation cannot read (SGD's loss names are computed): fit refuses it,
    # located at the estimator.
    spec = write_spec(
        tmp_path,
        "task: classification\ndata:\n  train: {builtin: iris}\n"
        "model:\n  estimator: sklearn.linear_model.SGDClassifier\n  params: {loss: nope}\n",
    )
    check(spec, tmp_path, 8, 14, "training failed: The 'loss' parameter of SGDClassifier")


def test_a_file_written_while_it_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The digest and the parse read the file separately: a writer in between is caught."""
    import pandas as pd

    data = tmp_path / "d.csv"
    data.write_text("a,y\n" + "".join(f"{i},{i % 2}\n" for i in range(40)))
    read_csv = pd.read_csv

    def read_while_a_writer_appends(path: Path, **kwargs: object) -> pd.DataFrame:
        with data.open("a") as handle:
            handle.write("40,0\n")
        return read_csv(path)

    monkeypatch.setattr(pd, "read_csv", read_while_a_writer_appends)
    spec = write_spec(
        tmp_path, "task: classification\ndata:\n  train: {path: d.csv, target: y}\n" + MODEL
    )
    check(spec, tmp_path, 6, 17, "'d.csv' changed while it was read")

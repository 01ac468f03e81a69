"""`mlops init`: the starter spec it writes validates (CSV, Parquet, every built-in dataset),
its guess is said, and it refuses what it must, through the real CLI."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from gitops_mlops.builtin_datasets import BUILTINS
from tests.conftest import run_cli


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with a data folder: where a starter spec lives."""
    root = tmp_path / "repo"
    (root / "data").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    return root


def _init_and_validate(*argv: str, output: Path) -> tuple[str, dict[str, object]]:
    made = run_cli("init", *argv, "--output", str(output))
    assert made.code == 0, made.out + made.err
    checked = run_cli("validate", str(output))
    assert checked.code == 0, checked.out + output.read_text()
    loaded = yaml.safe_load(output.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return made.out, loaded


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_every_builtin_dataset_gets_a_spec_that_validates(repo: Path, name: str) -> None:
    entry = BUILTINS[name]
    out, spec = _init_and_validate("--builtin", name, output=repo / "mlops.yaml")
    assert spec["task"] == entry.task
    assert f"task: {entry.task}, because the built-in dataset {name!r}" in out
    assert spec["data"] == {
        "train": {"builtin": name},
        "split": {"test_size": 0.2, "seed": 42, "stratify": entry.task == "classification"},
    }
    text = (repo / "mlops.yaml").read_text()
    for feature in entry.features:  # the columns are listed (as comments: all are used)
        assert f"#   {feature} (float64)" in text


def test_csv_with_a_text_target_is_a_classifier_with_the_majority_share_as_floor(
    repo: Path,
) -> None:
    rows = 50
    frame = pd.DataFrame(
        {
            "width": [float(i) for i in range(rows)],
            "colour": ["red", "blue"] * (rows // 2),
            "kind": ["a"] * 31 + ["b"] * 12 + ["c"] * 7,  # a majority of 62 %
        }
    )
    frame.to_csv(repo / "data" / "train.csv", index=False)
    out, spec = _init_and_validate(
        "--data", str(repo / "data" / "train.csv"), "--target", "kind", output=repo / "mlops.yaml"
    )
    assert spec["task"] == "classification"
    assert "target 'kind' holds text: 3 classes (a, b, c)" in out
    train = spec["data"]["train"]  # type: ignore[index]
    assert train == {"path": "data/train.csv", "target": "kind", "features": ["width", "colour"]}
    assert spec["evaluation"]["metrics"] == ["accuracy", "f1_macro", "roc_auc_ovr"]  # type: ignore[index]
    thresholds = spec["gate"]["thresholds"]  # type: ignore[index]
    assert thresholds == [{"metric": "accuracy", "min": 0.62}]
    assert "always guessing the most common class scores 62.0%" in (repo / "mlops.yaml").read_text()


def test_parquet_with_a_numeric_target_is_a_regressor(repo: Path) -> None:
    frame = pd.DataFrame({"x": range(100), "y": [i * 1.5 + 0.25 for i in range(100)]})
    frame.to_parquet(repo / "data" / "sales.parquet")
    spec_dir = repo / "models" / "sales"
    spec_dir.mkdir(parents=True)
    out, spec = _init_and_validate(
        "--data", str(repo / "data" / "sales.parquet"), "--target", "y", output=spec_dir / "m.yaml"
    )
    assert spec["task"] == "regression"
    assert "target 'y' holds numbers with 100 distinct values (from 0.25 to 148.75)" in out
    assert spec["metadata"] == {  # the name is made valid from the file's name
        "name": "sales-regressor",
        "description": "Predicts y from ../../data/sales.parquet. Say what it is for and for whom.",
    }
    assert spec["data"]["train"]["path"] == "../../data/sales.parquet"  # type: ignore[index]
    assert spec["gate"]["thresholds"] == [{"metric": "r2", "min": 0}]  # type: ignore[index]


def test_awkward_column_names_read_back_exactly(repo: Path) -> None:
    """Names YAML would read as something else (numbers, booleans, comments, mappings)."""
    names = ["1", "yes", "a: b", "c #d", " lead", "ü-ß", "-dash", "[x]", "null", "e'f\"g"]
    frame = pd.DataFrame({name: [1.0, 2.0, 3.0, 4.0] for name in names})
    frame["label"] = [0, 1, 0, 1]
    frame.to_csv(repo / "data" / "odd.csv", index=False)
    out, spec = _init_and_validate(
        "--data", str(repo / "data" / "odd.csv"), "--target", "label", output=repo / "mlops.yaml"
    )
    assert spec["data"]["train"]["features"] == names  # type: ignore[index]
    assert "2 distinct whole numbers (0, 1)" in out
    assert spec["evaluation"]["metrics"] == ["accuracy", "f1", "roc_auc"]  # type: ignore[index]


def test_an_existing_file_is_never_overwritten(repo: Path) -> None:
    output = repo / "mlops.yaml"
    output.write_text("mine\n")
    refused = run_cli("init", "--builtin", "iris", "--output", str(output))
    assert refused.code == 2
    assert "already exists and is never overwritten" in refused.err
    assert "--output PATH" in refused.err  # says how
    assert output.read_text() == "mine\n"


@pytest.mark.parametrize("dangling", [False, True])
def test_a_symlink_is_never_written_through(repo: Path, dangling: bool) -> None:
    target = repo / "elsewhere.yaml"
    if not dangling:
        target.write_text("kept\n")
    link = repo / "mlops.yaml"
    link.symlink_to(target)
    refused = run_cli("init", "--builtin", "iris", "--output", str(link))
    assert refused.code == 2 and "is a symbolic link" in refused.err, refused.err
    assert target.exists() is not dangling
    assert not dangling or not target.exists()


def test_data_outside_the_repository_or_through_a_link_is_refused(
    repo: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.csv"
    pd.DataFrame({"x": [1, 2], "y": [0, 1]}).to_csv(outside, index=False)
    refused = run_cli("init", "--data", str(outside), "--target", "y", "--output", str(repo / "a"))
    assert refused.code == 2
    assert "is outside the repository" in refused.err and "copy the file there" in refused.err
    link = repo / "data" / "link.csv"
    link.symlink_to(outside)
    refused = run_cli("init", "--data", str(link), "--target", "y", "--output", str(repo / "a"))
    assert refused.code == 2 and "is a symbolic link" in refused.err, refused.err
    assert not (repo / "a").exists()


def test_a_target_that_is_not_a_column_is_located_and_the_columns_named(repo: Path) -> None:
    data = repo / "data" / "train.csv"
    pd.DataFrame({"petal": [1.0, 2.0], "species": ["a", "b"]}).to_csv(data, index=False)
    refused = run_cli(
        "init", "--data", str(data), "--target", "specis", "--output", str(repo / "x")
    )
    assert refused.code == 2
    assert refused.err.startswith(f"mlops init: error: {data}:1:1: --target 'specis' is not a")
    assert "did you mean 'species'? Its columns: 'petal', 'species'" in refused.err
    assert "Traceback" not in refused.err


def test_a_target_with_one_value_is_refused(repo: Path) -> None:
    data = repo / "data" / "train.csv"
    pd.DataFrame({"x": [1.0, 2.0], "y": ["a", "a"]}).to_csv(data, index=False)
    refused = run_cli("init", "--data", str(data), "--target", "y", "--output", str(repo / "m"))
    assert refused.code == 2 and "holds one value only (a): nothing to predict" in refused.err


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--data", "{data}"], "--data needs --target COLUMN"),
        (["--builtin", "iris", "--target", "y"], "--target goes with --data"),
        (["--builtin", "iris", "--data", "{data}"], "not allowed with argument"),
        (["--builtin", "mnist"], "invalid choice: 'mnist'"),
        ([], "one of the arguments --data --builtin is required"),
    ],
)
def test_usage_errors_exit_2(argv: list[str], said: str, repo: Path) -> None:
    data = repo / "data" / "train.csv"
    data.write_text("x,y\n1,2\n")
    argv = [a.format(data=data) for a in argv]
    refused = run_cli("init", *argv, "--output", str(repo / "mlops.yaml"))
    assert refused.code == 2 and said in refused.err
    assert not (repo / "mlops.yaml").exists()


def test_the_floor_is_the_majority_share_rounded_up() -> None:
    from gitops_mlops.starter_spec import TaskGuess, first_threshold

    for share in (0.5, 0.333, 0.9999, 0.62, 0.125):
        metric, floor, _ = first_threshold(TaskGuess("classification", "", 2, share))
        assert metric == "accuracy"
        assert share <= floor < share + 0.01 + 1e-12 and math.isclose(
            floor * 100, round(floor * 100)
        )


def test_a_file_that_appears_after_the_check_is_still_not_replaced(tmp_path: Path) -> None:
    """`write` itself never replaces: a file or a dangling link made between the command
    line's check and the write is refused, and no temporary file is left."""
    from gitops_mlops.starter_spec import InitRefused, write

    existing = tmp_path / "mlops.yaml"
    existing.write_text("mine\n")
    link = tmp_path / "linked.yaml"
    link.symlink_to(tmp_path / "nowhere.yaml")
    for output in (existing, link):
        with pytest.raises(InitRefused, match="never overwrites"):
            write(output, "apiVersion: mlops/v1\n")
    assert existing.read_text() == "mine\n" and not (tmp_path / "nowhere.yaml").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["linked.yaml", "mlops.yaml"]
    write(tmp_path / "new.yaml", "kind: x\n")
    assert (tmp_path / "new.yaml").read_text() == "kind: x\n"

"""The spec corpora: every valid spec passes; every invalid one fails where it says."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT, SPECS, run_cli

INVALID = sorted((SPECS / "invalid").glob("*.yaml"))
VALID = sorted((SPECS / "valid").glob("*.yaml")) + sorted(ROOT.glob("examples/*/mlops.yaml"))
EXPECT = re.compile(rb"^# expect: (\d+):(\d+): (.+)$", re.MULTILINE)


def expectation(path: Path) -> tuple[int, int, str]:
    match = EXPECT.search(path.read_bytes().split(b"\n", 1)[0])
    assert match, f"{path.name} has no '# expect: LINE:COL: fragment' first line"
    return int(match[1]), int(match[2]), match[3].decode()


def test_the_invalid_corpus_is_large_enough() -> None:
    assert len(INVALID) >= 40


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_spec_is_reported_at_its_location(path: Path) -> None:
    line, column, fragment = expectation(path)
    result = run_cli("validate", str(path))
    assert result.code == 2, result.out + result.err
    located = [
        row for row in result.out.splitlines() if row.startswith(f"{path}:{line}:{column}: ")
    ]
    assert located, f"nothing reported at {line}:{column}:\n{result.out}"
    assert any(fragment in row for row in located), result.out
    assert "Traceback" not in result.out + result.err


@pytest.mark.parametrize("path", VALID, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_valid_spec_passes(path: Path) -> None:
    result = run_cli("validate", str(path))
    assert result.code == 0, result.out
    assert result.out.strip().endswith(")")
    assert result.err == ""


def test_every_error_of_a_file_is_reported_not_only_the_first(tmp_path: Path) -> None:
    spec = tmp_path / "mlops.yaml"
    spec.write_text(
        "apiVersion: mlops/v1\nkind: Pipeline\nmetadata: {name: x, colour: red}\n"
        "task: classification\ndata: {train: {builtin: iris}}\n"
        "model: {estimator: sklearn.svm.SVC, preprocess: maybe}\n"
    )
    result = run_cli("validate", str(spec))
    assert result.code == 2
    rows = result.out.splitlines()
    assert [r.split(": ", 1)[0] for r in rows] == [
        f"{spec}:2:7",
        f"{spec}:3:21",
        f"{spec}:6:49",
    ]
    assert "3 problems in 1 file" in result.err


def test_json_format_lists_every_problem_with_its_location(tmp_path: Path) -> None:
    bad = SPECS / "invalid" / "unknown-nested-key.yaml"
    result = run_cli(
        "validate", "--format", "json", str(bad), str(SPECS / "valid" / "minimal.yaml")
    )
    assert result.code == 2
    problems = json.loads(result.out)
    assert {"file", "line", "column", "path", "message"} == set(problems[0])
    assert [p["path"] for p in problems] == ["model", "model.estimatr"]
    first = problems[1]
    assert (first["file"], first["line"], first["column"]) == (str(bad), 10, 3)
    assert first["path"] == "model.estimatr"
    assert "did you mean 'estimator'" in first["message"]


def test_valid_json_output_is_an_empty_list() -> None:
    result = run_cli("validate", "--format", "json", str(SPECS / "valid" / "minimal.yaml"))
    assert (result.code, json.loads(result.out)) == (0, [])


def test_github_actions_get_error_annotations() -> None:
    bad = SPECS / "invalid" / "bad-task.yaml"
    result = run_cli("validate", str(bad), env={"GITHUB_ACTIONS": "true"})
    assert result.code == 2
    assert f"::error file={bad},line=6,col=7::task must be one of" in result.err


def test_annotations_escape_newlines_and_percent_signs(tmp_path: Path) -> None:
    spec = tmp_path / "mlops.yaml"
    spec.write_text(
        (SPECS / "valid" / "minimal.yaml")
        .read_text()
        .replace("{name: minimal}", '{name: "a%b\\nc"}')
    )
    result = run_cli("validate", str(spec), env={"GITHUB_ACTIONS": "true"})
    annotations = [r for r in result.err.splitlines() if r.startswith("::error")]
    assert len(annotations) == 1
    assert "%25" in annotations[0] and "%0A" not in result.out


def test_default_path_is_mlops_yaml_in_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    missing = run_cli("validate")
    assert missing.code == 2
    assert missing.out.startswith("mlops.yaml:1:1: file not found")
    (tmp_path / "mlops.yaml").write_text((SPECS / "valid" / "minimal.yaml").read_text())
    assert run_cli("validate").code == 0


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "file is empty"),
        (b"   \n\n", "file is empty"),
        (b"apiVersion: mlops/v1\n# " + b"x" * (1024 * 1024), "limited to 1048576 bytes"),
        (b"\xff\xfe" + "a: [".encode("utf-16-le"), "YAML syntax error"),
    ],
    ids=["empty", "blank", "over-1-MiB", "utf-16-broken"],
)
def test_file_level_problems(tmp_path: Path, content: bytes, fragment: str) -> None:
    spec = tmp_path / "mlops.yaml"
    spec.write_bytes(content)
    result = run_cli("validate", str(spec))
    assert result.code == 2
    assert result.out.startswith(f"{spec}:")
    assert fragment in result.out


def test_a_folder_is_not_a_spec(tmp_path: Path) -> None:
    result = run_cli("validate", str(tmp_path))
    assert result.code == 2
    assert "not a regular file" in result.out


def test_symlink_leaving_the_repository_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.csv"
    outside.write_text("a,y\n1,2\n")
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "data").mkdir()
    (repo / "data" / "train.csv").symlink_to(outside)
    (repo / "data" / "inside.csv").write_text("a,y\n1,2\n")
    (repo / "data" / "alias.csv").symlink_to(repo / "data" / "inside.csv")
    spec = repo / "ml" / "mlops.yaml"
    spec.parent.mkdir()
    text = (SPECS / "valid" / "minimal.yaml").read_text()
    spec.write_text(text.replace("{builtin: iris}", "{path: ../data/train.csv, target: y}"))
    result = run_cli("validate", str(spec))
    assert result.code == 2
    assert f"{spec}:6:17: '../data/train.csv' is a symlink that leaves the repository" in result.out
    # `..` that stays inside the repository, and a symlink inside it, are fine.
    spec.write_text(text.replace("{builtin: iris}", "{path: ../data/alias.csv, target: y}"))
    assert run_cli("validate", str(spec)).code == 0


def test_schema_and_semantic_errors_are_reported_in_one_pass(tmp_path: Path) -> None:
    spec = tmp_path / "mlops.yaml"
    spec.write_text(
        "apiVersion: mlops/v1\n"
        "kind: ModelPipeline\n"
        "metadata: {name: Bad_Name}\n"  # schema: pattern
        "task: classification\n"
        "data: {train: {builtin: iris}}\n"
        "model:\n"
        "  estimator: sklearn.ensemble.RandomForestClassifier\n"
        "  params: {n_estimator: 10}\n"  # semantic: no such parameter
        "  preprocess: maybe\n"  # schema: enum
        "evaluation:\n"
        "  metrics: [accuracy, acuracy]\n"  # semantic: unknown metric
        "  slices:\n"
        "    - {name: long, where: {column: petal length (cm), op: '~', value: 4}}\n"  # schema
        "gate:\n"
        "  thresholds:\n"
        "    - {metric: accuracy, slice: lonk, min: 0.9}\n"  # semantic: unknown slice
        "    - {metric: accuracy, min: high}\n"  # schema: type
        "    - {metric: accuracy, min: 0.9, max: 0.5}\n"  # semantic: max below min
    )
    result = run_cli("validate", str(spec))
    assert result.code == 2
    rows = [r.split(": ", 1) for r in result.out.splitlines()]
    located = [(where.removeprefix(f"{spec}:"), message) for where, message in rows]
    assert [where for where, _ in located] == [
        "3:18",
        "8:12",
        "9:15",
        "11:23",
        "13:59",
        "16:33",
        "17:31",
        "18:41",
    ]
    assert "did you mean 'n_estimators'" in located[1][1]
    assert "unknown metric 'acuracy'; did you mean 'accuracy'" in located[3][1]
    assert "unknown slice 'lonk'; did you mean 'long'" in located[5][1]
    assert "max (0.5) is below min (0.9)" in located[7][1]
    assert "8 problems in 1 file" in result.err


def test_each_missing_required_key_is_named(tmp_path: Path) -> None:
    spec = tmp_path / "mlops.yaml"
    spec.write_text(
        "apiVersion: mlops/v1\nkind: ModelPipeline\nmetadata: {name: x}\n"
        "evaluation:\n  slices:\n    - {name: a}\n"
    )
    result = run_cli("validate", "--format", "json", str(spec))
    problems = [(p["path"], p["message"]) for p in json.loads(result.out)]
    assert problems == [
        ("(top level)", "(top level) is missing required key 'task'"),
        ("(top level)", "(top level) is missing required key 'data'"),
        ("(top level)", "(top level) is missing required key 'model'"),
        ("evaluation.slices[0]", "evaluation.slices[0] is missing required key 'where'"),
    ]


def test_a_check_that_compares_parts_waits_for_their_schema_errors(tmp_path: Path) -> None:
    # The environment's and the slice's names are invalid: the gate's references to them are
    # not reported as unknown (that would blame the wrong line), only the names themselves.
    spec = tmp_path / "mlops.yaml"
    spec.write_text(
        (SPECS / "valid" / "minimal.yaml").read_text() + "evaluation:\n  slices:\n"
        "    - {name: 'long petals', where: {column: petal length (cm), op: '>', value: 1}}\n"
        "gate:\n  champion: Prod\n  thresholds: [{metric: accuracy, slice: long petals, min: 0}]\n"
        "promotion:\n  environments: [{name: Prod}]\n"
    )
    result = run_cli("validate", "--format", "json", str(spec))
    assert [p["path"] for p in json.loads(result.out)] == [
        "evaluation.slices[0].name",
        "promotion.environments[0].name",
    ]


def test_a_password_in_a_url_is_never_echoed() -> None:
    path = SPECS / "invalid" / "search-scheduler-user-info.yaml"
    result = run_cli("validate", str(path))
    assert result.code == 2
    assert "s3cretpw" not in result.out + result.err and "user:" not in result.out

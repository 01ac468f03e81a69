"""`mlops runs` and `mlops diff`: real runs made by `mlops run`, listed newest first through
the CLI (partial and damaged runs listed as such), and compared: paired when they share test
rows, unpaired (and said so) when not."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gitops_mlops.reporting.numbers import NONE, number, signed, span
from tests.conftest import run_cli
from tests.integration.helpers import write_spec

SPEC = """task: classification
data:
  train: {builtin: iris}
  split: {test_size: 0.3, seed: %d}
model:
  estimator: sklearn.tree.DecisionTreeClassifier
  params: {max_depth: %d}
  preprocess: none
evaluation:
  metrics: [accuracy, f1_macro]
  confidence: {resamples: 200}
  latency: false
  slices:
    - {name: wide, where: {column: petal width (cm), op: ">", value: 1.0}}
gate:
  thresholds:
    - {metric: accuracy, min: %s}
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A project folder with two real runs in .mlops/runs: an older one whose gate fails
    (a stump) and a newer one that passes."""
    root = tmp_path_factory.mktemp("project")
    before = Path.cwd()
    os.chdir(root)  # `mlops run` writes .mlops/runs/<time> under the working directory
    try:
        for depth, floor in ((1, "0.9"), (3, "0.8")):
            spec = write_spec(root, SPEC % (1, depth, floor))
            made = run_cli("run", str(spec), "--until", "gate")
            assert made.code == (4 if depth == 1 else 0), made.out + made.err
        # Other test rows (another split seed), outside .mlops/runs: for an unpaired diff.
        spec = write_spec(root, SPEC % (2, 3, "0.8"))
        made = run_cli("run", str(spec), "--until", "gate", "--out", str(root / "other"))
        assert made.code == 0, made.out + made.err
    finally:
        os.chdir(before)
    yield root


def _runs(project: Path) -> list[Path]:
    return sorted((project / ".mlops" / "runs").iterdir(), reverse=True)


def test_runs_lists_real_runs_newest_first(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    newer, older = _runs(project)
    listed = run_cli("runs")
    assert listed.code == 0, listed.err
    header, first, second = listed.out.splitlines()
    assert header.split() == ["TIME", "(UTC)", "RUN", "MODEL", "VERSION", "VERDICT", "METRICS"]
    for line, run, verdict in ((first, newer, "passed"), (second, older, "failed")):
        manifest = json.loads((run / "model" / "manifest.json").read_text())
        accuracy = json.loads((run / "metrics.json").read_text())["metrics"]["accuracy"]
        cells = line.split()
        assert cells[2:6] == [run.name, "test-model", manifest["model_version"], verdict]
        assert f"accuracy {accuracy['value']:.4g} [{accuracy['ci_low']:.4g}, " in line
        assert "f1_macro" in line
        stamp = run.name  # 20261202T082526358740Z -> 2026-12-02 08:25:26
        assert cells[0] == f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}"
        assert cells[1] == f"{stamp[9:11]}:{stamp[11:13]}:{stamp[13:15]}"


def test_runs_json_and_limit(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    newer, _ = _runs(project)
    listed = run_cli("runs", "--limit", "1", "--format", "json")
    assert listed.code == 0, listed.err
    found = json.loads(listed.out)
    assert found["total"] == 2 and [r["run"] for r in found["runs"]] == [newer.name]
    (entry,) = found["runs"]
    metrics = json.loads((newer / "metrics.json").read_text())["metrics"]
    assert entry["state"] == "complete" and entry["verdict"] == "passed"
    assert entry["task"] == "classification"
    assert entry["metrics"]["accuracy"]["value"] == metrics["accuracy"]["value"]
    text = run_cli("runs", "--limit", "1")
    assert text.out.splitlines()[-1] == "… 1 older run (--limit N shows more)"


def test_partial_and_damaged_runs_are_listed_as_such(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    newer, _ = _runs(project)
    runs = tmp_path / ".mlops" / "runs"
    broken: dict[str, Callable[[Path], object]] = {
        "20260101T000000000001Z": lambda d: (d / "metrics.json").write_text('{"metrics": '),
        "20260101T000000000002Z": lambda d: (d / "metrics.json").unlink(),
        "20260101T000000000003Z": lambda d: shutil.rmtree(d / "model"),
        "20260101T000000000004Z": lambda d: (d / "verdict.json").write_text('{"rows": 3}'),
        "20260101T000000000005Z": lambda d: _relink(d / "metrics.json", tmp_path / "m.json"),
    }
    for name, damage in broken.items():
        shutil.copytree(newer, runs / name)
        damage(runs / name)
    (runs / "20260101T000000000006Z").mkdir()
    (runs / "20260101T000000000007Z").symlink_to(newer)
    monkeypatch.chdir(tmp_path)
    listed = run_cli("runs", "--format", "json")
    assert listed.code == 0 and "Traceback" not in listed.err
    states = {r["run"][-3:-1]: (r["state"], r["problem"]) for r in json.loads(listed.out)["runs"]}
    assert states["01"][0] == "damaged" and "metrics.json is not valid JSON" in states["01"][1]
    assert states["02"] == ("partial", "not evaluated: no metrics.json")
    assert states["03"] == ("partial", "no model: training did not finish")
    assert states["04"][0] == "damaged" and "'rows' must be a list" in states["04"][1]
    assert states["05"] == ("damaged", "metrics.json is a symbolic link; not read")
    assert states["06"] == ("partial", "no run.json: training did not start")
    assert states["07"] == ("damaged", "a symbolic link; not read")
    text = run_cli("runs").out
    assert "damaged  metrics.json is a symbolic link; not read" in text
    # No model, no version: "no value" as every report and table writes it.
    empty = [line.split() for line in text.splitlines() if "20260101T000000000006Z" in line]
    assert [cells[3:5] for cells in empty] == [[NONE, NONE]], text


def _relink(file: Path, elsewhere: Path) -> None:
    shutil.move(file, elsewhere)
    file.symlink_to(elsewhere)


def test_no_runs_yet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    listed = run_cli("runs")
    assert (
        listed.code == 0 and listed.out.strip() == "no runs in .mlops/runs (`mlops run` makes one)"
    )


@pytest.mark.parametrize("limit", ["0", "-1", "many"])
def test_a_limit_that_is_no_count_is_a_usage_error(limit: str) -> None:
    refused = run_cli("runs", "--limit", limit)
    assert refused.code == 2 and "--limit" in refused.err


# --- mlops diff -----------------------------------------------------------------------------
def _diff(a: Path, b: Path) -> dict[str, Any]:
    found = run_cli("diff", str(a), str(b), "--format", "json")
    assert found.code == 0, found.out + found.err
    loaded: dict[str, Any] = json.loads(found.out)
    return loaded


def _rows(found: dict[str, Any], slice_name: str | None = None) -> dict[str, dict[str, Any]]:
    rows = found["comparison"]["rows"]
    return {r["metric"]: r for r in rows if r["slice"] == slice_name}


def test_diff_of_runs_on_the_same_rows_is_paired(project: Path) -> None:
    newer, older = _runs(project)
    found = _diff(older, newer)
    assert found["comparison"]["mode"] == "paired"
    assert found["a"]["rows_digest"] == found["b"]["rows_digest"] != ""
    measured = {run: json.loads((run / "metrics.json").read_text()) for run in (older, newer)}
    for slice_name in (None, "wide"):
        rows = _rows(found, slice_name)
        assert set(rows) == {"accuracy", "f1_macro"}
        for name, row in rows.items():
            a, b = (
                (measured[r]["metrics"] if slice_name is None else measured[r]["slices"]["wide"])[
                    name
                ]["value"]
                for r in (older, newer)
            )
            assert (row["champion"], row["candidate"]) == (pytest.approx(a), pytest.approx(b))
            assert row["delta"] == pytest.approx(b - a)
            assert row["ci_low"] <= row["delta"] <= row["ci_high"]
    # A depth-3 tree against a stump on iris: clearly better, overall.
    assert _rows(found)["accuracy"]["verdict"] == "better"
    text = run_cli("diff", str(older), str(newer)).out
    # Its numbers read as the report writes them (one formatter for both).
    row = _rows(found)["accuracy"]
    assert (
        f"| accuracy | {number(row['champion'])} | {number(row['candidate'])} "
        f"| {signed(row['delta'])} | {span(row['ci_low'], row['ci_high'], sign=True)} "
        "| better |"
    ) in text
    rows = found["a"]["test_rows"]
    assert f"Paired: both runs predicted the same {rows} test rows (sha256:" in text
    assert "Δ = B - A, with 95% intervals" in text and "Slice wide (" in text
    itself = _rows(_diff(newer, newer))["accuracy"]
    assert (itself["delta"], itself["ci_low"], itself["ci_high"]) == (0, 0, 0)
    assert itself["verdict"] == "no detectable difference"


def test_diff_of_runs_on_other_rows_is_unpaired_and_says_so(project: Path) -> None:
    newer, _ = _runs(project)
    found = _diff(newer, project / "other")
    assert found["comparison"]["mode"] == "unpaired"
    assert found["a"]["rows_digest"] != found["b"]["rows_digest"]
    text = run_cli("diff", str(newer), str(project / "other")).out
    assert "Unpaired: the runs' test rows differ (A sha256:" in text
    assert "each run is resampled on its own" in text


def test_pairing_narrows_the_interval_on_the_same_rows(project: Path, tmp_path: Path) -> None:
    """The same two runs, once paired and once with B's rows digest changed (unpaired): the
    paired interval on Δ accuracy is the narrower one."""
    from gitops_mlops.records import predictions

    newer, older = _runs(project)
    relabelled = tmp_path / "relabelled"
    shutil.copytree(newer, relabelled)
    held = predictions.read(relabelled / "predictions.npz")
    predictions.write(
        relabelled / "predictions.npz", replace(held, rows_digest="sha256:" + "0" * 64)
    )
    paired = _rows(_diff(older, newer))["accuracy"]
    unpaired = _rows(_diff(older, relabelled))["accuracy"]
    assert paired["delta"] == pytest.approx(unpaired["delta"])
    assert paired["ci_high"] - paired["ci_low"] < unpaired["ci_high"] - unpaired["ci_low"]


def test_diff_refuses_runs_it_cannot_compare(project: Path, tmp_path: Path) -> None:
    newer, older = _runs(project)
    stale = tmp_path / "stale"
    shutil.copytree(newer, stale)
    (stale / "predictions.npz").unlink()
    refused = run_cli("diff", str(older), str(stale))
    assert refused.code == 1 and f"{stale} has no predictions.npz" in refused.err
    assert f"`mlops evaluate {stale}`" in refused.err
    linked = tmp_path / "linked"
    shutil.copytree(newer, linked)
    (linked / "predictions.npz").unlink()
    (linked / "predictions.npz").symlink_to(newer / "predictions.npz")
    refused = run_cli("diff", str(older), str(linked))
    assert refused.code == 1 and "is a symbolic link" in refused.err
    spec = project / "mlops.yaml"
    usage = run_cli("diff", str(spec), str(newer))
    assert usage.code == 2 and "expected a run directory" in usage.err

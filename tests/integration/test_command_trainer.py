"""`model.command`: the user's own training program, run for real."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from tests.conftest import ROOT, run_cli
from tests.integration.helpers import write_spec


def test_the_example_command_trains_and_reports_its_metric(tmp_path: Path) -> None:
    work = tmp_path / "project"
    shutil.copytree(ROOT / "examples" / "command-trainer", work)
    out = tmp_path / "run"
    result = run_cli("run", str(work / "mlops.yaml"), "--out", str(out))
    assert result.code == 0, result.out + result.err
    manifest = json.loads((out / "model" / "manifest.json").read_text())
    assert manifest["trainer"] == "command" and manifest["command"] == ["python", "train.py"]
    measured = json.loads((out / "metrics.json").read_text())
    assert 0.8 < measured["custom"]["cv_accuracy"] <= 1
    assert "cv_accuracy" in (out / "report.md").read_text()
    # The split the command saw is the one evaluation used.
    test_rows = (out / "data" / "test.csv").read_text().count("\n") - 1
    assert measured["n_test"] == test_rows


def command_spec(tmp_path: Path, script: str, timeout: int = 60) -> Path:
    (tmp_path / "train.py").write_text(script)
    return write_spec(
        tmp_path,
        "task: classification\ndata:\n  train: {builtin: iris}\n"
        f"model:\n  command: [{sys.executable}, train.py]\n  timeout_seconds: {timeout}\n",
    )


def test_a_failing_command_shows_its_last_lines(tmp_path: Path) -> None:
    spec = command_spec(
        tmp_path,
        "import sys\nfor i in range(40):\n    print('line', i)\nsys.exit('boom: no GPU here')\n",
    )
    result = run_cli("run", str(spec), "--out", str(tmp_path / "run"))
    assert result.code == 1
    assert "the training command exited with code 1" in result.err
    assert "  | boom: no GPU here" in result.err
    assert "  | line 39" in result.err and "  | line 5\n" not in result.err  # only the tail


def test_a_command_that_runs_too_long_is_stopped(tmp_path: Path) -> None:
    spec = command_spec(
        tmp_path, "import time\nprint('starting', flush=True)\ntime.sleep(60)\n", timeout=1
    )
    result = run_cli("run", str(spec), "--out", str(tmp_path / "run"))
    assert result.code == 1
    assert "longer than model.timeout_seconds (1 s)" in result.err
    assert "  | starting" in result.err


def test_a_command_that_writes_no_model(tmp_path: Path) -> None:
    spec = command_spec(tmp_path, "print('forgot to save')\n")
    result = run_cli("run", str(spec), "--out", str(tmp_path / "run"))
    assert result.code == 1
    assert "wrote no" in result.err and "skops.io.dump" in result.err


def test_a_command_that_cannot_start(tmp_path: Path) -> None:
    spec = write_spec(
        tmp_path,
        "task: classification\ndata:\n  train: {builtin: iris}\n"
        "model:\n  command: [definitely-not-a-program-xyz]\n",
    )
    result = run_cli("run", str(spec), "--out", str(tmp_path / "run"))
    assert result.code == 1
    assert "cannot start the training command 'definitely-not-a-program-xyz'" in result.err

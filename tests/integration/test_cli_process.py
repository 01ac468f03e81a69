"""The installed `mlops` command, run as users run it: a separate process."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, SPECS

PYTHON = sys.executable


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def test_console_script_and_module_entry_points_agree() -> None:
    script = shutil.which("mlops")
    assert script, "the package must install an `mlops` console script"
    bad = str(SPECS / "invalid" / "bad-task.yaml")
    via_script = run(script, "validate", bad)
    via_module = run(PYTHON, "-m", "gitops_mlops", "validate", bad)
    assert via_script.returncode == via_module.returncode == 2
    assert via_script.stdout == via_module.stdout
    assert "Traceback" not in via_script.stderr


def test_exit_codes_and_output_survive_the_fast_exit(tmp_path: Path) -> None:
    """The command leaves with os._exit (no interpreter teardown): output must be flushed
    and the exit code kept, also for argparse's own exits and a reader that went away."""
    script = shutil.which("mlops")
    assert script
    valid = run(script, "validate", str(ROOT / "examples" / "iris" / "mlops.yaml"))
    assert valid.returncode == 0 and "valid" in valid.stdout
    assert run(script, "--help").returncode == 0
    usage = run(script, "run", "--until", "nowhere")
    assert usage.returncode == 2 and "usage:" in usage.stderr
    closed = subprocess.run(
        f"{script} schema | head -c 10",
        shell=True,  # a fixed command line: the pipe is the point
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert closed.stdout == '{\n  "$sche'[:10] and "Traceback" not in closed.stderr


def test_unknown_subcommand_is_a_usage_error() -> None:
    result = run(PYTHON, "-m", "gitops_mlops", "frobnicate")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


MODULES_PROBE = """
import sys
from gitops_mlops.cli import main
code = main(["validate", sys.argv[1]])
heavy = sorted(m for m in ("sklearn", "numpy", "scipy", "pandas", "pyarrow") if m in sys.modules)
print("HEAVY=" + ",".join(heavy))
sys.exit(code)
"""


@pytest.mark.parametrize(
    "spec",
    [SPECS / "valid" / "command-trainer.yaml", SPECS / "valid" / "full.yaml"],
    ids=["command", "sklearn-estimator"],
)
def test_validation_does_not_import_scikit_learn_or_numpy(spec: Path) -> None:
    result = run(PYTHON, "-c", MODULES_PROBE, str(spec))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("HEAVY="), result.stdout


def test_checking_columns_reads_headers_without_numpy_or_pyarrow(tmp_path: Path) -> None:
    """A CSV header and a Parquet footer are read with the standard library alone."""
    import pandas as pd

    (tmp_path / ".git").mkdir()
    frame = pd.DataFrame({"x": [1.0, 2.0], "y": [0, 1]})
    frame.to_parquet(tmp_path / "train.parquet")
    spec = tmp_path / "mlops.yaml"
    spec.write_text(
        (SPECS / "valid" / "minimal.yaml")
        .read_text()
        .replace("{builtin: iris}", "{path: train.parquet, target: y, features: [x, z]}")
    )
    result = run(PYTHON, "-c", MODULES_PROBE, str(spec))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "feature column 'z' is not in train.parquet" in result.stdout
    assert result.stdout.strip().endswith("HEAVY="), result.stdout
    csv = run(PYTHON, "-c", MODULES_PROBE, str(ROOT / "examples" / "diabetes-csv" / "mlops.yaml"))
    assert csv.returncode == 0 and csv.stdout.strip().endswith("HEAVY="), csv.stdout


def test_check_jsonschema_agrees_on_the_examples() -> None:
    """The schema works in third-party tools too (what editors and pre-commit users run)."""
    tool = shutil.which("check-jsonschema")
    assert tool, "check-jsonschema is a test dependency"
    specs = [str(p) for p in sorted(ROOT.glob("examples/*/mlops.yaml"))]
    ok = run(tool, "--schemafile", "schemas/mlops.v1.schema.json", *specs)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = run(
        tool,
        "--schemafile",
        "schemas/mlops.v1.schema.json",
        str(SPECS / "invalid" / "unknown-nested-key.yaml"),
    )
    assert bad.returncode == 1


def test_pre_commit_hook_definition_runs_validate() -> None:
    import yaml

    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    hook = next(h for h in hooks if h["id"] == "mlops-validate")
    assert hook["entry"].split()[:2] == ["mlops", "validate"]
    assert hook["language"] == "python"
    example = str(ROOT / "examples" / "iris" / "mlops.yaml")
    result = run(*hook["entry"].split(), example)
    assert result.returncode == 0, result.stdout


def test_json_output_is_pure_json_under_github_actions(tmp_path: Path) -> None:
    env_cmd = ["env", "GITHUB_ACTIONS=true", PYTHON, "-m", "gitops_mlops"]
    result = run(*env_cmd, "validate", "--format", "json", str(SPECS / "invalid" / "bad-task.yaml"))
    assert result.returncode == 2
    assert json.loads(result.stdout)[0]["line"] == 6
    assert result.stderr.startswith("::error file=")

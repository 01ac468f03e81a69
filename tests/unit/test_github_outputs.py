"""Step outputs and the job summary: one writer, read back the way the Actions runner does.

The runner reads GITHUB_OUTPUT as `name=value` lines or `name<<DELIMITER` blocks that end at
the first line equal to the delimiter. A value that could contain that line (a pull
request's title, a metric's name) would end its block early and set outputs of its own.
"""

from __future__ import annotations

import re
from pathlib import Path

from gitops_mlops.reporting.github import append_summary, write_outputs

SOURCE = Path(__file__).resolve().parents[2] / "src" / "gitops_mlops"


def read_like_the_runner(text: str) -> dict[str, str]:
    """GITHUB_OUTPUT parsed as the runner's file command does (heredoc blocks only)."""
    found: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines) and lines[i]:
        name, delimiter = lines[i].split("<<", 1)
        end = lines.index(delimiter, i + 1)
        found[name] = "\n".join(lines[i + 1 : end])
        i = end + 1
    return found


def test_any_value_reads_back_exactly(tmp_path: Path) -> None:
    values = {
        "verdict": "passed",
        "report": "line one\nEOF\nmlops_0123456789abcdef\n::set-output name=x::y\nlast",
        "empty": "",
        "models": '{"churn": {"pr-url": "https://example.com/pull/1"}}',
    }
    env = {"GITHUB_OUTPUT": str(tmp_path / "output")}
    write_outputs(env, values)
    write_outputs(env, {"later": "appended, not overwritten"})
    read = read_like_the_runner((tmp_path / "output").read_text(encoding="utf-8"))
    assert read == {**values, "later": "appended, not overwritten"}


def test_without_the_files_nothing_is_written(tmp_path: Path) -> None:
    write_outputs({}, {"verdict": "passed"})
    append_summary({}, "# report")
    assert list(tmp_path.iterdir()) == []
    append_summary({"GITHUB_STEP_SUMMARY": str(tmp_path / "summary")}, "# report")
    append_summary({"GITHUB_STEP_SUMMARY": str(tmp_path / "summary")}, "| a |")
    assert (tmp_path / "summary").read_text(encoding="utf-8") == "# report\n| a |\n"


def test_only_the_reporting_module_writes_the_runner_files() -> None:
    """The report stage and the fleet summary once had a writer each; one fix (the random
    delimiter) must reach every output, so only reporting/github.py names the files."""
    writers = sorted(
        path.relative_to(SOURCE).as_posix()
        for path in SOURCE.rglob("*.py")
        if re.search(r"GITHUB_(OUTPUT|STEP_SUMMARY)\b", path.read_text(encoding="utf-8"))
    )
    assert writers == ["reporting/github.py"]

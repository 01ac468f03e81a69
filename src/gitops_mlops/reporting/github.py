"""GitHub Actions workflow commands, escaped as the runner expects."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path


def running_in_actions(env: Mapping[str, str]) -> bool:
    return env.get("GITHUB_ACTIONS") == "true"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(
    level: str,
    message: str,
    file: str | None = None,
    line: int | None = None,
    col: int | None = None,
) -> str:
    """`::error file=…,line=…,col=…::message`, with values escaped so input cannot inject."""
    props = [
        f"{name}={_escape_property(str(value))}"
        for name, value in (("file", file), ("line", line), ("col", col))
        if value is not None
    ]
    joined = " " + ",".join(props) if props else ""
    return f"::{level}{joined}::{_escape_data(message)}"


def group(title: str) -> str:
    return f"::group::{_escape_data(title)}"


def endgroup() -> str:
    return "::endgroup::"


def write_outputs(env: Mapping[str, str], values: Mapping[str, str]) -> None:
    """Append step outputs to the GITHUB_OUTPUT file, when there is one, each in a heredoc
    block: the one writer of step outputs (the report stage, the fleet summary)."""
    path = env.get("GITHUB_OUTPUT")
    if not path:
        return
    with Path(path).open("a", encoding="utf-8") as handle:
        for key, value in values.items():
            # A random delimiter: no value, whatever it holds, can end the block early.
            delimiter = f"mlops_{secrets.token_hex(8)}"
            handle.write(f"{key}<<{delimiter}\n{value}\n{delimiter}\n")


def append_summary(env: Mapping[str, str], text: str) -> None:
    """Add markdown to the job summary (GITHUB_STEP_SUMMARY), when there is one."""
    summary = env.get("GITHUB_STEP_SUMMARY")
    if summary:
        with Path(summary).open("a", encoding="utf-8") as handle:
            handle.write(text + "\n")

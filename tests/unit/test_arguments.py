"""Every subcommand's arguments: a value of the wrong kind (a spec where a run directory is
expected, a directory where a file is expected, ...) is a usage error, exit 2, that says
what was expected; never a traceback."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from gitops_mlops import arguments
from gitops_mlops.cli import _parser
from tests.conftest import ROOT, run_cli

SPEC = ROOT / "examples" / "iris" / "mlops.yaml"
PATHLIKE = {"PATH", "RUN_DIR", "FILE", "DIR", "OUT"}
# Subcommands that report a wrong path in their own output, with the problems of the others
# (tests/unit/test_spec_corpus.py: a folder is not a spec).
OWN_REPORT = {"validate"}


def _commands() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _arguments() -> list[tuple[str, argparse.Action]]:
    found = []
    for name, command in _commands().items():
        for action in command._actions:
            if action.dest not in ("help", "handler"):
                found.append((name, action))
    return found


@pytest.mark.parametrize(
    ("command", "action"),
    [(n, a) for n, a in _arguments() if a.option_strings == [] or a.type is not None],
    ids=lambda x: x if isinstance(x, str) else x.dest,
)
def test_paths_and_numbers_have_a_checked_kind(command: str, action: argparse.Action) -> None:
    """A new subcommand's path or number argument must use one of arguments.KINDS."""
    metavar = str(action.metavar or action.dest).upper()
    takes_path = metavar in PATHLIKE or action.dest in ("out", "champion", "cache", "results")
    if command in OWN_REPORT:
        return
    takes_number = action.type in (int, float)
    if takes_path or takes_number or action.type is not None:
        assert action.type in arguments.KINDS, f"mlops {command} {metavar}: {action.type}"


@pytest.fixture
def places(tmp_path: Path) -> dict[str, str]:
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"spec": str(SPEC)}))
    (tmp_path / "plain").mkdir()
    (tmp_path / "file.txt").write_text("x")
    return {
        "spec": str(SPEC),
        "spec folder": str(SPEC.parent),
        "run": str(run),
        "folder": str(tmp_path / "plain"),
        "file": str(tmp_path / "file.txt"),
        "missing": str(tmp_path / "missing"),
    }


# (argv, the expected phrase), with {name} filled from `places`.
WRONG: list[tuple[list[str], str]] = [
    (["evaluate", "{spec}"], "is a spec; give it to `mlops run`; expected a run directory"),
    (["evaluate", "{folder}"], "has no run.json; expected a run directory"),
    (["evaluate", "{missing}"], "does not exist; expected a run directory"),
    (["gate", "{run}", "--champion", "{folder}"], "has neither run.json nor manifest.json"),
    (["gate", "{run}", "--champion", "{missing}"], "does not exist; expected a release record"),
    (["gate", "{file}"], "is a file; expected a run directory"),
    (["report", "{spec}"], "expected a run directory"),
    (["promote", "{spec}"], "expected a run directory"),
    (["promote", "{run}", "--image", "repo:latest"], "expected REPOSITORY@sha256:<64 hex>"),
    (["build", "{spec}"], "expected a run directory"),
    (["serve", "{spec}"], "expected a run directory"),
    (["serve", "{run}", "--port", "http"], "'http' is not a number; expected a TCP port"),
    (["serve", "{run}", "--port", "70000"], "expected 1 to 65535"),
    (["serve", "{run}", "--workers", "0"], "expected a whole number of at least 1"),
    (["run", "{spec folder}"], "is a directory; expected a spec file (mlops.yaml); did you mean"),
    (["run", "{spec}", "--out", "{file}"], "is a file; expected a directory to write into"),
    (["run", "{spec}", "--cache", "{file}"], "is a file; expected a directory to write into"),
    (["run", "{spec}", "--signing-key", "{missing}"], "is not there; expected a PEM key file"),
    (["run", "{spec}", "--public-key", "{folder}"], "is a directory; expected a PEM key file"),
    (["run", "{spec}", "--champion", "{folder}"], "expected a release record file"),
    (["run", "{spec}", "--champion", "{missing}"], "does not exist; expected a release record"),
    (["run", "{spec}", "--image", "x@sha256:12"], "expected REPOSITORY@sha256:<64 hex>"),
    (["train", "{spec folder}"], "expected a spec file"),
    (["train", "{spec}", "--out", "{file}"], "expected a directory to write into"),
    (["plan", "{missing}"], "does not exist; expected a spec file or a folder of specs"),
    (["status", "{folder}"], "is a directory; expected a spec file"),
    (["summary", "{file}"], "is a file; expected a directory"),
    (["verify", "repo:latest"], "expected REPOSITORY@sha256:<64 hex>"),
    (["columns", "{spec folder}"], "is a directory; expected a spec file"),
    (["build", "{run}", "--signing-key", "{folder}"], "expected a PEM key file"),
    (["init", "--data", "{folder}", "--target", "y"], "is a directory; expected a CSV or"),
    (["init", "--data", "{missing}", "--target", "y"], "is not there; expected a CSV or"),
    (["init", "--builtin", "iris", "--output", "{file}"], "already exists and is never"),
    (["init", "--builtin", "iris", "--output", "{missing}/x"], "expected the path of a new"),
    (["runs", "--limit", "0"], "expected a whole number of at least 1"),
    (["diff", "{spec}", "{run}"], "is a spec; give it to `mlops run`; expected a run directory"),
    (["diff", "{run}", "{folder}"], "has no run.json; expected a run directory"),
]


@pytest.mark.parametrize(
    ("argv", "phrase"), WRONG, ids=lambda x: " ".join(x)[:60] if isinstance(x, list) else None
)
def test_wrong_kinds_are_usage_errors(argv: list[str], phrase: str, places: dict[str, str]) -> None:
    result = run_cli(*(part.format(**places) for part in argv))
    assert result.code == 2, result.out + result.err
    assert phrase in result.err, result.err
    assert f"usage: mlops {argv[0]}" in result.err
    assert "Traceback" not in result.err and "internal error" not in result.err


def test_every_subcommand_with_arguments_is_covered() -> None:
    covered = {argv[0] for argv, _ in WRONG}
    checked = {n for n, a in _arguments() if a.type in arguments.KINDS}
    assert checked <= covered, checked - covered


@pytest.mark.parametrize("kind", arguments.KINDS, ids=lambda k: k.__name__)
def test_every_kind_says_what_it_expected(
    kind: Callable[[str], object], places: dict[str, str]
) -> None:
    messages = []
    for value in places.values():
        try:
            kind(value)
        except argparse.ArgumentTypeError as err:
            messages.append(str(err))
    for value in ("", "-1", "abc"):
        try:
            kind(value)
        except argparse.ArgumentTypeError as err:
            messages.append(str(err))
    assert messages and all("expected" in m for m in messages), kind.__name__


# Whole messages of the kinds that share one check (arguments._is), word for word.
EXACT: list[tuple[Callable[[str], object], str, str]] = [
    (arguments.key_file, "folder", "{folder} is a directory; expected a PEM key file"),
    (arguments.key_file, "missing", "{missing} is not there; expected a PEM key file"),
    (arguments.directory, "file", "{file} is a file; expected a directory"),
    (arguments.directory, "missing", "{missing} is not there; expected a directory"),
    (arguments.data_file, "folder", "{folder} is a directory; expected a CSV or Parquet file"),
    (arguments.data_file, "missing", "{missing} is not there; expected a CSV or Parquet file"),
    (
        arguments.data_file,
        "link",
        "{link} is a symbolic link; expected a CSV or Parquet file (give the file it points to)",
    ),
]


@pytest.mark.parametrize(
    ("kind", "place", "message"), EXACT, ids=lambda x: getattr(x, "__name__", x)
)
def test_the_shared_check_says_what_each_kind_said(
    kind: Callable[[str], object], place: str, message: str, places: dict[str, str]
) -> None:
    link = Path(places["folder"]).parent / "link.csv"
    link.symlink_to(places["file"])
    named = places | {"link": str(link)}
    with pytest.raises(argparse.ArgumentTypeError) as caught:
        kind(named[place])
    assert str(caught.value) == message.format(**named)
    assert kind(places["file" if kind is not arguments.directory else "folder"])

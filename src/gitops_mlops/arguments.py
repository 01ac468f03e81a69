"""The kinds of command-line argument: each checks that a value is what the subcommand
expects (a spec file, a run directory, a release record, an image pinned by digest, ...)
and says what was expected when it is not. A wrong kind is a usage error (exit 2), never a
traceback. tests/unit/test_arguments.py walks every subcommand's arguments.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path

_DIGEST_REFERENCE = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")
RUN_DIR_HINT = "a run directory (written by `mlops run` or `mlops train`)"


def _bad(message: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(message)


def spec_file(text: str) -> str:
    """A spec file, as typed (messages name it so). A missing one is left to validation,
    which reports it at its name like any other problem of the file."""
    path = Path(text)
    if path.is_dir():
        inside = path / "mlops.yaml"
        hint = f"; did you mean {inside}?" if inside.is_file() else ""
        raise _bad(f"{text} is a directory; expected a spec file (mlops.yaml){hint}")
    return text


def run_dir(text: str) -> Path:
    """An existing run directory."""
    path = Path(text)
    if path.is_file():
        what = "a spec; give it to `mlops run`" if path.suffix in (".yaml", ".yml") else "a file"
        raise _bad(f"{text} is {what}; expected {RUN_DIR_HINT}")
    if not path.is_dir():
        raise _bad(f"{text} does not exist; expected {RUN_DIR_HINT}")
    if not (path / "run.json").is_file():
        raise _bad(f"{text} has no run.json; expected {RUN_DIR_HINT}")
    return path


def out_dir(text: str) -> Path:
    """A directory to write into, new or existing (--out, --cache)."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise _bad(f"{text} is a file; expected a directory to write into (made when missing)")
    return path


def champion(text: str) -> Path:
    """A release record file, a run directory or a model bundle folder (--champion)."""
    path = Path(text)
    expected = "a release record file (model-release.yaml), a run directory or a model bundle"
    if not path.exists():
        raise _bad(f"{text} does not exist; expected {expected}")
    if path.is_dir() and not any((path / name).is_file() for name in ("run.json", "manifest.json")):
        raise _bad(f"{text} has neither run.json nor manifest.json; expected {expected}")
    return path


def _is(text: str, kind: Callable[[Path], bool], expected: str) -> Path:
    """`text` as a path of that kind (Path.is_file, Path.is_dir), else what it is instead."""
    path = Path(text)
    if not kind(path):
        found = "a directory" if path.is_dir() else "a file" if path.exists() else "not there"
        raise _bad(f"{text} is {found}; expected {expected}")
    return path


def key_file(text: str) -> Path:
    """An existing PEM key file."""
    return _is(text, Path.is_file, "a PEM key file")


def directory(text: str) -> Path:
    """An existing directory (a repository)."""
    return _is(text, Path.is_dir, "a directory")


def existing_path(text: str) -> Path:
    """An existing spec file or folder of specs."""
    path = Path(text)
    if not path.exists():
        raise _bad(f"{text} does not exist; expected a spec file or a folder of specs")
    return path


def data_file(text: str) -> Path:
    """An existing data file (CSV or Parquet), not through a symbolic link."""
    expected = "a CSV or Parquet file"
    if Path(text).is_symlink():
        raise _bad(f"{text} is a symbolic link; expected {expected} (give the file it points to)")
    return _is(text, Path.is_file, expected)


def new_file(text: str) -> Path:
    """A file to create: nothing there yet (never overwritten), in an existing folder."""
    path = Path(text)
    expected = "expected the path of a new file"
    if path.is_symlink():
        raise _bad(f"{text} is a symbolic link, never written through; {expected}")
    if path.exists():
        raise _bad(
            f"{text} already exists and is never overwritten; {expected}: remove or rename "
            "it, or choose another --output PATH"
        )
    if not path.parent.is_dir():
        raise _bad(f"{path.parent} is not a folder; {expected} in an existing folder")
    return path


def pinned_image(text: str) -> str:
    """An image pinned by digest: REPOSITORY@sha256:<64 hex digits>."""
    if not _DIGEST_REFERENCE.match(text):
        raise _bad(f"{text!r} is not pinned by digest; expected REPOSITORY@sha256:<64 hex>")
    return text


def port(text: str) -> int:
    number = _integer(text, "a TCP port")
    if not 1 <= number <= 65535:
        raise _bad(f"{text} is not a TCP port; expected 1 to 65535")
    return number


def positive(text: str) -> int:
    number = _integer(text, "a whole number of at least 1")
    if number < 1:
        raise _bad(f"{text} is below 1; expected a whole number of at least 1")
    return number


def workers(text: str) -> str:
    """`auto` (one per CPU) or a whole number of at least 1, as the server takes it."""
    return text if text == "auto" else str(positive(text))


def _integer(text: str, expected: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise _bad(f"{text!r} is not a number; expected {expected}") from None


# Every kind, for the test that walks the subcommands.
KINDS: tuple[Callable[[str], object], ...] = (
    spec_file,
    run_dir,
    out_dir,
    champion,
    key_file,
    directory,
    existing_path,
    data_file,
    new_file,
    pinned_image,
    port,
    positive,
    workers,
)

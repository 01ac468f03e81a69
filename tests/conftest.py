"""Shared test helpers."""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gitops_mlops.cli import main

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "tests" / "specs"


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


def run_cli(*argv: str, env: Mapping[str, str] | None = None) -> Result:
    """Run `mlops ARGV` in this process (the real CLI entry point, with captured streams)."""
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), env=env or {}, out=out, err=err)
    return Result(code, out.getvalue(), err.getvalue())

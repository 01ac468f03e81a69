"""Shared test helpers."""

from __future__ import annotations

import io
import os
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
    """Run `mlops ARGV` in this process (the real CLI entry point, with captured streams).

    The environment defaults to this one without GitHub's variables, so a test behaves the
    same on a laptop and under GitHub Actions unless it sets them itself.
    """
    if env is None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), env=env, out=out, err=err)
    return Result(code, out.getvalue(), err.getvalue())

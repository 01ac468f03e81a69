"""The one way a test that needs something outside Python (a Docker engine, Chromium, the
Mermaid renderer) leaves when it is not there: skipped, saying what is missing and how to
get it; or failed where an `MLOPS_REQUIRE_*` variable says it must be there (`.ci/run` sets
them all, so CI never leaves a test out in silence).
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def skip_or_fail(reason: str, required_by: str) -> NoReturn:
    """Skip the test with `reason`, or fail it with the same words when the environment
    variable `required_by` is set."""
    if os.environ.get(required_by):
        pytest.fail(reason)
    pytest.skip(reason)

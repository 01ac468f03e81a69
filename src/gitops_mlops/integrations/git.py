"""Read-only git queries used to record provenance."""

from __future__ import annotations

import subprocess
from pathlib import Path


def head_commit(folder: Path) -> str | None:
    """The commit checked out in the work tree holding `folder`, or None outside git."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    commit = result.stdout.strip()
    return commit if result.returncode == 0 and len(commit) == 40 else None

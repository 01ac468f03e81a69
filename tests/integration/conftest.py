"""Fixtures shared by integration modules."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="session")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This checkout's files as git sees them (tracked, or new and not ignored), for act.

    act copies a `--local-repository` folder whole, for every action it uses from it: with a
    virtual environment inside the checkout (a developer's .venv) that was 800 MB a copy and
    two minutes a run. One snapshot for the session: every act module runs the same code.
    """
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    snapshot = tmp_path_factory.mktemp("checkout")
    for name in filter(None, (item.decode() for item in listed)):
        source, target = ROOT / name, snapshot / name
        if source.is_symlink() or source.is_file():  # deleted files stay listed until staged
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target, follow_symlinks=False)
    return snapshot

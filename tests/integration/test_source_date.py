"""The source commit's time, read from a real git repository (the image's `created`)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from gitops_mlops.integrations.git import commit_time, head_commit


def test_commit_time_is_the_committer_date(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "GIT_AUTHOR_DATE": "@1500000000 +0000",
        "GIT_COMMITTER_DATE": "@1600000000 +0200",
    }
    for args in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "x"]):
        subprocess.run(["git", *args], cwd=tmp_path, env=env, check=True)
    commit = head_commit(tmp_path)
    assert commit is not None
    assert commit_time(tmp_path, commit) == 1600000000
    assert commit_time(tmp_path, "0" * 40) is None
    assert commit_time(tmp_path.parent, commit) is None

"""git, run as a subprocess: provenance queries and the GitOps repository checkout."""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gitops_mlops.errors import MlopsError

BOT_NAME = "gitops-mlops"
BOT_EMAIL = "gitops-mlops@users.noreply.github.com"


class GitError(MlopsError):
    """A git command failed; the message holds its stderr."""


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


def _auth_env(token: str | None) -> dict[str, str]:
    """git configuration passed through the environment, so the token is never in argv."""
    if not token:
        return {}
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    return {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "http.extraheader",
        "GIT_CONFIG_VALUE_0": f"AUTHORIZATION: basic {basic}",
    }


@dataclass(frozen=True)
class Checkout:
    """A clone of a remote repository in a private folder."""

    folder: Path
    url: str
    token: str | None = None

    def git(self, *args: str, check: bool = True, env: Mapping[str, str] | None = None) -> str:
        environment = {
            **os.environ,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": BOT_NAME,
            "GIT_AUTHOR_EMAIL": BOT_EMAIL,
            "GIT_COMMITTER_NAME": BOT_NAME,
            "GIT_COMMITTER_EMAIL": BOT_EMAIL,
            **_auth_env(self.token),
            **(env or {}),
        }
        result = subprocess.run(
            ["git", *args],
            cwd=self.folder if self.folder.exists() else None,
            env=environment,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if check and result.returncode != 0:
            detail = result.stderr.strip().replace(self.token or "\0", "***")
            raise GitError(f"git {args[0]} failed: {detail}")
        return result.stdout

    @classmethod
    def clone(
        cls, url: str, folder: Path, branch: str, token: str | None = None, depth: int = 0
    ) -> Checkout:
        checkout = cls(folder, url, token)
        shallow = ["--depth", str(depth)] if depth else []
        # file:// makes --depth apply to local paths too.
        source = Path(url).as_uri() if depth and Path(url).is_absolute() else url
        checkout.git(
            "clone", "--quiet", "--no-tags", *shallow, "--branch", branch, source, str(folder)
        )
        return checkout

    def remote_head(self, branch: str) -> str | None:
        line = self.git("ls-remote", "origin", f"refs/heads/{branch}").strip()
        return line.split()[0] if line else None

    def fetch(self, branch: str) -> str:
        self.git("fetch", "--quiet", "origin", f"+refs/heads/{branch}:refs/remotes/origin/{branch}")
        return self.git("rev-parse", f"refs/remotes/origin/{branch}").strip()

    def show(self, ref: str, path: str) -> str | None:
        """A file's text at `ref`, or None when it does not exist there."""
        if not self._exists(ref, path):
            return None
        return self.git("show", f"{ref}:{path}")

    def _exists(self, ref: str, path: str) -> bool:
        try:
            self.git("cat-file", "-e", f"{ref}:{path}")
        except GitError:
            return False
        return True

    def parent(self, ref: str) -> str:
        return self.git("rev-parse", f"{ref}^").strip()

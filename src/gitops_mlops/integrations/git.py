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
SYMLINK_MODE = "120000"  # git's file mode of a symbolic link


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


def _local(folder: Path, *args: str, timeout: float = 60) -> bytes:
    """Run a read-only git query in `folder`'s work tree; GitError with git's message."""
    try:
        result = subprocess.run(
            ["git", *args], cwd=folder, capture_output=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise GitError(f"git {args[0]} could not run in {folder}: {err}") from None
    if result.returncode != 0:
        detail = result.stderr.decode(errors="replace").strip()
        raise GitError(f"git {args[0]} failed in {folder}: {detail}")
    return result.stdout


def work_tree_root(folder: Path) -> Path | None:
    """The top of the git work tree holding `folder`, or None outside git."""
    try:
        return Path(_local(folder, "rev-parse", "--show-toplevel", timeout=10).decode().strip())
    except GitError:
        return None


def commit_time(folder: Path, commit: str) -> int | None:
    """The committer time (Unix seconds) of `commit` in the repository holding `folder`."""
    try:
        stamp = _local(folder, "show", "-s", "--format=%ct", commit, "--", timeout=10)
    except GitError:
        return None
    text = stamp.decode().strip()
    return int(text) if text.isdigit() else None


def tracked_files(root: Path) -> list[str]:
    """Every file git tracks in the work tree at `root` (repository-relative, '/'-separated).

    Git's view, not the disk's: ignored files, build output and `.mlops/` run folders that
    happen to lie around are not part of the repository a workflow checks out.
    """
    listed = _local(root, "ls-files", "-z", "--cached", "--full-name").decode()
    return [p for p in listed.split("\0") if p]


def changed_files(root: Path, base: str, head: str = "HEAD") -> list[str]:
    """Files that differ between the merge base of `base` and `head`, and `head` (`base...head`).

    Renames count as a deletion plus an addition, so both paths are reported.
    """
    for ref in (base, head):
        try:
            _local(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", timeout=10)
        except GitError:
            raise GitError(
                f"{ref!r} is not a commit in {root}; fetch it (actions/checkout with "
                "`fetch-depth: 0`), or plan every spec with --all"
            ) from None
    try:
        _local(root, "merge-base", base, head, timeout=30)
    except GitError:
        # Both commits are here but not the history joining them: a shallow clone.
        raise GitError(
            f"{base!r} and {head!r} have no common history in {root} (a shallow clone?); "
            "fetch the whole history (actions/checkout with `fetch-depth: 0`), or plan "
            "every spec with --all"
        ) from None
    listed = _local(root, "diff", "--name-only", "-z", "--no-renames", f"{base}...{head}")
    return [p for p in listed.decode().split("\0") if p]


@dataclass(frozen=True)
class Revision:
    """One commit that changed a file, with the file's text as that commit left it."""

    commit: str
    date: str  # committer date, ISO 8601
    subject: str
    text: str | None  # None: the commit deleted the file


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


def remote_branch_head(url: str, branch: str, token: str | None = None) -> str | None:
    """The commit `branch` points at in the repository at `url`; None when it has no such
    branch or cannot be asked (this only ever makes a message more helpful)."""
    try:
        result = subprocess.run(
            ["git", "ls-remote", "--heads", url, f"refs/heads/{branch}"],
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0", **_auth_env(token)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    line = result.stdout.strip() if result.returncode == 0 else ""
    return line.split()[0] if line else None


@dataclass(frozen=True)
class Checkout:
    """A clone of a remote repository in a private folder."""

    folder: Path
    url: str
    token: str | None = None

    def git(self, *args: str, check: bool = True, env: Mapping[str, str] | None = None) -> str:
        """git's output as text (newlines translated: for git's own messages, not files)."""
        result = self._run(args, None, env)
        if check and result.returncode != 0:
            raise self._failed(args, result.stderr)
        return result.stdout.decode("utf-8", errors="replace").replace("\r\n", "\n")

    def raw(self, *args: str, data: bytes | None = None) -> bytes:
        """git's output as bytes, with `data` on its standard input: file contents exactly."""
        result = self._run(args, data, None)
        if result.returncode != 0:
            raise self._failed(args, result.stderr)
        return result.stdout

    def _run(
        self, args: tuple[str, ...], data: bytes | None, env: Mapping[str, str] | None
    ) -> subprocess.CompletedProcess[bytes]:
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
        return subprocess.run(
            ["git", *args],
            cwd=self.folder if self.folder.exists() else None,
            env=environment,
            input=data,
            capture_output=True,
            timeout=300,
            check=False,
        )

    def _failed(self, args: tuple[str, ...], stderr: bytes) -> GitError:
        detail = stderr.decode("utf-8", errors="replace").strip()
        return GitError(f"git {args[0]} failed: {detail.replace(self.token or chr(0), '***')}")

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
        """A file's text at `ref` exactly as committed (line endings, BOM), or None when it
        does not exist there. A symbolic link gives the path it holds, never what it names."""
        if not self._exists(ref, path):
            return None
        raw = self.raw("cat-file", "blob", f"{ref}:{path}")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise GitError(
                f"{path} (at {ref[:12]}): byte {err.start} is not UTF-8; save the file as UTF-8"
            ) from None

    def link_on_path(self, ref: str, path: str) -> str | None:
        """The part of `path` that is a symbolic link at `ref` (the file, or a folder above
        it), or None. Read from git's tree, not the disk, so nothing is followed."""
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        listed = self.raw(
            "--literal-pathspecs", "ls-tree", "-z", "--full-tree", ref, "--", *prefixes
        )
        for entry in listed.decode("utf-8", errors="replace").split("\0"):
            mode, _, rest = entry.partition(" ")
            name = rest.partition("\t")[2]
            if mode == SYMLINK_MODE and name in prefixes:  # not a file beside the path
                return name
        return None

    def commit_files(
        self, base: str, branch: str, files: Mapping[str, str], message: str
    ) -> list[str]:
        """Rebuild `branch` on `base` with `files` (path -> text) in one commit; the paths
        that differ from `base` (no commit when none does).

        The texts go into git's object store and index as bytes, never through the work
        tree, so no symbolic link in the checkout is followed and no path leaves it (git
        refuses `.git/…` and paths through a link).
        """
        self.git("checkout", "--quiet", "--force", "-B", branch, base)
        modes = self._modes(base, list(files))
        for path, text in files.items():
            blob = self.raw("hash-object", "-w", "--stdin", data=text.encode("utf-8"))
            mode = modes.get(path, "100644")
            self.git(
                "update-index", "--add", "--cacheinfo", f"{mode},{blob.decode().strip()},{path}"
            )
        listed = self.raw("diff", "--cached", "--name-only", "-z")
        changed = [p for p in listed.decode("utf-8", errors="replace").split("\0") if p]
        if changed:
            self.git("commit", "--quiet", "-m", message)
        return changed

    def _modes(self, ref: str, paths: list[str]) -> dict[str, str]:
        """The file modes of `paths` at `ref` that a rewrite keeps (executable or not)."""
        listed = self.raw("--literal-pathspecs", "ls-tree", "-z", "--full-tree", ref, "--", *paths)
        modes = {}
        for entry in listed.decode("utf-8", errors="replace").split("\0"):
            mode, _, rest = entry.partition(" ")
            name = rest.partition("\t")[2]
            if mode in ("100644", "100755") and name in paths:
                modes[name] = mode
        return modes

    def _exists(self, ref: str, path: str) -> bool:
        try:
            self.git("cat-file", "-e", f"{ref}:{path}")
        except GitError:
            return False
        return True

    def parent(self, ref: str) -> str:
        return self.git("rev-parse", f"{ref}^").strip()

    def history_of(self, ref: str, path: str, limit: int = 1000) -> list[Revision]:
        """Every commit on `ref` that changed `path`, newest first, with the file's text.

        Two git processes whatever the number of commits: `log` lists them, and one
        `cat-file --batch` reads every version.
        """
        log = self.git(
            "log",
            f"--max-count={limit}",
            "--format=%H%x1f%cI%x1f%s%x1e",
            "--no-renames",
            ref,
            "--",
            path,
        )
        entries = [e.strip("\n").split("\x1f") for e in log.split("\x1e") if e.strip()]
        if not entries:
            return []
        texts = self._blobs([f"{commit}:{path}" for commit, _, _ in entries])
        return [
            Revision(commit, date, subject, text)
            for (commit, date, subject), text in zip(entries, texts, strict=True)
        ]

    def _blobs(self, names: list[str]) -> list[str | None]:
        """The text of each `rev:path`, or None where it does not exist (one process)."""
        result = subprocess.run(
            ["git", "cat-file", "--batch"],
            cwd=self.folder,
            input=("\n".join(names) + "\n").encode(),
            capture_output=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            raise GitError(f"git cat-file failed: {result.stderr.decode(errors='replace')}")
        out, position = result.stdout, 0
        texts: list[str | None] = []
        for _ in names:
            end = out.index(b"\n", position)
            header = out[position:end].decode(errors="replace")
            position = end + 1
            if header.endswith((" missing", " ambiguous")):  # `<name> missing`: not there
                texts.append(None)
                continue
            size = int(header.rsplit(" ", 1)[1])  # `<sha> <type> <size>`
            texts.append(out[position : position + size].decode("utf-8", errors="replace"))
            position += size + 1
        return texts

    def files_at(self, ref: str, paths: list[str]) -> dict[str, str | None]:
        """Several files' text at `ref` in one git process (None: not there)."""
        return dict(zip(paths, self._blobs([f"{ref}:{p}" for p in paths]), strict=True))

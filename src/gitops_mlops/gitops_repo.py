"""The GitOps repository: where it is, how to reach it, and reading files from its base branch.

It is the current repository, another one on GitHub (`owner/name`), or a local git
repository (a path), which lets everything run on a laptop without GitHub.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gitops_mlops.errors import MlopsError
from gitops_mlops.integrations import git
from gitops_mlops.integrations.git import Checkout
from gitops_mlops.spec.model import Spec

_OWNER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class GitHubSettings:
    """Everything promotion needs from the environment, resolved once."""

    token: str | None
    api_url: str
    server_url: str
    current_repository: str | None
    run_url: str | None
    throttle: bool

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> GitHubSettings:
        server = env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
        repository = env.get("GITHUB_REPOSITORY") or None
        run_id = env.get("GITHUB_RUN_ID")
        return cls(
            token=env.get("MLOPS_GITHUB_TOKEN") or env.get("GITHUB_TOKEN") or None,
            api_url=env.get("GITHUB_API_URL", "https://api.github.com").rstrip("/"),
            server_url=server,
            current_repository=repository,
            run_url=f"{server}/{repository}/actions/runs/{run_id}"
            if repository and run_id
            else None,
            throttle=env.get("MLOPS_GITHUB_THROTTLE", "1") != "0",
        )


def remote(spec: Spec, github: GitHubSettings) -> tuple[str, str | None, str | None]:
    """(git URL, GitHub owner/name or None for a local repository, token)."""
    configured = spec.promotion.repository if spec.promotion else None
    local = spec.root / configured if configured is not None else None
    if local is not None and local.is_dir():
        if not _is_git(local):
            raise MlopsError(
                f"promotion.repository {configured!r} is a folder but not a git "
                f"repository; run `git init` in {local}"
            )
        return str(local.resolve()), None, None
    repository = configured or github.current_repository
    if repository is None or not _OWNER_NAME.match(repository):
        raise MlopsError(
            f"promotion.repository {repository!r} is neither a local git repository nor "
            "owner/name; set it, or run where GITHUB_REPOSITORY is set"
        )
    if not github.token:
        raise MlopsError(
            f"promoting to {repository} needs a GitHub token: set MLOPS_GITHUB_TOKEN (or "
            "GITHUB_TOKEN) with contents and pull-requests write access"
        )
    return f"{github.server_url}/{repository}.git", repository, github.token


def read_base_file(spec: Spec, github: GitHubSettings, path: str) -> str | None:
    """A file of the GitOps repository's base branch, or None when it does not exist.

    A local folder that is not (yet) a git repository is read as it is on disk.
    """
    configured = spec.promotion.repository if spec.promotion else None
    folder = spec.root / configured if configured is not None else None
    if folder is not None and folder.is_dir() and not _is_git(folder):
        return _read_plain(folder, path)
    url, _, token = remote(spec, github)
    base = spec.promotion.base if spec.promotion else "main"
    with tempfile.TemporaryDirectory(prefix="mlops-read-") as tmp:
        checkout = Checkout.clone(url, Path(tmp) / "repo", base, token, depth=1)
        refuse_links(checkout, "HEAD", [path], f"{url} ({base})")
        return checkout.show("HEAD", path)


class LinkInRepository(MlopsError):
    """A path the tool reads or writes in the GitOps repository goes through a symbolic link."""


def pending_promotion(spec: Spec, github: GitHubSettings, branch: str) -> str | None:
    """The open pull request (on GitHub) or branch (any git repository) that would release
    something when merged, described for a message; None when there is none."""
    if plain_folder(spec) is not None:
        return None
    url, repository, token = remote(spec, github)
    if repository is not None and token is not None:
        from gitops_mlops.integrations.github import GitHub

        try:
            client = GitHub(token, repository, github.api_url, github.throttle)
            pull = next((p for p in client.open_pulls() if p.head.ref == branch), None)
        except MlopsError:
            pull = None  # the API is down: the branch still says enough
        if pull is not None:
            return f"pull request #{pull.number} ({pull.html_url})"
    if git.remote_branch_head(url, branch, token) is not None:
        return f"branch {branch} of {repository or url}"
    return None


def refuse_links(checkout: Checkout, ref: str, paths: list[str], where: str) -> None:
    """Refuse when any of `paths` (or a folder above one) is a symbolic link at `ref`.

    A link in someone else's repository can name any file on this machine: reading through
    it leaks the file into a pull request, writing through it overwrites the file.
    """
    for path in paths:
        link = checkout.link_on_path(ref, path)
        if link is not None:
            raise _link_error(where, path, link)


def _link_error(where: str, path: str, link: str) -> LinkInRepository:
    what = "" if link == path else f" ({link}, a folder above it)"
    return LinkInRepository(
        f"{where}: {path}: a symbolic link{what}; promotion never reads or writes through "
        f"links, which can lead out of the repository. Commit the real file in place of "
        f"{link}, or point mlops.yaml at the real path"
    )


def _read_plain(folder: Path, path: str) -> str | None:
    """A file of a plain local folder, refusing any symbolic link on the way to it."""
    current = folder
    for part in Path(path).parts:
        current = current / part
        if current.is_symlink():
            raise _link_error(str(folder), path, str(current.relative_to(folder)))
    return current.read_text(encoding="utf-8") if current.is_file() else None


def _is_git(folder: Path) -> bool:
    return (folder / ".git").exists() or (folder / "HEAD").is_file()


def plain_folder(spec: Spec) -> Path | None:
    """The configured local GitOps folder when it is not a git repository yet, else None."""
    configured = spec.promotion.repository if spec.promotion else None
    folder = spec.root / configured if configured is not None else None
    plain = folder is not None and folder.is_dir() and not _is_git(folder)
    return folder.resolve() if plain and folder is not None else None

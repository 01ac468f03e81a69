"""GitHub through PyGithub: promotion pull requests and sticky comments.

Requests are retried on 5xx and on rate limits (honouring Retry-After) by PyGithub's
GithubRetry, and counted through PyGithub's request log so runs can report what they cost.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from gitops_mlops.errors import MlopsError

DEFAULT_API_URL = "https://api.github.com"
TITLE_LIMIT = 255
BODY_LIMIT = 65_000  # GitHub refuses 65,536 characters and more


class GitHubError(MlopsError):
    """The GitHub API refused a request; the message says which and why."""


def fit(text: str, limit: int, pointer: str) -> str:
    """`text` cut to `limit` characters, ending with `pointer` when cut."""
    if len(text) <= limit:
        return text
    return text[: limit - len(pointer) - 1] + "\n" + pointer


class _Counter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "==>" in record.getMessage():  # PyGithub logs one such line per request answered
            self.count += 1


@dataclass(frozen=True)
class PullRequest:
    number: int
    url: str
    created: bool


class GitHub:
    """One repository on GitHub (or GitHub Enterprise at `api_url`)."""

    def __init__(
        self, token: str, repository: str, api_url: str = DEFAULT_API_URL, throttle: bool = True
    ) -> None:
        from github import Auth, Github, GithubRetry

        retry = GithubRetry(total=5, backoff_factor=0.5, secondary_rate_wait=5)
        # PyGithub spaces requests (0.25 s) and writes (1 s) to stay clear of GitHub's
        # secondary rate limits; `throttle=False` is for servers without them (tests).
        if throttle:
            self._client = Github(auth=Auth.Token(token), base_url=api_url, retry=retry, timeout=30)
        else:
            self._client = Github(
                auth=Auth.Token(token),
                base_url=api_url,
                retry=retry,
                timeout=30,
                seconds_between_requests=0,
                seconds_between_writes=0,
            )
        self._repo = self._client.get_repo(repository, lazy=True)
        self.repository = repository
        self._counter = _Counter()

    @property
    def calls(self) -> int:
        return self._counter.count

    @contextmanager
    def _counting(self) -> Iterator[None]:
        from github import GithubException
        from requests import RequestException

        logger = logging.getLogger("github.Requester")
        level, propagate = logger.level, logger.propagate
        logger.addHandler(self._counter)
        logger.setLevel(logging.DEBUG)
        logger.propagate = False  # counting, not printing
        try:
            yield
        except GithubException as err:
            message = err.data.get("message") if isinstance(err.data, dict) else err.data
            raise GitHubError(
                f"GitHub API error {err.status} on {self.repository}: {message}"
            ) from None
        except RequestException as err:  # unreachable host, DNS, TLS: not a bug of ours
            raise GitHubError(
                f"cannot reach the GitHub API for {self.repository}: {type(err).__name__}"
            ) from None
        finally:
            logger.removeHandler(self._counter)
            logger.setLevel(level)
            logger.propagate = propagate

    def open_pulls(self) -> list[Any]:
        with self._counting():
            return list(self._repo.get_pulls(state="open"))

    def open_or_update(
        self,
        open_pulls: Sequence[Any],
        branch: str,
        base: str,
        title: str,
        body: str,
        labels: Sequence[str],
        reviewers: Sequence[str],
        draft: bool,
    ) -> PullRequest:
        """The pull request for `branch`: updated in place when open, else created."""
        with self._counting():
            existing = next((p for p in open_pulls if p.head.ref == branch), None)
            if existing is not None:
                if existing.title != title or (existing.body or "") != body:
                    existing.edit(title=title, body=body)
                have = {label.name for label in existing.labels}
                if set(labels) - have:
                    existing.add_to_labels(*sorted(set(labels) - have))
                return PullRequest(existing.number, existing.html_url, created=False)
            pull = self._repo.create_pull(
                base=base, head=branch, title=title, body=body, draft=draft
            )
            if labels:
                pull.add_to_labels(*labels)
            users = [r for r in reviewers if "/" not in r]
            teams = [r.split("/", 1)[1] for r in reviewers if "/" in r]
            if users or teams:
                pull.create_review_request(reviewers=users, team_reviewers=teams)
            return PullRequest(pull.number, pull.html_url, created=True)

    def enable_auto_merge(self, number: int, method: str) -> None:
        with self._counting():
            self._repo.get_pull(number).enable_automerge(merge_method=method.upper())

    def close_superseded(self, open_pulls: Sequence[Any], marker: str, keep: int) -> list[int]:
        """Close other open pull requests that carry `marker`, pointing at `keep`."""
        closed = []
        with self._counting():
            for pull in open_pulls:
                if pull.number != keep and marker in (pull.body or ""):
                    pull.create_issue_comment(f"Superseded by #{keep}.")
                    pull.edit(state="closed")
                    closed.append(pull.number)
        return closed

    def sticky_comment(self, number: int, marker: str, body: str) -> tuple[int, bool]:
        """Create or update in place the one comment on PR `number` that carries `marker`."""
        with self._counting():
            issue = self._repo.get_issue(number)
            for comment in issue.get_comments():
                if marker in comment.body:
                    if comment.body != body:
                        comment.edit(body)
                    return comment.id, False
            return issue.create_comment(body).id, True

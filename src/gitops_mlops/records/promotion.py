"""promotion.json: what a promotion did in the GitOps repository (the latest environment)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gitops_mlops.records.fields import Fields

WHAT = "promotion.json"


@dataclass(frozen=True)
class PullRequestRef:
    number: int
    url: str
    created: bool  # False: an open pull request was updated


@dataclass(frozen=True)
class WouldOpen:
    """The pull request a local GitOps repository (no GitHub) would have got."""

    title: str
    body: str


@dataclass(frozen=True)
class PromotionRecord:
    environment: str
    branch: str
    changed: bool  # False: the environment already runs this release
    commit: str | None
    files_changed: tuple[str, ...]
    pushed: bool
    repository: str  # owner/name, or the local repository's path
    image: str  # REPOSITORY@sha256:…
    version: str
    forced: bool
    pull_request: PullRequestRef | None = None
    superseded: tuple[int, ...] = ()  # pull requests closed as superseded
    api_calls: int | None = None
    would_open: WouldOpen | None = None
    diff: str | None = None  # the commit, for a local repository
    # The image's attestation chain as verified before promoting (attestations.chain's JSON).
    verified: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        pull, would = self.pull_request, self.would_open
        return {
            "environment": self.environment,
            "branch": self.branch,
            "changed": self.changed,
            "commit": self.commit,
            "files_changed": list(self.files_changed),
            "pushed": self.pushed,
            "repository": self.repository,
            "image": self.image,
            "version": self.version,
            "forced": self.forced,
            "pull_request": None
            if pull is None
            else {"number": pull.number, "url": pull.url, "created": pull.created},
            "superseded": list(self.superseded),
            "api_calls": self.api_calls,
            "would_open": None if would is None else {"title": would.title, "body": would.body},
            "diff": self.diff,
            "verified": None if self.verified is None else dict(self.verified),
        }

    @classmethod
    def from_json(cls, raw: object, source: str) -> PromotionRecord:
        fields = Fields(raw, source, WHAT)
        pull, would = fields.obj("pull_request"), fields.obj("would_open")
        verified = fields.obj("verified")
        opened = None if would is None else WouldOpen(would.text("title"), would.text("body"))
        return cls(
            environment=fields.text("environment"),
            branch=fields.text("branch"),
            changed=fields.flag("changed"),
            commit=fields.opt_text("commit"),
            files_changed=fields.texts("files_changed"),
            pushed=fields.flag("pushed"),
            repository=fields.text("repository"),
            image=fields.text("image"),
            version=fields.text("version"),
            forced=fields.flag("forced"),
            pull_request=None
            if pull is None
            else PullRequestRef(pull.integer("number"), pull.text("url"), pull.flag("created")),
            superseded=fields.integers("superseded"),
            api_calls=fields.opt_integer("api_calls"),
            would_open=opened,
            diff=fields.opt_text("diff"),
            verified=verified.raw if verified is not None else None,
        )

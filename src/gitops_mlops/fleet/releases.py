"""What runs where, and what ran before: status and history from the GitOps repository.

The release records on the base branch are the source of truth. Reading them costs, per
GitOps repository (whatever the number of models and environments): one clone, three local
git processes (the records' text, their last commits, the unmerged promotion branches) and,
for a repository on GitHub, one API request per 100 open pull requests. History reads one
record's git history with two local git processes in that clone.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops_mlops import gitops_repo
from gitops_mlops.errors import MlopsError
from gitops_mlops.gitops_repo import GitHubSettings
from gitops_mlops.integrations.git import Checkout, Revision
from gitops_mlops.integrations.github import GitHub
from gitops_mlops.records.release import Hold, ReleaseRecord
from gitops_mlops.reporting.numbers import number
from gitops_mlops.spec.model import Environment, Spec

BRANCH_KINDS = ("promote", "rollback", "release-hold")
_PR_NUMBER = re.compile(r"(?:[Pp]ull request #|\(#)(\d+)")


@dataclass(frozen=True)
class Release:
    """The fields of a release record that status, history and rollback read."""

    version: str
    image: str
    metrics: Mapping[str, float | None]
    gate_passed: bool | None
    gate_failed: int
    gate_checks: int
    rollback_of: str | None
    reason: str | None
    hold: Hold | None


def parse(text: str, source: str) -> Release:
    """A release record's text; MlopsError when it is not one."""
    record = ReleaseRecord.from_yaml(text, source)
    return Release(
        version=record.version,
        image=record.image,
        metrics={name: estimate.value for name, estimate in record.metrics.items()},
        gate_passed=record.gate.passed,
        gate_failed=record.gate.failed,
        gate_checks=record.gate.checks,
        rollback_of=record.rollback_of,
        reason=record.reason,
        hold=record.hold,
    )


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def short_digest(image: str) -> str:
    _, _, digest = image.partition("@")
    return digest.removeprefix("sha256:")[:12] if digest else ""


def branch(kind: str, environment: str, model: str) -> str:
    return f"mlops/{kind}/{environment}/{model}"


# --- reading the GitOps repository --------------------------------------------------------


@dataclass(frozen=True)
class Place:
    """One GitOps repository and base branch; many specs usually share one."""

    url: str
    repository: str | None  # owner/name on GitHub, None for a local repository
    token: str | None
    base: str


def place_of(spec: Spec, settings: GitHubSettings) -> Place:
    if spec.promotion is None:
        raise MlopsError(f"{spec.file}: no `promotion:` section, so it has no release records")
    if gitops_repo.plain_folder(spec) is not None:
        raise MlopsError(
            f"{gitops_repo.plain_folder(spec)} is not a git repository; `git init` it (and "
            "commit) so releases have a history"
        )
    url, repository, token = gitops_repo.remote(spec, settings)
    return Place(url, repository, token, spec.promotion.base)


@contextmanager
def cloned(place: Place) -> Iterator[Checkout]:
    with tempfile.TemporaryDirectory(prefix="mlops-releases-") as tmp:
        yield Checkout.clone(place.url, Path(tmp) / "repo", place.base, place.token)


@dataclass(frozen=True)
class Row:
    model: str
    environment: str
    release: Release | None  # None: nothing released there yet
    released: str | None  # commit date of the record's last change
    pull_request: str | None  # the open pull request (or unmerged branch) into it
    problem: str | None = None  # the record exists but cannot be read

    def to_json(self, gated: Sequence[str]) -> dict[str, Any]:
        found = self.release
        return {
            "model": self.model,
            "environment": self.environment,
            "version": found.version if found else None,
            "image": found.image if found else None,
            "digest": short_digest(found.image) if found else None,
            "metrics": {m: found.metrics.get(m) for m in gated} if found else {},
            "released": self.released,
            "pull_request": self.pull_request,
            "hold": found.hold.to_json() if found and found.hold else None,
            "rollback_of": found.rollback_of if found else None,
            "problem": self.problem,
        }


@dataclass
class Cost:
    clones: int = 0
    git_processes: int = 0
    api_requests: int = 0


@dataclass(frozen=True)
class Status:
    rows: list[Row]
    gated: dict[str, tuple[str, ...]]  # model -> the metrics its gate checks
    cost: Cost = field(default_factory=Cost)


def gated_metrics(spec: Spec) -> tuple[str, ...]:
    return tuple(dict.fromkeys(t.metric for t in spec.gate.thresholds if t.slice is None))


def status(specs: Sequence[Spec], settings: GitHubSettings) -> Status:
    groups: dict[Place, list[Spec]] = {}
    for spec in specs:
        groups.setdefault(place_of(spec, settings), []).append(spec)
    rows: list[Row] = []
    cost = Cost()
    for place, members in groups.items():
        rows += _rows(place, members, settings, cost)
    gated = {s.metadata.name: gated_metrics(s) for s in specs}
    return Status(rows, gated, cost)


def _rows(place: Place, specs: Sequence[Spec], settings: GitHubSettings, cost: Cost) -> list[Row]:
    pairs = [(s, e) for s in specs for e in (s.promotion.environments if s.promotion else ())]
    paths = sorted({e.release_record for _, e in pairs})
    with cloned(place) as checkout:
        cost.clones += 1
        texts = checkout.files_at("HEAD", paths)
        dates = _last_changes(checkout, paths)
        open_pulls = _open_pulls(place, checkout, settings, cost)
        cost.git_processes += 3
    rows = []
    for spec, environment in pairs:
        name, path = spec.metadata.name, environment.release_record
        text, problem, found = texts.get(path), None, None
        if text is not None:
            try:
                found = parse(text, path)
            except MlopsError as err:
                problem = str(err)
        pull = next(
            (
                open_pulls[b]
                for kind in BRANCH_KINDS
                if (b := branch(kind, environment.name, name)) in open_pulls
            ),
            None,
        )
        rows.append(Row(name, environment.name, found, dates.get(path), pull, problem))
    return rows


def _last_changes(checkout: Checkout, paths: Sequence[str]) -> dict[str, str]:
    """Each path's last commit date on HEAD (one `git log` for all of them)."""
    if not paths:
        return {}
    out = checkout.git("log", "--format=%x1e%cI", "--name-only", "HEAD", "--", *paths)
    dates: dict[str, str] = {}
    for chunk in out.split("\x1e")[1:]:
        date, *names = [line for line in chunk.splitlines() if line.strip()]
        for name in names:
            dates.setdefault(name, date)
    return dates


def _open_pulls(
    place: Place, checkout: Checkout, settings: GitHubSettings, cost: Cost
) -> dict[str, str]:
    """Head branch -> pull request URL (GitHub), or -> branch name (a local repository)."""
    if place.repository is None or place.token is None:
        out = checkout.git(
            "for-each-ref",
            "--no-merged=HEAD",
            "--format=%(refname:lstrip=3)",
            "refs/remotes/origin/mlops/",
        )
        return {name: f"branch {name}" for name in out.split()}
    github = GitHub(place.token, place.repository, settings.api_url, settings.throttle)
    pulls = github.open_pulls()
    cost.api_requests += github.calls
    return {p.head.ref: p.html_url for p in pulls if str(p.head.ref).startswith("mlops/")}


def render_status(report: Status) -> str:
    if not report.rows:
        return "no model has a `promotion:` section: nothing is released anywhere"
    lines = []
    for row in report.rows:
        found = row.release
        if row.problem:
            state = f"unreadable record: {row.problem}"
        elif found is None:
            state = "not released"
        else:
            values = ", ".join(
                f"{m} {number(found.metrics.get(m))}" for m in report.gated[row.model]
            )
            state = f"{found.version}  {short_digest(found.image)}  {values}".rstrip()
            state += f"  released {row.released or '?'}"
            if found.rollback_of:
                state += f"  (rollback of {found.rollback_of})"
            if found.hold:
                state += f"  HELD: {found.hold.reason}"
        if row.pull_request:
            state += f"  open: {row.pull_request}"
        lines.append(f"{row.model:<20} {row.environment:<12} {state}")
    return "\n".join(lines)


# --- history --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    commit: str
    date: str
    subject: str
    release: Release | None  # None: this commit left no readable record
    problem: str | None
    pull_request: int | None
    text: str | None = None  # the record as this commit left it

    def to_json(self) -> dict[str, Any]:
        found = self.release
        return {
            "commit": self.commit,
            "date": self.date,
            "pull_request": self.pull_request,
            "version": found.version if found else None,
            "image": found.image if found else None,
            "gate": _gate_json(found),
            "rollback_of": found.rollback_of if found else None,
            "reason": found.reason if found else None,
            "hold": found.hold.to_json() if found and found.hold else None,
            "problem": self.problem,
        }


def _gate_json(found: Release | None) -> dict[str, Any] | None:
    if found is None:
        return None
    return {"passed": found.gate_passed, "checks": found.gate_checks, "failed": found.gate_failed}


def entries(checkout: Checkout, path: str) -> list[Entry]:
    """The record's releases, newest first; commits that left no record say why."""
    revisions = checkout.history_of("HEAD", path)
    merges = _merge_numbers(checkout)
    return [_entry(r, path, merges) for r in revisions]


def _entry(revision: Revision, path: str, merges: Mapping[str, int]) -> Entry:
    found, problem = None, None
    if revision.text is None:
        problem = "the record was deleted"
    else:
        try:
            found = parse(revision.text, f"{path}@{revision.commit[:12]}")
        except MlopsError as err:
            problem = str(err)
    own = _PR_NUMBER.search(revision.subject)
    number = merges.get(revision.commit) or (int(own[1]) if own else None)
    return Entry(
        revision.commit, revision.date, revision.subject, found, problem, number, revision.text
    )


def _merge_numbers(checkout: Checkout) -> dict[str, int]:
    """Commit -> the pull request whose merge brought it in (`Merge pull request #N`)."""
    out = checkout.git("log", "--merges", "--format=%P%x1f%s", "HEAD")
    found: dict[str, int] = {}
    for line in out.splitlines():
        parents, _, subject = line.partition("\x1f")
        number = _PR_NUMBER.search(subject)
        heads = parents.split()
        if number and len(heads) > 1:
            found.setdefault(heads[1], int(number[1]))
    return found


def history(spec: Spec, environment: Environment, settings: GitHubSettings) -> list[Entry]:
    with cloned(place_of(spec, settings)) as checkout:
        return entries(checkout, environment.release_record)


def render_history(found: Sequence[Entry]) -> str:
    if not found:
        return "no release yet"
    lines = []
    for entry in found:
        head = f"{entry.date}  {entry.commit[:12]}"
        pr = f"  #{entry.pull_request}" if entry.pull_request else ""
        if entry.release is None:
            lines.append(f"{head}  (not a release: {entry.problem}){pr}")
            continue
        r = entry.release
        gate = "gate passed" if r.gate_passed else "gate FAILED" if r.gate_passed is False else ""
        if r.gate_checks:
            gate += f" ({r.gate_checks - r.gate_failed}/{r.gate_checks})"
        line = f"{head}  {r.version}  {r.image}  {gate}{pr}"
        if r.rollback_of:
            line += f"  ROLLBACK of {r.rollback_of}: {r.reason}"
        if r.hold:
            line += f"  HELD: {r.hold.reason}"
        lines.append(line)
    return "\n".join(lines)

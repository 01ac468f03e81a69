"""Rollback and holds: re-release what ran before, and keep automation from undoing it.

A rollback opens (or updates) the pull request on `mlops/rollback/<env>/<name>` that pins an
earlier release's image in every target and writes a release record with `rollback_of`, the
reason and a `hold`. Nothing is trained or built; the image must still be in its registry.
While the record holds a hold, promotion into the environment is refused (exit 6) unless
forced; `release-hold` opens the pull request that removes it. Both go through the same
promotion code as any release, so they are reviewed, audited and idempotent alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gitops_mlops.errors import MlopsError
from gitops_mlops.fleet.releases import Entry, Release, cloned, entries, parse, place_of
from gitops_mlops.gitops_repo import GitHubSettings
from gitops_mlops.integrations.registry import Reference, Registry, RegistryError
from gitops_mlops.records.promotion import PromotionRecord
from gitops_mlops.records.release import Hold, ReleaseRecord
from gitops_mlops.spec.model import Spec
from gitops_mlops.stages.promote import (
    Candidate,
    PromoteContext,
    PromotionRefused,
    RollbackNotes,
    environment_named,
    promote,
)


def choose(found: Sequence[Entry], to: str | None, environment: str) -> tuple[Release, Entry]:
    """(what runs now, the release to go back to); PromotionRefused when there is none."""
    releases = [e for e in found if e.release is not None]
    if not releases:
        raise PromotionRefused(f"nothing was ever released to {environment}: nothing to roll back")
    current = releases[0].release
    assert current is not None
    earlier = [e for e in releases[1:] if e.release and e.release.version != current.version]
    if to is None:
        if not earlier:
            raise PromotionRefused(
                f"{environment} has had only {current.version}: there is no earlier release"
            )
        return current, earlier[0]
    if to == current.version:
        raise PromotionRefused(f"{environment} already runs {to}")
    for entry in earlier:
        if entry.release and entry.release.version == to:
            return current, entry
    ran = list(dict.fromkeys(e.release.version for e in releases if e.release))
    raise PromotionRefused(
        f"{to} never ran in {environment}; the versions that did, newest first: {', '.join(ran)}"
    )


def check_image(image: str, env: Mapping[str, str]) -> None:
    """The earlier image must still be in its registry: a rollback to nothing is refused."""
    try:
        reference = Reference.parse(image)
        if reference.digest is None:
            raise PromotionRefused(
                f"{image} is not pinned by digest, so it cannot be rolled back to"
            )
        present = Registry(reference.registry, env).exists(reference.repository, reference.digest)
    except RegistryError as err:
        raise MlopsError(f"cannot check that {image} is still in its registry: {err}") from None
    if not present:
        raise PromotionRefused(
            f"{image} is no longer in its registry (deleted or garbage-collected), so the "
            "rollback would pin an image that cannot run; choose another version with --to"
        )


def _candidate(entry: Entry, environment: str) -> Candidate:
    assert entry.text is not None
    record = ReleaseRecord.from_yaml(entry.text, f"{environment}@{entry.commit[:12]}")
    return Candidate.from_record(record, f"{environment} (commit {entry.commit[:12]})")


def rollback(
    spec: Spec,
    environment: str,
    to: str | None,
    reason: str,
    settings: GitHubSettings,
    env: Mapping[str, str],
) -> tuple[PromotionRecord, str, str]:
    """Open the rollback pull request; (promotion result, from version, to version)."""
    if not reason.strip():
        raise MlopsError('rollback needs --reason "...": it goes into the record and the PR')
    target = environment_named(spec, environment)
    with cloned(place_of(spec, settings)) as checkout:
        found = entries(checkout, target.release_record)
    current, chosen = choose(found, to, target.name)
    assert chosen.release is not None
    check_image(chosen.release.image, env)
    hold = Hold(f"rolled back from {current.version}: {reason}", current.version)
    ctx = PromoteContext(
        spec,
        _candidate(chosen, target.name),
        target.name,
        force=False,
        reason=reason,
        github=settings,
        kind="rollback",
        notes=RollbackNotes(current.version, reason, hold),
        env=env,  # the registry login: promotion.verify reads the image's attestations
    )
    return promote(ctx), current.version, chosen.release.version


def release_hold(
    spec: Spec, environment: str, settings: GitHubSettings, env: Mapping[str, str]
) -> tuple[PromotionRecord, str]:
    """Open the pull request that removes the hold; (promotion result, the hold's reason)."""
    target = environment_named(spec, environment)
    with cloned(place_of(spec, settings)) as checkout:
        text = checkout.show("HEAD", target.release_record)
        commit = checkout.git("rev-parse", "HEAD").strip()
    current = parse(text, target.release_record) if text is not None else None
    if current is None or current.hold is None:
        raise MlopsError(
            f"{spec.metadata.name} is not on hold in {target.name}: there is nothing to release"
        )
    entry = Entry(commit, "", "", current, None, None, text)
    ctx = PromoteContext(
        spec,
        _candidate(entry, target.name),
        target.name,
        force=False,
        reason=None,
        github=settings,
        kind="release-hold",
        # What runs stays a rollback; only the hold goes.
        notes=RollbackNotes(current.rollback_of, current.reason),
        env=env,
    )
    return promote(ctx), current.hold.reason

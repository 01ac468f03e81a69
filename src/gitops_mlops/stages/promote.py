"""Stage 6: open (or update) the pull request that releases a model to an environment.

One branch per environment and model (`mlops/promote/<environment>/<model>`), rebuilt from the
base branch each time, holding one commit that pins the image in every target and writes the
release record. Reruns with the same inputs push nothing and open nothing.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from gitops_mlops import gitops_repo, model_card
from gitops_mlops.attestations import chain, signing
from gitops_mlops.attestations.chain import Chain
from gitops_mlops.errors import MlopsError, PromotionConflict, VerificationFailed
from gitops_mlops.gitops_repo import GitHubSettings
from gitops_mlops.integrations.git import Checkout, GitError
from gitops_mlops.integrations.github import BODY_LIMIT, TITLE_LIMIT, GitHub, fit
from gitops_mlops.integrations.registry import Reference, Registry, RegistryError
from gitops_mlops.manifests import Image, check_repository, in_style_of, update
from gitops_mlops.records.build import BuildRecord
from gitops_mlops.records.metrics import Metrics, MetricTable
from gitops_mlops.records.promotion import PromotionRecord, PullRequestRef, WouldOpen
from gitops_mlops.records.release import GateSummary, Hold, ReleaseRecord, Source
from gitops_mlops.records.verdict import Verdict
from gitops_mlops.rundir import RunDir
from gitops_mlops.spec.model import Environment, Spec

MAX_ATTEMPTS = 3
_DIGEST = re.compile(r"^(?P<repository>[^@\s]+)@(?P<digest>sha256:[0-9a-f]{64})$")


class PromotionRefused(MlopsError):
    """Policy forbids this promotion (failed gate, `requires` not met)."""

    exit_code = PromotionConflict.exit_code


@dataclass(frozen=True)
class RollbackNotes:
    rollback_of: str | None = None  # the version a rollback replaced
    reason: str | None = None
    hold: Hold | None = None


@dataclass(frozen=True)
class PromoteContext:
    spec: Spec
    candidate: Candidate
    environment: str
    force: bool
    reason: str | None
    github: GitHubSettings
    # promote: a new release; rollback and release-hold (fleet/rollback.py) re-release a
    # record and skip the policy checks that would stop them (gate, requires, hold).
    kind: Literal["promote", "rollback", "release-hold"] = "promote"
    # What a rollback writes into the release record besides the release.
    notes: RollbackNotes = field(default_factory=lambda: RollbackNotes())
    env: Mapping[str, str] = field(default_factory=dict)  # registry credentials (verify)
    public_key: Path | None = None  # --public-key: verify with it, whatever the spec says
    verified: Chain | None = None  # set by promote() when the environment verifies


@dataclass(frozen=True)
class _Plan:
    """What the promotion commit holds, computed before anything is written."""

    files: dict[str, str]  # path in the GitOps repository -> new text
    message: str


def parse_image(reference: str) -> tuple[str, str]:
    match = _DIGEST.match(reference)
    if match is None:
        raise MlopsError(
            f"image {reference!r} is not pinned by digest; give REPOSITORY@sha256:<64 hex>"
        )
    return match["repository"], match["digest"]


@dataclass(frozen=True)
class Provenance:
    model_digest: str | None = None
    data_digest: str | None = None
    spec_digest: str | None = None
    git_commit: str | None = None  # of the repository the model was trained from


@dataclass(frozen=True)
class Candidate:
    """What is being released: from a run directory, or from another environment's record."""

    image: Image
    provenance: Provenance
    metrics: MetricTable
    slices: Mapping[str, MetricTable]
    passed: bool  # the gate's verdict
    checks: int
    failed: int
    report: str  # markdown for the pull request body
    model_card: str | None = None  # model-card.md of a run; None: found in the GitOps repo

    @classmethod
    def from_run(cls, run: RunDir, image: str | None) -> Candidate:
        """The run's candidate, read from its files (`mlops promote RUN_DIR`)."""
        return cls.from_records(
            run.manifest(),
            run.read_verdict(),
            run.read_metrics(),
            image or _pushed_image(run.find_build()),
            run.read_report(),
            run.find_model_card(),
        )

    @classmethod
    def from_records(
        cls,
        manifest: Mapping[str, Any],
        verdict: Verdict,
        measured: Metrics,
        image: str,
        report: str,
        model_card: str | None = None,
    ) -> Candidate:
        repository, digest = parse_image(image)
        return cls(
            image=Image(repository, digest, str(manifest["model_version"])),
            provenance=Provenance(*(_text(manifest.get(k)) for k in _PROVENANCE)),
            metrics=measured.metrics,
            slices=measured.slices,
            passed=verdict.passed,
            checks=len(verdict.rows),
            failed=len(verdict.failed),
            report=report,
            model_card=model_card,
        )

    @classmethod
    def from_record(cls, record: ReleaseRecord, source: str) -> Candidate:
        """Re-release what an environment runs (workflow_dispatch promotions)."""
        repository, digest = parse_image(record.image)
        table = "\n".join(f"| {name} | {entry.value} |" for name, entry in record.metrics.items())
        report = (
            f"Released as it runs in **{source}** (gate passed: {record.gate.passed}).\n\n"
            f"| metric | value |\n|---|---:|\n{table}\n"
        )
        return cls(
            image=Image(repository, digest, record.version),
            provenance=Provenance(
                record.model_digest, record.data_digest, record.spec_digest, record.source.commit
            ),
            metrics=record.metrics,
            slices=record.slices,
            passed=bool(record.gate.passed),
            checks=record.gate.checks,
            failed=record.gate.failed,
            report=report,
        )


_PROVENANCE = ("model_digest", "data_digest", "spec_digest", "git_commit")


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _pushed_image(build: BuildRecord | None) -> str:
    if build is None:
        raise MlopsError(
            "no image to pin: build and push it first (`mlops build --push`), or pass "
            "--image REPOSITORY@sha256:..."
        )
    if build.pinned is None:
        raise MlopsError(
            "the run's image was built but not pushed, so it has no "
            "digest to pin; run `mlops build --push`"
        )
    return build.pinned


def environment_named(spec: Spec, name: str) -> Environment:
    environments = spec.promotion.environments if spec.promotion else ()
    for environment in environments:
        if environment.name == name:
            return environment
    known = ", ".join(e.name for e in environments) or "none"
    raise MlopsError(f"no environment {name!r} in promotion.environments (environments: {known})")


def _check_policy(ctx: PromoteContext) -> None:
    if ctx.candidate.passed:
        return
    if not ctx.force:
        raise PromotionRefused(
            f"the gate failed for this model, so it is not promoted to {ctx.environment}; "
            'fix the model, or pass --force --reason "why" to override'
        )
    if not ctx.reason:
        raise MlopsError('--force needs --reason "...": the reason goes into the pull request')


def _check_requires(
    checkout: Checkout, ctx: PromoteContext, environment: Environment, base_ref: str, version: str
) -> None:
    if environment.requires is None:
        return
    required = environment_named(ctx.spec, environment.requires)
    text = checkout.show(base_ref, required.release_record)
    path = required.release_record
    current = ReleaseRecord.from_yaml(text, path).version if text else None
    if current != version:
        holds = f"runs {current}" if current else "has no release"
        raise PromotionRefused(
            f"{environment.name} requires {required.name} to run {version} first, but "
            f"{required.name} {holds}; promote it there and merge that pull request"
        )


def _check_hold(
    checkout: Checkout, ctx: PromoteContext, environment: Environment, base_ref: str
) -> None:
    """A held environment takes no automatic promotion: only `--force --reason` passes."""
    text = checkout.show(base_ref, environment.release_record)
    try:
        record = ReleaseRecord.from_yaml(text, environment.release_record) if text else None
    except MlopsError:
        return  # not a record this tool wrote: it holds nothing
    hold = record.hold if record is not None else None
    if hold is None:
        return
    name = ctx.spec.metadata.name
    if not ctx.force:
        raise PromotionRefused(
            f"{environment.name} is on hold for {name} ({hold.reason}), so nothing is "
            f"promoted there automatically; lift it with `mlops release-hold {name} "
            f"--environment {environment.name}` (and merge that pull request), or pass --force "
            '--reason "why"'
        )
    if not ctx.reason:
        raise MlopsError('--force needs --reason "...": the reason goes into the pull request')


def _forced(ctx: PromoteContext) -> bool:
    return ctx.force and not ctx.candidate.passed


def _record(ctx: PromoteContext, environment: Environment) -> ReleaseRecord:
    candidate = ctx.candidate
    return ReleaseRecord(
        model=ctx.spec.metadata.name,
        environment=environment.name,
        version=candidate.image.tag,
        image=candidate.image.reference,
        model_digest=candidate.provenance.model_digest,
        data_digest=candidate.provenance.data_digest,
        spec_digest=candidate.provenance.spec_digest,
        metrics=candidate.metrics,
        slices=candidate.slices,
        gate=GateSummary(
            passed=candidate.passed,
            checks=candidate.checks,
            failed=candidate.failed,
            forced=_forced(ctx),
            reason=ctx.reason if _forced(ctx) else None,
        ),
        source=Source(
            repository=ctx.github.current_repository,
            commit=candidate.provenance.git_commit,
            run_url=ctx.github.run_url,
        ),
        rollback_of=ctx.notes.rollback_of,
        reason=ctx.notes.reason,
        hold=ctx.notes.hold,
    )


def _plan(
    checkout: Checkout,
    ctx: PromoteContext,
    environment: Environment,
    record: ReleaseRecord,
    base_ref: str,
) -> _Plan:
    image = ctx.candidate.image
    files: dict[str, str] = {}
    for target in environment.targets:
        text = files.get(target.file) or checkout.show(base_ref, target.file)
        if text is None:
            raise MlopsError(f"target file {target.file} does not exist on the base branch")
        files[target.file] = update(text, target, image)
    for target in environment.targets:  # once every target of the file is applied
        check_repository(files[target.file], target, image)
    held = checkout.show(base_ref, environment.release_record)
    files[environment.release_record] = in_style_of(record.to_yaml(), held)
    card = _model_card(checkout, ctx, environment, base_ref)
    if card is not None:
        files[card_path(environment)] = card
    trailers = [f"Model-Version: {image.tag}", f"Image: {image.reference}"]
    if ctx.github.current_repository:
        trailers.append(f"Source-Repository: {ctx.github.current_repository}")
    commit = ctx.candidate.provenance.git_commit
    if commit:
        trailers.append(f"Source-Commit: {commit}")
    message = (
        f"{headline(ctx, environment)}\n\n"
        f"Pins {image.reference} in {len(environment.targets)} manifest(s) and records the "
        f"release in {environment.release_record}.\n\n" + "\n".join(trailers) + "\n"
    )
    return _Plan(files, message)


def card_path(environment: Environment) -> str:
    """The model card beside the environment's release record."""
    folder = PurePosixPath(environment.release_record).parent
    return str(folder / model_card.FILE)


def _model_card(
    checkout: Checkout, ctx: PromoteContext, environment: Environment, base_ref: str
) -> str | None:
    """The card of the model released: the run's; else (a re-release of a recorded version)
    the card kept beside the record it came from; else, when the environment holds the card
    of another version, a note saying where this version's card is, so that no card ever
    describes a model the environment does not run. None: no card to write."""
    if ctx.candidate.model_card is not None:
        return ctx.candidate.model_card
    wanted = (ctx.spec.metadata.name, ctx.candidate.image.tag)
    for path in _card_sources(ctx, environment):
        text = checkout.show(base_ref, path)
        if model_card.describes(text) == wanted:
            return text
    if checkout.show(base_ref, card_path(environment)) is None:
        return None
    name, version = wanted
    return (
        f"{model_card.marker(name, version)}\n# Model card: {name} `{version}`\n\n"
        f"This {ctx.kind} re-releases `{version}` without its model card. The card written "
        f"when `{version}` was first released is in this file's git history.\n"
    )


def _card_sources(ctx: PromoteContext, environment: Environment) -> list[str]:
    """Where a recorded version's card may be: beside the required environment's record
    (a workflow_dispatch promotion), then beside this environment's."""
    found = [card_path(environment)]
    if environment.requires is not None:
        found.insert(0, card_path(environment_named(ctx.spec, environment.requires)))
    return found


def _holds(checkout: Checkout, ref: str, plan: _Plan, record_path: str) -> bool:
    """Whether `ref` already pins this release: same manifests, same version and image.

    Release records also hold measured metrics (latency varies run to run), so records are
    compared by what they release, not byte for byte: a rerun changes nothing.
    """
    for path, text in plan.files.items():
        if path == record_path:
            continue
        held_text = checkout.show(ref, path)
        card = model_card.describes(text)
        if card is not None and model_card.describes(held_text) == card:
            continue  # the card of the same version (its commit line may differ)
        if held_text != text:
            return False
    held = checkout.show(ref, record_path)
    if held is None:
        return False
    try:
        current = ReleaseRecord.from_yaml(held, record_path)
    except MlopsError:
        return False  # a damaged record is replaced
    wanted = ReleaseRecord.from_yaml(plan.files[record_path], record_path)
    return _released(current) == _released(wanted)


def _released(record: ReleaseRecord) -> tuple[object, ...]:
    """What a record releases (measured metrics may differ run to run and do not count)."""
    return (
        record.version,
        record.image,
        record.environment,
        record.hold,
        record.rollback_of,
    )


def _commit(checkout: Checkout, plan: _Plan, base_sha: str, branch: str) -> list[str]:
    """Rebuild `branch` on `base_sha` with the plan; the files that differ from the base."""
    return checkout.commit_files(base_sha, branch, plan.files, plan.message)


def _paths(ctx: PromoteContext, environment: Environment) -> list[str]:
    """Every path promotion reads or writes in the GitOps repository for `environment`."""
    paths = [t.file for t in environment.targets] + [environment.release_record]
    paths += _card_sources(ctx, environment)
    if ctx.kind == "promote" and environment.requires is not None:
        paths.append(environment_named(ctx.spec, environment.requires).release_record)
    return list(dict.fromkeys(paths))


def _push(
    checkout: Checkout, branch: str, base_sha: str, plan: _Plan, record_path: str
) -> tuple[bool, str | None]:
    """Push HEAD to `branch` unless it already holds the same release. (pushed, previous)."""
    previous = checkout.remote_head(branch)
    if previous is not None:
        checkout.fetch(branch)
        on_base = checkout.parent(f"origin/{branch}") == base_sha
        if on_base and _holds(checkout, f"origin/{branch}", plan, record_path):
            checkout.git("reset", "--quiet", "--hard", f"origin/{branch}")
            return False, previous
    checkout.git(
        "push",
        "--quiet",
        f"--force-with-lease=refs/heads/{branch}:{previous or ''}",
        "origin",
        f"HEAD:refs/heads/{branch}",
    )
    return True, previous


@dataclass(frozen=True)
class _Published:
    changed: bool
    commit: str | None = None
    files_changed: tuple[str, ...] = ()
    pushed: bool = False
    previous: str | None = None  # the branch's head before the push


def promote(ctx: PromoteContext) -> PromotionRecord:
    """Publish the promotion; the result is what promotion.json records."""
    spec, image = ctx.spec, ctx.candidate.image
    environment = environment_named(spec, ctx.environment)
    if ctx.kind == "promote":
        _check_policy(ctx)
    ctx = replace(ctx, verified=verified(ctx, environment))
    url, repository, token = gitops_repo.remote(ctx.spec, ctx.github)
    base = spec.promotion.base if spec.promotion else "main"
    branch = f"mlops/{ctx.kind}/{environment.name}/{spec.metadata.name}"
    with tempfile.TemporaryDirectory(prefix="mlops-promote-") as tmp:
        checkout = Checkout.clone(url, Path(tmp) / "repo", base, token)
        published = _publish(ctx, checkout, environment, _record(ctx, environment), base, branch)
        result = PromotionRecord(
            environment=environment.name,
            branch=branch,
            changed=published.changed,
            commit=published.commit,
            files_changed=published.files_changed,
            pushed=published.pushed,
            repository=repository or url,
            image=image.reference,
            version=image.tag,
            forced=_forced(ctx),
            verified=ctx.verified.to_json() if ctx.verified else None,
        )
        if published.changed and repository is not None:
            new_branch = published.pushed and published.previous is None
            pull, superseded, calls = _pull_request(
                ctx, checkout, repository, environment, branch, base, new_branch
            )
            result = replace(result, pull_request=pull, superseded=superseded, api_calls=calls)
        elif published.changed:
            would = WouldOpen(_title(ctx, environment), _body(ctx, environment))
            diff = checkout.git("show", "--format=%B", "HEAD")
            result = replace(result, would_open=would, diff=diff)
    return result


def _publish(
    ctx: PromoteContext,
    checkout: Checkout,
    environment: Environment,
    record: ReleaseRecord,
    base: str,
    branch: str,
) -> _Published:
    for _ in range(MAX_ATTEMPTS):
        base_sha = checkout.fetch(base)
        gitops_repo.refuse_links(
            checkout, base_sha, _paths(ctx, environment), f"{checkout.url} ({base})"
        )
        if ctx.kind == "promote":
            _check_requires(checkout, ctx, environment, base_sha, ctx.candidate.image.tag)
            _check_hold(checkout, ctx, environment, base_sha)
        plan = _plan(checkout, ctx, environment, record, base_sha)
        held = _holds(checkout, base_sha, plan, environment.release_record)
        changed = [] if held else _commit(checkout, plan, base_sha, branch)
        if not changed:
            return _Published(changed=False)
        try:
            pushed, previous = _push(checkout, branch, base_sha, plan, environment.release_record)
        except GitError:
            continue  # someone else moved the branch: fetch and rebuild
        if checkout.remote_head(base) != base_sha:
            continue  # the base moved under us: rebuild on the new base so the PR is current
        return _Published(
            changed=True,
            commit=checkout.git("rev-parse", "HEAD").strip(),
            files_changed=tuple(changed),
            pushed=pushed,
            previous=previous,
        )
    raise PromotionConflict(
        f"could not publish {branch}: the repository kept changing for {MAX_ATTEMPTS} attempts; "
        "rerun the promotion"
    )


def verified(ctx: PromoteContext, environment: Environment) -> Chain | None:
    """The candidate's attestation chain, checked against the environment's public key
    before anything is written; None when the spec does not ask for it."""
    setting = ctx.spec.promotion.verify_for(environment) if ctx.spec.promotion else None
    path = ctx.public_key or (ctx.spec.root / setting.public_key if setting else None)
    if path is None:
        return None
    image = ctx.candidate.image.reference
    refusal = f"refusing to promote {image} to {environment.name}"
    try:
        key = signing.load_public(path)
        reference = Reference.parse(image)
    except MlopsError as err:
        raise VerificationFailed(f"{refusal}: {err}") from None
    try:
        return chain.verify(
            Registry(reference.registry, ctx.env), reference, key, ctx.candidate.image.tag
        )
    except (VerificationFailed, RegistryError) as err:
        raise VerificationFailed(f"{refusal}: {err}") from None


def push_environments(spec: Spec) -> list[str]:
    """The environments promoted on every push to the default branch."""
    environments = spec.promotion.environments if spec.promotion else ()
    return [e.name for e in environments if e.on == "push"]


def marker(spec: Spec, environment: Environment) -> str:
    return f"<!-- gitops-mlops:promotion model={spec.metadata.name} env={environment.name} -->"


def headline(ctx: PromoteContext, environment: Environment) -> str:
    name, version = ctx.spec.metadata.name, ctx.candidate.image.tag
    if ctx.kind == "rollback":
        return f"Roll back {name} in {environment.name} to {version}"
    if ctx.kind == "release-hold":
        return f"Release the hold on {name} in {environment.name}"
    return f"Promote {name} {version} to {environment.name}"


def _title(ctx: PromoteContext, environment: Environment) -> str:
    return fit(headline(ctx, environment), TITLE_LIMIT, "…")


def _kind_notes(ctx: PromoteContext, environment: Environment) -> list[str]:
    """What a rollback or hold changes, for reviewers."""
    name, hold = ctx.spec.metadata.name, ctx.notes.hold
    notes = []
    if ctx.kind == "rollback":
        notes.append(
            f"> **Rollback** from `{ctx.notes.rollback_of}`: {ctx.reason}. "
            "No retraining and no rebuild: this pins the image that ran before."
        )
    if hold is not None:
        notes.append(
            f"> **Hold**: once merged, automatic promotion into {environment.name} stops until "
            f"`mlops release-hold {name} --environment {environment.name}` is merged."
        )
    if ctx.kind == "release-hold":
        notes.append(f"> Lifts the hold: automatic promotion into {environment.name} resumes.")
    if ctx.kind == "promote" and ctx.force and ctx.reason and ctx.candidate.passed:
        notes.append(f"> Promoted with `--force` (past any hold). Reason: {ctx.reason}")
    return notes


def _body(ctx: PromoteContext, environment: Environment) -> str:
    candidate = ctx.candidate
    source = ctx.github.current_repository or "local"
    commit = candidate.provenance.git_commit or "(not a git checkout)"
    lines = [
        marker(ctx.spec, environment),
        f"{headline(ctx, environment)}.",
        *(["", *_kind_notes(ctx, environment)] if _kind_notes(ctx, environment) else []),
        "",
        "| | |",
        "|---|---|",
        f"| image | `{candidate.image.reference}` |",
        f"| model digest | `{candidate.provenance.model_digest}` |",
        f"| data digest | `{candidate.provenance.data_digest}` |",
        f"| source | {source} @ `{commit}` |",
    ]
    if ctx.github.run_url:
        lines.append(f"| run | {ctx.github.run_url} |")
    if ctx.verified is not None:
        lines += ["", *chain_lines(ctx.verified)]
    if _forced(ctx):
        lines += ["", f"> **Promoted past a failed gate** (`--force`). Reason: {ctx.reason}"]
    text = "\n".join(lines) + "\n\n" + candidate.report
    pointer = "\n*Truncated: the full report is in the workflow run's job summary.*"
    return fit(text, BODY_LIMIT, pointer)


def chain_lines(verified_chain: Chain) -> list[str]:
    """The verified chain, for the pull request body: key, source, model, SBOM, links."""
    facts = verified_chain.to_json()
    gate = facts.get("gate")
    spec = facts.get("spec") or {}
    lines = [
        "**Verified release chain** (signatures and subjects checked before this pull request):",
        "",
        "| | |",
        "|---|---|",
        f"| signed by | key `{facts['key']}` |",
        f"| source | {facts.get('source') or 'local'} @ `{facts.get('commit') or 'unknown'}` |",
        f"| spec | `{spec.get('path')}` |",
        f"| model version | `{facts.get('model_version')}` |",
        "| gate at build | "
        + (
            f"{'passed' if gate.get('passed') else 'failed'}, {gate.get('checks')} checks |"
            if isinstance(gate, dict)
            else "not run |"
        ),
        f"| SBOM | {facts.get('packages')} Python packages |",
        f"| builder | {facts.get('builder')} |",
    ]
    for name, reference in sorted(facts["attestations"].items()):
        lines.append(f"| {name} attestation | `{reference}` |")
    return lines


def _pull_request(
    ctx: PromoteContext,
    checkout: Checkout,
    repository: str,
    environment: Environment,
    branch: str,
    base: str,
    new_branch: bool,
) -> tuple[PullRequestRef, tuple[int, ...], int]:
    """The pull request opened or updated, those it superseded, and the API calls made."""
    assert ctx.github.token is not None and ctx.spec.promotion is not None
    github = GitHub(ctx.github.token, repository, ctx.github.api_url, ctx.github.throttle)
    try:
        pulls = github.open_pulls()
        pull = github.open_or_update(
            pulls,
            branch,
            base,
            _title(ctx, environment),
            _body(ctx, environment),
            ctx.spec.promotion.labels,
            environment.reviewers,
            ctx.spec.promotion.draft,
        )
        if pull.created and ctx.spec.promotion.auto_merge:
            github.enable_auto_merge(pull.number, str(ctx.spec.promotion.auto_merge))
        superseded = github.close_superseded(pulls, marker(ctx.spec, environment), pull.number)
    except MlopsError:
        if new_branch:  # leave no branch without its pull request behind
            checkout.git("push", "--quiet", "origin", "--delete", branch, check=False)
        raise
    ref = PullRequestRef(pull.number, pull.url, pull.created)
    return ref, tuple(superseded), github.calls

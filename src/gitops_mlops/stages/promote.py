"""Stage 6: open (or update) the pull request that releases a model to an environment.

One branch per environment and model (`mlops/promote/<environment>/<model>`), rebuilt from the
base branch each time, holding one commit that pins the image in every target and writes the
release record. Reruns with the same inputs push nothing and open nothing.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops_mlops import bundle, release
from gitops_mlops.errors import MlopsError, PromotionConflict
from gitops_mlops.integrations.git import Checkout, GitError
from gitops_mlops.integrations.github import BODY_LIMIT, TITLE_LIMIT, GitHub, fit
from gitops_mlops.manifests import Image, update
from gitops_mlops.rundir import RunDir, read_json, write_json
from gitops_mlops.spec.model import Environment, Spec

MAX_ATTEMPTS = 3
_DIGEST = re.compile(r"^(?P<repository>[^@\s]+)@(?P<digest>sha256:[0-9a-f]{64})$")
_OWNER_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


class PromotionRefused(MlopsError):
    """Policy forbids this promotion (failed gate, `requires` not met)."""

    exit_code = PromotionConflict.exit_code


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


@dataclass(frozen=True)
class PromoteContext:
    spec: Spec
    run: RunDir
    environment: str
    image: str | None  # REF@sha256:…; default: build.json of the run
    force: bool
    reason: str | None
    github: GitHubSettings


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


def _image(ctx: PromoteContext, version: str) -> Image:
    reference = ctx.image
    if reference is None:
        build = ctx.run.root / "build.json"
        if not build.is_file():
            raise MlopsError(
                "no image to pin: build and push it first (`mlops build --push`), or pass "
                "--image REPOSITORY@sha256:..."
            )
        data = read_json(build, "build.json")
        reference = f"{data['image']}@{data['digest']}"
    repository, digest = parse_image(reference)
    return Image(repository, digest, version)


def _environment(spec: Spec, name: str) -> Environment:
    environments = spec.promotion.environments if spec.promotion else ()
    for environment in environments:
        if environment.name == name:
            return environment
    known = ", ".join(e.name for e in environments) or "none"
    raise MlopsError(f"no environment {name!r} in promotion.environments (environments: {known})")


def _remote(ctx: PromoteContext) -> tuple[str, str | None, str | None]:
    """(git URL, GitHub owner/name or None for a local repository, token)."""
    configured = ctx.spec.promotion.repository if ctx.spec.promotion else None
    local = ctx.spec.root / configured if configured is not None else None
    if local is not None and local.is_dir():
        if not (local / ".git").exists() and not (local / "HEAD").is_file():
            raise MlopsError(
                f"promotion.repository {configured!r} is a folder but not a git "
                f"repository; run `git init` in {local}"
            )
        return str(local.resolve()), None, None
    repository = configured or ctx.github.current_repository
    if repository is None or not _OWNER_NAME.match(repository):
        raise MlopsError(
            f"promotion.repository {repository!r} is neither a local git repository nor "
            "owner/name; set it, or run where GITHUB_REPOSITORY is set"
        )
    if not ctx.github.token:
        raise MlopsError(
            f"promoting to {repository} needs a GitHub token: set MLOPS_GITHUB_TOKEN (or "
            "GITHUB_TOKEN) with contents and pull-requests write access"
        )
    return f"{ctx.github.server_url}/{repository}.git", repository, ctx.github.token


def _check_policy(ctx: PromoteContext, verdict: Mapping[str, Any]) -> None:
    if verdict.get("passed"):
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
    required = _environment(ctx.spec, environment.requires)
    text = checkout.show(base_ref, required.release_record)
    current = release.parse_record(_yaml(text), required.release_record).version if text else None
    if current != version:
        holds = f"runs {current}" if current else "has no release"
        raise PromotionRefused(
            f"{environment.name} requires {required.name} to run {version} first, but "
            f"{required.name} {holds}; promote it there and merge that pull request"
        )


def _yaml(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None


def _record(
    ctx: PromoteContext,
    environment: Environment,
    image: Image,
    manifest: Mapping[str, Any],
    measured: Mapping[str, Any],
    verdict: Mapping[str, Any],
) -> str:
    rows = verdict.get("rows", [])
    return release.render_record(
        {
            "model": ctx.spec.metadata.name,
            "environment": environment.name,
            "version": image.tag,
            "image": image.reference,
            "model_digest": manifest.get("model_digest"),
            "data_digest": manifest.get("data_digest"),
            "spec_digest": manifest.get("spec_digest"),
            "metrics": measured.get("metrics", {}),
            "slices": measured.get("slices", {}),
            "gate": {
                "passed": bool(verdict.get("passed")),
                "checks": len(rows),
                "failed": sum(1 for r in rows if not r.get("passed")),
                "forced": ctx.force and not verdict.get("passed"),
                "reason": ctx.reason if ctx.force and not verdict.get("passed") else None,
            },
            "source": {
                "repository": ctx.github.current_repository,
                "commit": manifest.get("git_commit"),
                "run_url": ctx.github.run_url,
            },
        }
    )


def _plan(
    checkout: Checkout,
    ctx: PromoteContext,
    environment: Environment,
    image: Image,
    record: str,
    base_ref: str,
) -> _Plan:
    files: dict[str, str] = {}
    for target in environment.targets:
        text = files.get(target.file) or checkout.show(base_ref, target.file)
        if text is None:
            raise MlopsError(f"target file {target.file} does not exist on the base branch")
        files[target.file] = update(text, target, image)
    files[environment.release_record] = record
    model = ctx.spec.metadata.name
    trailers = [f"Model-Version: {image.tag}", f"Image: {image.reference}"]
    if ctx.github.current_repository:
        trailers.append(f"Source-Repository: {ctx.github.current_repository}")
    commit = read_json(ctx.run.model_dir / bundle.MANIFEST_FILE, "manifest").get("git_commit")
    if commit:
        trailers.append(f"Source-Commit: {commit}")
    message = (
        f"Promote {model} {image.tag} to {environment.name}\n\n"
        f"Pins {image.reference} in {len(environment.targets)} manifest(s) and records the "
        f"release in {environment.release_record}.\n\n" + "\n".join(trailers) + "\n"
    )
    return _Plan(files, message)


def _holds(checkout: Checkout, ref: str, plan: _Plan, record_path: str) -> bool:
    """Whether `ref` already pins this release: same manifests, same version and image.

    Release records also hold measured metrics (latency varies run to run), so records are
    compared by what they release, not byte for byte: a rerun changes nothing.
    """
    for path, text in plan.files.items():
        if path != record_path and checkout.show(ref, path) != text:
            return False
    held, wanted = checkout.show(ref, record_path), _yaml(plan.files[record_path])
    current = _yaml(held) if held is not None else None
    return (
        isinstance(current, dict)
        and isinstance(wanted, dict)
        and all(current.get(k) == wanted.get(k) for k in ("version", "image", "environment"))
    )


def _commit(checkout: Checkout, plan: _Plan, base_sha: str, branch: str) -> list[str]:
    """Rebuild `branch` on `base_sha` with the plan; the files that differ from the base."""
    checkout.git("checkout", "--quiet", "-B", branch, base_sha)
    for path, text in plan.files.items():
        target = checkout.folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    checkout.git("add", "--", *plan.files)
    changed = checkout.git("diff", "--cached", "--name-only").split()
    if changed:
        checkout.git("commit", "--quiet", "-m", plan.message)
    return changed


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


def promote(ctx: PromoteContext) -> dict[str, Any]:
    spec, run = ctx.spec, ctx.run
    environment = _environment(spec, ctx.environment)
    manifest = bundle.read_manifest(run.model_dir)
    verdict = read_json(run.verdict, "verdict.json")
    measured = read_json(run.metrics, "metrics.json")
    _check_policy(ctx, verdict)
    image = _image(ctx, manifest["model_version"])
    url, repository, token = _remote(ctx)
    base = spec.promotion.base if spec.promotion else "main"
    branch = f"mlops/promote/{environment.name}/{spec.metadata.name}"
    record = _record(ctx, environment, image, manifest, measured, verdict)
    with tempfile.TemporaryDirectory(prefix="mlops-promote-") as tmp:
        checkout = Checkout.clone(url, Path(tmp) / "repo", base, token)
        result = _publish(ctx, checkout, environment, image, record, base, branch)
        result |= {
            "repository": repository or url,
            "image": image.reference,
            "version": image.tag,
            "forced": ctx.force and not verdict.get("passed"),
        }
        if result["changed"] and repository is not None:
            result |= _pull_request(
                ctx,
                checkout,
                repository,
                environment,
                image,
                branch,
                base,
                result["pushed"] and result["previous"] is None,
            )
        elif result["changed"]:
            result["would_open"] = {
                "title": _title(spec, image, environment),
                "body": _body(ctx, environment, image),
            }
            result["diff"] = checkout.git("show", "--format=%B", "HEAD")
    result.pop("previous", None)
    write_json(run.root / "promotion.json", result)
    return result


def _publish(
    ctx: PromoteContext,
    checkout: Checkout,
    environment: Environment,
    image: Image,
    record: str,
    base: str,
    branch: str,
) -> dict[str, Any]:
    for _ in range(MAX_ATTEMPTS):
        base_sha = checkout.fetch(base)
        _check_requires(checkout, ctx, environment, base_sha, image.tag)
        plan = _plan(checkout, ctx, environment, image, record, base_sha)
        held = _holds(checkout, base_sha, plan, environment.release_record)
        changed = [] if held else _commit(checkout, plan, base_sha, branch)
        if not changed:
            return {
                "environment": environment.name,
                "branch": branch,
                "changed": False,
                "commit": None,
                "files_changed": [],
                "pushed": False,
                "previous": None,
                "pull_request": None,
            }
        try:
            pushed, previous = _push(checkout, branch, base_sha, plan, environment.release_record)
        except GitError:
            continue  # someone else moved the branch: fetch and rebuild
        if checkout.remote_head(base) != base_sha:
            continue  # the base moved under us: rebuild on the new base so the PR is current
        return {
            "environment": environment.name,
            "branch": branch,
            "changed": True,
            "commit": checkout.git("rev-parse", "HEAD").strip(),
            "files_changed": changed,
            "pushed": pushed,
            "previous": previous,
            "pull_request": None,
        }
    raise PromotionConflict(
        f"could not publish {branch}: the repository kept changing for {MAX_ATTEMPTS} attempts; "
        "rerun the promotion"
    )


def marker(spec: Spec, environment: Environment) -> str:
    return f"<!-- gitops-mlops:promotion model={spec.metadata.name} env={environment.name} -->"


def _title(spec: Spec, image: Image, environment: Environment) -> str:
    return fit(f"Promote {spec.metadata.name} {image.tag} to {environment.name}", TITLE_LIMIT, "…")


def _body(ctx: PromoteContext, environment: Environment, image: Image) -> str:
    manifest = read_json(ctx.run.model_dir / bundle.MANIFEST_FILE, "manifest")
    source = ctx.github.current_repository or "local"
    commit = manifest.get("git_commit") or "(not a git checkout)"
    lines = [
        marker(ctx.spec, environment),
        f"Promotes **{ctx.spec.metadata.name}** `{image.tag}` to **{environment.name}**.",
        "",
        "| | |",
        "|---|---|",
        f"| image | `{image.reference}` |",
        f"| model digest | `{manifest.get('model_digest')}` |",
        f"| data digest | `{manifest.get('data_digest')}` |",
        f"| source | {source} @ `{commit}` |",
    ]
    if ctx.github.run_url:
        lines.append(f"| run | {ctx.github.run_url} |")
    if ctx.force:
        lines += ["", f"> **Promoted past a failed gate** (`--force`). Reason: {ctx.reason}"]
    report = ctx.run.report.read_text(encoding="utf-8") if ctx.run.report.is_file() else ""
    text = "\n".join(lines) + "\n\n" + report
    pointer = "\n*Truncated: the full report is in the workflow run's job summary.*"
    return fit(text, BODY_LIMIT, pointer)


def _pull_request(
    ctx: PromoteContext,
    checkout: Checkout,
    repository: str,
    environment: Environment,
    image: Image,
    branch: str,
    base: str,
    new_branch: bool,
) -> dict[str, Any]:
    assert ctx.github.token is not None and ctx.spec.promotion is not None
    github = GitHub(ctx.github.token, repository, ctx.github.api_url, ctx.github.throttle)
    try:
        pulls = github.open_pulls()
        pull = github.open_or_update(
            pulls,
            branch,
            base,
            _title(ctx.spec, image, environment),
            _body(ctx, environment, image),
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
    return {
        "pull_request": {"number": pull.number, "url": pull.url, "created": pull.created},
        "superseded": superseded,
        "api_calls": github.calls,
    }

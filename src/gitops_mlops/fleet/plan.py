"""`mlops plan`: which of a repository's models a change affects, and why.

`decide` is pure: the specs' facts and the changed paths in, the plan out. `gather` reads the
repository (git's list of tracked files, each spec, the files it depends on) to make the facts.
The JSON form is what `strategy.matrix` takes: `include` lists the models to run; the models
left out sit under `excluded`, and specs the change deleted (or moved) under `removed`; the
plan action passes only `include` to the matrix (any other key would be a matrix axis).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops_mlops import globs
from gitops_mlops.errors import Diagnostic, MlopsError, SpecError
from gitops_mlops.fleet import layout
from gitops_mlops.fleet.cache import cache_key, dependency_files
from gitops_mlops.integrations import git
from gitops_mlops.spec.model import Spec
from gitops_mlops.stages.promote import push_environments
from gitops_mlops.stages.validate import ValidateContext, validate

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MAX_MATRIX = 256  # jobs one GitHub Actions matrix may generate
GONE = (
    "deleted or moved by this change: nothing to run for it here; what it released stays "
    "in the GitOps repository until removed there"
)


@dataclass(frozen=True)
class Facts:
    """What planning needs to know of one spec (paths repository-relative, '/'-separated)."""

    spec: str
    name: str
    dependencies: tuple[str, ...]  # data files and the training command's files
    inputs: tuple[str, ...]  # `inputs:` globs
    cache_key: str
    promote_to: str = ""  # the `on: push` environments, comma-separated (promotion locks)
    nested: tuple[str, ...] = ()  # folders of other specs below this one's: not its files

    @property
    def folder(self) -> str:
        return layout.folder_of(self.spec)


@dataclass(frozen=True)
class Decision:
    facts: Facts
    run: bool
    reason: str


def reason_for(facts: Facts, changed: Sequence[str]) -> str | None:
    """Why the change set affects this spec (the first reason found), or None."""
    if facts.spec in changed:
        return "the spec changed"
    for path in changed:
        if path in facts.dependencies:
            return f"a file it trains from changed: {path}"
    for path in changed:
        if layout.owns(facts.folder, facts.nested, path):
            return f"a file in its folder changed: {path}"
    for pattern in facts.inputs:
        hit = globs.select([pattern], changed)
        if hit:
            more = f" (and {len(hit) - 1} more)" if len(hit) > 1 else ""
            return f"inputs {pattern} matched {hit[0]}{more}"
    return None


def decide(specs: Sequence[Facts], changed: Sequence[str] | None, why_all: str) -> list[Decision]:
    """One decision per spec; `changed` None runs every spec, for `why_all`."""
    if changed is None:
        return [Decision(f, True, why_all) for f in specs]
    decisions = []
    for facts in specs:
        reason = reason_for(facts, changed)
        decisions.append(Decision(facts, reason is not None, reason or "nothing it uses changed"))
    return decisions


@dataclass(frozen=True)
class Plan:
    decisions: tuple[Decision, ...]
    removed: tuple[str, ...] = ()  # spec paths the change deleted (a rename deletes one)


def as_matrix(decisions: Sequence[Decision]) -> dict[str, Any]:
    def row(d: Decision) -> dict[str, str]:
        f = d.facts
        return {
            "spec": f.spec,
            "name": f.name,
            "cache_key": f.cache_key,
            "reason": d.reason,
            "promote_to": f.promote_to,
        }

    return {
        "include": [row(d) for d in decisions if d.run],
        "excluded": [row(d) for d in decisions if not d.run],
    }


def visible(text: str) -> str:
    """`text` with control characters written as escapes (`\\n`, `\\x1b`): file names come
    from pull requests, and in a workflow's log a line that starts with `::` is a command
    to the runner."""
    return _CONTROL.sub(lambda m: repr(m[0])[1:-1], text)


def as_text(decisions: Sequence[Decision], removed: Sequence[str] = ()) -> str:
    gone = [visible(f"gone  {path}  ({GONE})") for path in removed]
    if not decisions:
        return "\n".join([*gone, "no mlops.yaml is tracked in this repository: nothing to plan"])
    width = max(len(d.facts.name) for d in decisions)
    lines = [
        visible(
            f"{'run' if d.run else 'skip':<5} {d.facts.name:<{width}}  {d.facts.spec}  ({d.reason})"
        )
        for d in decisions
    ]
    chosen = sum(d.run for d in decisions)
    lines += gone
    lines.append(f"{chosen} of {len(decisions)} model{'s' if len(decisions) != 1 else ''} to run")
    return "\n".join(lines)


def facts_of(
    spec: Spec,
    path: str,
    root: Path,
    tracked: Sequence[str],
    memo: dict[str, str] | None = None,
    specs: Sequence[str] = (),
) -> Facts:
    """`specs`: every tracked spec's path (the nested ones are not this spec's files)."""
    return Facts(
        spec=path,
        name=spec.metadata.name,
        dependencies=tuple(dependency_files(spec, root, [])),
        inputs=spec.inputs,
        cache_key=cache_key(spec, root, tracked, memo),
        promote_to=",".join(push_environments(spec)),
        nested=layout.nested(path, specs),
    )


def load_all(
    root: Path, tracked: Sequence[str], within: Sequence[Path] = ()
) -> list[tuple[str, Spec]]:
    """The tracked specs (those under `within` when given), validated; SpecError listing
    every problem and duplicate name."""
    problems: list[Diagnostic] = []
    found: list[tuple[Spec, Facts]] = []
    for path in layout.discover(tracked):
        if within and not any(_inside(root / path, place) for place in within):
            continue
        link = _link_on_the_way(root, path)
        if link is not None:
            problems.append(Diagnostic(path, 1, 1, "", link))
            continue
        try:
            spec = validate(ValidateContext(root / path, path))
        except SpecError as err:
            problems += err.diagnostics
            continue
        found.append((spec, Facts(path, spec.metadata.name, (), (), "")))
    problems += _duplicates(found)
    if problems:
        raise SpecError(problems)
    return [(facts.spec, spec) for spec, facts in found]


def _link_on_the_way(root: Path, path: str) -> str | None:
    """Why the spec cannot be read: it, or a folder above it, is a symbolic link."""
    current = root
    for part in Path(path).parts:
        current = current / part
        if current.is_symlink():
            what = "" if current == root / path else f" ({current.relative_to(root)})"
            return (
                f"a symbolic link{what}: plan reads no spec through a link, which can lead "
                "out of the repository; commit the real file in its place"
            )
    return None


def _inside(spec: Path, place: Path) -> bool:
    """Whether the spec is `place` or under it. The spec's own path is not resolved: a
    spec that is a link is still where git has it (and refused there)."""
    place = place.resolve()
    spec = spec.parent.resolve() / spec.name
    return spec == place or spec.is_relative_to(place)


def repository(folder: Path) -> tuple[Path, list[str]]:
    """The git work tree holding `folder`, and its tracked files."""
    root = git.work_tree_root(folder if folder.is_dir() else folder.parent)
    if root is None:
        raise MlopsError(f"{folder} is not inside a git repository; plan reads git's file list")
    return root, git.tracked_files(root)


def find(folder: Path, name: str) -> Spec:
    """The tracked spec whose metadata.name is `name`."""
    root, tracked = repository(folder)
    specs = load_all(root, tracked)
    for _, spec in specs:
        if spec.metadata.name == name:
            return spec
    known = ", ".join(sorted(s.metadata.name for _, s in specs)) or "none"
    raise MlopsError(f"no tracked mlops.yaml names a model {name!r} (models: {known})")


def gather(paths: Sequence[Path], model: str | None = None) -> list[Facts]:
    """The facts of every tracked spec under `paths` (a folder, or spec files)."""
    root, listed = repository(paths[0] if paths else Path.cwd())
    tracked = tuple(listed)
    within = [p.absolute() for p in paths]
    specs = load_all(root, tracked, within)
    if model is not None:
        chosen = [(path, spec) for path, spec in specs if spec.metadata.name == model]
        if not chosen:
            known = ", ".join(sorted(s.metadata.name for _, s in specs)) or "none"
            raise MlopsError(f"no tracked mlops.yaml names a model {model!r} (models: {known})")
        specs = chosen
    memo: dict[str, str] = {}  # file digests, shared by the specs
    every = layout.discover(tracked)
    return [facts_of(spec, path, root, tracked, memo, every) for path, spec in specs]


def _duplicates(found: Sequence[tuple[Spec, Facts]]) -> list[Diagnostic]:
    """Names key images, branches and release records: two specs may not share one."""
    first: dict[str, tuple[Spec, Facts]] = {}
    problems = []
    for spec, facts in found:
        if facts.name not in first:
            first[facts.name] = (spec, facts)
            continue
        other_spec, other = first[facts.name]
        for (mine, where), theirs in (((other_spec, other), facts), ((spec, facts), other)):
            line, column = mine.locations.get("metadata.name", (1, 1))
            message = (
                f"metadata.name {facts.name!r} is also used by {theirs.spec}; names key "
                "images, branches and release records, so give each model its own"
            )
            problems.append(Diagnostic(where.spec, line, column, "metadata.name", message))
    return problems


def default_base(env: Mapping[str, str]) -> str | None:
    """In a pull request, its base branch as fetched (`origin/<base>`); elsewhere none."""
    base_ref = env.get("GITHUB_BASE_REF")
    return f"origin/{base_ref}" if base_ref else None


def plan(
    paths: Sequence[Path], base: str | None, everything: bool, model: str | None = None
) -> Plan:
    specs = gather(paths, model)
    if everything:
        return Plan(tuple(decide(specs, None, "--all")))
    if base is None:
        return Plan(tuple(decide(specs, None, "no base to compare with (give --base REF)")))
    if set(base) == {"0"}:  # a push that created the branch: GitHub's `before` is all zeros
        why = "a new branch: no earlier commit to compare with"
        return Plan(tuple(decide(specs, None, why)))
    root, tracked = repository(paths[0] if paths else Path.cwd())
    changed = git.changed_files(root, base)
    return Plan(tuple(decide(specs, changed, "")), removed(root, tracked, changed, paths, model))


def removed(
    root: Path,
    tracked: Sequence[str],
    changed: Sequence[str],
    within: Sequence[Path],
    model: str | None,
) -> tuple[str, ...]:
    """Spec files in the change that are no longer tracked, inside the folders planned (a
    deleted spec's name is unknown here: with --model, none)."""
    if model is not None:
        return ()
    here = set(tracked)
    places = [p if p.is_dir() else p.parent for p in within]
    return tuple(
        path
        for path in layout.discover(changed)
        if path not in here and (not places or any(_inside(root / path, p) for p in places))
    )


def render(result: Plan, form: str) -> str:
    if form == "json":
        planned = as_matrix(result.decisions)
        if len(planned["include"]) > MAX_MATRIX:
            raise MlopsError(
                f"{len(planned['include'])} models are planned and a GitHub Actions matrix runs "
                f"at most {MAX_MATRIX} jobs: plan the repository in parts (mlops plan FOLDER…, "
                "one workflow call each) or run some models in another workflow"
            )
        planned["removed"] = [{"spec": path, "reason": GONE} for path in result.removed]
        return json.dumps(planned, separators=(",", ":"))
    return as_text(result.decisions, result.removed)

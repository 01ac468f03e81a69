"""Which stages run, in which order, for which trigger: the table is `triggers.TRIGGERS`.

Each stage is a module in `stages/` with one entry point; this module only wires them,
passing each stage's record to the next in memory. See docs/architecture.md.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gitops_mlops import bundle, data_url, release
from gitops_mlops.attestations.signing import SigningKey
from gitops_mlops.datasets import Data
from gitops_mlops.errors import BuildError, MlopsError
from gitops_mlops.fleet import cache as run_cache
from gitops_mlops.gitops_repo import (
    GitHubSettings,
    pending_promotion,
    plain_folder,
    read_base_file,
)
from gitops_mlops.integrations.registry import Registry
from gitops_mlops.records.metrics import Metrics
from gitops_mlops.records.promotion import PromotionRecord
from gitops_mlops.records.release import ReleaseRecord
from gitops_mlops.records.verdict import Verdict
from gitops_mlops.reporting.github import running_in_actions
from gitops_mlops.reporting.progress import Progress
from gitops_mlops.rundir import DISPATCH_DIR, MLOPS_DIR, RunDir, ignored_by_git, new_run_dir
from gitops_mlops.spec.model import Spec
from gitops_mlops.stages import validate
from gitops_mlops.stages.gate import GateContext, gate
from gitops_mlops.stages.promote import (
    Candidate,
    PromoteContext,
    PromotionRefused,
    environment_named,
    promote,
    push_environments,
)
from gitops_mlops.stages.report import ReportContext, ReportResult, report, write_model_card
from gitops_mlops.triggers import TRIGGERS, UNTIL, Trigger

# Training, evaluation, the champion comparison, tracking and the image build are imported
# where they run: they pull in numpy, scikit-learn, MLflow and the serving runtimes, which a
# run-cache hit with no champion (validate, restore, gate) never uses (benchmarks/fleet.py).


@dataclass(frozen=True)
class RunOptions:
    spec_path: Path
    until: str | None  # None: every stage the event calls for
    out: Path | None
    champion_file: Path | None
    env: Mapping[str, str]
    event: str = "push"  # a key of triggers.TRIGGERS
    environment: str | None = None  # workflow_dispatch: where to promote
    version: str | None = None  # workflow_dispatch: the version expected to be promoted
    image: str | None = None  # an image built elsewhere, REPOSITORY@sha256:…
    base_image: str | None = None  # default: MLOPS_BASE_IMAGE, else container.base_image
    force: bool = False
    reason: str | None = None
    cache: Path | None = None  # the run cache folder (--cache, MLOPS_CACHE_DIR); None: no cache
    signing_key: SigningKey | None = None  # signs the image's attestations; None: unsigned
    public_key: Path | None = None  # promotions verify with it (else promotion.verify)
    strict: bool = False  # what the image needs and cannot get is an error, not a skip


@dataclass(frozen=True)
class RunOutcome:
    spec: Spec
    run: RunDir | None
    version: str | None
    verdict: Verdict | None
    promotions: list[PromotionRecord] = field(default_factory=list)
    report: ReportResult | None = None


def champion_for(
    spec: Spec, champion_file: Path | None, env: Mapping[str, str]
) -> release.Champion | None:
    """`--champion PATH` when given (a release record, a run directory or a model bundle),
    else the release record in the GitOps repository."""
    if champion_file is not None:
        return release.read_champion(champion_file)
    return release.champion(spec, GitHubSettings.from_env(env))


def run(options: RunOptions, progress: Progress) -> RunOutcome:
    # Started first, so that its helper imports skops while we validate, load data and fit.
    # With a run cache, a hit needs no writer: on a miss, train starts its own.
    writer = bundle.ModelWriter() if _trains(options) and options.cache is None else None
    try:
        return _run(options, progress, writer)
    finally:
        if writer is not None:
            writer.close()


def _trigger(options: RunOptions) -> Trigger:
    return TRIGGERS[options.event]


def _dispatches(options: RunOptions) -> bool:
    """A run whose trigger trains nothing promotes a version built earlier."""
    return not _trigger(options).trains and options.until is None


def _trains(options: RunOptions) -> bool:
    return options.until != "validate" and not _dispatches(options)


def _run(options: RunOptions, progress: Progress, writer: bundle.ModelWriter | None) -> RunOutcome:
    with progress.stage("validate"):
        spec = validate.load(options.spec_path)
    if _dispatches(options):
        return _dispatch(spec, options, progress)
    stop = UNTIL.index(options.until or "gate")
    if stop == 0:
        return RunOutcome(spec, None, None, None)
    run_dir = new_run_dir(options.out)
    restored = _from_cache(spec, run_dir, options, progress) if stop >= 2 else None
    data = None
    if restored is not None:
        version, measured = restored
        manifest = run_dir.manifest()
    else:
        from gitops_mlops.stages.evaluate import EvaluateContext, evaluate
        from gitops_mlops.stages.train import TrainContext, train

        with progress.stage("train"):
            trained = train(TrainContext(spec, run_dir, options.env, writer=writer))
        version, manifest = trained.version, trained.manifest
        progress.note(f"model {spec.metadata.name} version {version} in {run_dir.model_dir}")
        if stop == 1:
            return RunOutcome(spec, run_dir, version, None)
        data = trained.data
        with progress.stage("evaluate"):
            measured = evaluate(EvaluateContext(spec, run_dir, trained.model, trained.data))
        _to_cache(spec, run_dir, options, progress)
    if stop == 2:
        return RunOutcome(spec, run_dir, version, None)
    with progress.stage("gate") as line:
        champion = champion_for(spec, options.champion_file, options.env)
        verdict = gate_run(spec, run_dir, champion, options.env, measured, version, data, progress)
        if not verdict.passed:
            line.fail()
    track_run(spec, run_dir, options.env, options.event, measured, verdict, progress)
    if options.until is not None:
        return RunOutcome(spec, run_dir, version, verdict)
    promotions = []
    if _trigger(options).runs("build") and verdict.passed:
        candidate = _Measured(manifest, verdict, measured)
        promotions = _release(spec, run_dir, candidate, options, progress)
    elif _trigger(options).runs("build"):
        progress.skipped("build", "the gate failed")
        progress.skipped("promote", "the gate failed")
    with progress.stage("report"):
        result = report(_report_context(spec, run_dir, options))
    return RunOutcome(spec, run_dir, version, verdict, promotions, result)


def gate_run(
    spec: Spec,
    run_dir: RunDir,
    champion: release.Champion | None,
    env: Mapping[str, str],
    measured: Metrics,
    version: str,
    data: Data | None,
    progress: Progress,
) -> Verdict:
    """Compare with the champion on the same rows (or its recorded metrics), then gate."""
    from gitops_mlops.stages.compare import CompareContext, compare

    comparison = compare(CompareContext(spec, run_dir, champion, env, measured, data=data))
    if comparison.mode == "paired":
        took = sum(comparison.timings.values())
        cached = ", its model cached" if comparison.cached else ""
        progress.note(
            f"champion {comparison.champion} re-evaluated on the same {comparison.n_rows} "
            f"rows in {took:.2f} s{cached}"
        )
    elif comparison.mode == "recorded":
        progress.warn(f"champion {comparison.champion}: {comparison.note}")
    return gate(GateContext(spec, run_dir, champion, measured, version, comparison))


def track_run(
    spec: Spec,
    run_dir: RunDir,
    env: Mapping[str, str],
    event: str,
    measured: Metrics,
    verdict: Verdict,
    progress: Progress,
) -> None:
    """Log the run to MLflow when the spec asks; a server that is down only warns.

    The model card is written first, so it is among the artifacts tracking uploads (the
    report stage, which also writes it, runs after tracking)."""
    if spec.tracking is None:
        return
    from gitops_mlops.stages.track import TrackContext, track

    try:
        write_model_card(spec, run_dir)
    except MlopsError as err:  # a damaged record: tracked without the card, as the report says
        progress.warn(f"model-card.md not written: {err}")
    context = TrackContext(spec, run_dir, env, event, measured, verdict)
    with progress.stage("track") as line:
        tracked = track(context)
        if tracked.warning is not None:
            line.warn()
    if tracked.url is not None:
        progress.note(f"MLflow run: {tracked.url}")
    if tracked.warning is not None:
        progress.warn(tracked.warning)


def _from_cache(
    spec: Spec, run_dir: RunDir, options: RunOptions, progress: Progress
) -> tuple[str, Metrics] | None:
    """(version, metrics) restored from the run cache, or None on a miss (or no cache)."""
    if options.cache is None:
        return None
    if _remote_data(spec):
        progress.note("run cache: not used, the data is in object storage (it may change)")
        return None
    key = run_cache.key_for(spec)
    found = run_cache.restore(options.cache, key, spec, run_dir)
    if isinstance(found, run_cache.Lookup):
        progress.note(f"run cache: miss for {key[:12]} ({found.why})")
        return None
    progress.cached("train", key)
    progress.cached("evaluate", "")
    return found.version, found.metrics


def _remote_data(spec: Spec) -> bool:
    """Data at a URL: the cache key covers the URL, not what the object holds now."""
    datasets = (spec.data.train, spec.data.test)
    return any(d is not None and d.path and data_url.is_url(d.path) for d in datasets)


def _to_cache(spec: Spec, run_dir: RunDir, options: RunOptions, progress: Progress) -> None:
    if options.cache is None or _remote_data(spec):
        return
    why = run_cache.store(options.cache, run_cache.key_for(spec), run_dir)
    if why is not None:
        progress.note(f"run cache: not stored ({why}); the run goes on without it")


@dataclass(frozen=True)
class _Measured:
    """This run's records, passed on in memory to build the release candidate."""

    manifest: Mapping[str, object]
    verdict: Verdict
    metrics: Metrics


def _report_context(spec: Spec, run_dir: RunDir, options: RunOptions) -> ReportContext:
    return ReportContext(
        spec, run_dir, options.event, options.env, GitHubSettings.from_env(options.env)
    )


def _image(
    spec: Spec, run_dir: RunDir, options: RunOptions, progress: Progress
) -> tuple[str | None, str]:
    """The image to promote: `--image`, else the one built and pushed now; else (None, why).

    On a laptop, what the build needs and cannot get (an engine, the base image, a registry)
    is a `skip` line that says how to get it; with --strict, and under GitHub Actions for the
    base image and the registry, it is an error (exit 5). With an engine and a base image
    but no registry, the image is still built and smoke-tested, and not pushed.
    """
    if options.image is not None:
        progress.skipped("build", f"using the image given with --image: {options.image}")
        return options.image, ""
    if spec.container is None:
        progress.skipped("build", "the spec has no `container:` section")
        return None, "the spec has no `container:` section"
    from gitops_mlops import image_runtime
    from gitops_mlops.integrations import docker
    from gitops_mlops.stages.build import BuildContext, build

    base = options.base_image or options.env.get("MLOPS_BASE_IMAGE") or spec.container.base_image
    strict = options.strict or running_in_actions(options.env)
    client, no_engine = docker.connect(options.env)
    if client is None:
        _cannot(progress, "build", no_engine, "start one, or pass --image", options.strict)
        return None, "no image was built, so there is no digest to pin"
    missing = docker.obtain(client, base)
    if missing:
        why = f"the base image {base} is not available: {missing}"
        fix = "build or pull it, or name another with --base-image or MLOPS_BASE_IMAGE"
        _cannot(progress, "build", why, fix, strict)
        return None, "no image was built, so there is no digest to pin"
    registry = Registry.for_image(spec.container.image, options.env).unreachable()
    if registry is not None:
        fix = "start a registry there, or set container.image to one you can push to"
        if strict:
            raise BuildError(f"{registry}; {fix}")
    with progress.stage("build"):
        built = build(
            BuildContext(
                spec,
                run_dir,
                base,
                push=registry is None,
                env=options.env,
                context_without_engine=False,
                signing_key=options.signing_key,
            )
        )
    if built.record is None:  # pragma: no cover - the engine answered a moment ago
        progress.note(f"build skipped: {built.reason}")
        return None, "no image was built, so there is no digest to pin"
    progress.note(image_runtime.summary(built.record.runtime or {}))
    if registry is not None:
        _cannot(progress, "push", registry, f"{fix}; {built.record.reference} is built", strict)
        return None, "the image was not pushed, so there is no digest to pin"
    if built.record.reused:
        progress.note(f"reused {built.record.pinned}: same model and packages")
    else:
        progress.note(f"pushed {built.record.pinned}")
    return built.record.pinned, ""


def _cannot(progress: Progress, stage: str, why: str, fix: str, strict: bool) -> None:
    """What the image needs and cannot get: an error when strict, else a `skip` line."""
    if strict:
        raise BuildError(f"{why}; {fix}")
    progress.skipped(stage, f"{why}; {fix}")


def _release(
    spec: Spec, run_dir: RunDir, measured: _Measured, options: RunOptions, progress: Progress
) -> list[PromotionRecord]:
    """Build, smoke-test and push the image, then promote to every `on: push` environment."""
    image, no_image = _image(spec, run_dir, options, progress)
    folder = plain_folder(spec)
    if folder is not None:
        progress.skipped(
            "promote",
            f"{folder} is not a git repository; `git init` it (and commit) to promote there",
        )
        return []
    if image is None:
        progress.skipped("promote", no_image)
        return []
    targets = push_environments(spec)
    if not targets:
        progress.skipped("promote", "no environment has `on: push`")
        return []
    candidate = Candidate.from_records(
        measured.manifest,
        measured.verdict,
        measured.metrics,
        image,
        run_dir.read_report(),
        write_model_card(spec, run_dir),
    )
    settings = GitHubSettings.from_env(options.env)
    return list(
        promote_each(
            spec,
            run_dir,
            candidate,
            targets,
            options.force,
            options.reason,
            settings,
            progress,
            options.env,
            options.public_key,
        )
    )


def promote_each(
    spec: Spec,
    run_dir: RunDir,
    candidate: Candidate,
    environments: list[str],
    force: bool,
    reason: str | None,
    settings: GitHubSettings,
    progress: Progress,
    env: Mapping[str, str] | None = None,
    public_key: Path | None = None,
) -> Iterator[PromotionRecord]:
    """Promote the candidate to each environment, yielding each result as it is done;
    promotion.json records the latest."""
    for name in environments:
        with progress.stage(f"promote {name}"):
            result = promote(
                PromoteContext(
                    spec,
                    candidate,
                    name,
                    force,
                    reason,
                    settings,
                    env=env or {},
                    public_key=public_key,
                )
            )
        run_dir.write_promotion(result)
        yield result


def _nothing_released(
    spec: Spec, settings: GitHubSettings, source: str, record: str
) -> PromotionRefused:
    """The refusal of a dispatch whose `requires` environment has no release yet, naming what
    would give it one."""
    branch = f"mlops/promote/{source}/{spec.metadata.name}"
    pending = pending_promotion(spec, settings, branch)
    fix = (
        f"merge {pending} first: it gives {source} its release"
        if pending
        else f"promote to {source} first (a push to the default branch, or "
        f"`mlops promote RUN_DIR --environment {source}`), then merge that pull request"
    )
    return PromotionRefused(
        f"{source} has no release yet ({record} is not on the base branch), so there is "
        f"nothing to promote from it; {fix}"
    )


def _dispatch(spec: Spec, options: RunOptions, progress: Progress) -> RunOutcome:
    """workflow_dispatch: promote what the required environment runs; nothing is trained."""
    if options.environment is None:
        raise MlopsError("workflow_dispatch needs --environment: where to promote")
    target = environment_named(spec, options.environment)
    if target.requires is None:
        raise MlopsError(
            f"{target.name} has no `requires`: there is no environment to promote a version "
            "from; promote a run with `mlops promote RUN_DIR --environment ...`"
        )
    settings = GitHubSettings.from_env(options.env)
    with progress.stage(f"promote {target.name}"):
        source = environment_named(spec, target.requires)
        text = read_base_file(spec, settings, source.release_record)
        if text is None:
            raise _nothing_released(spec, settings, source.name, source.release_record)
        record = ReleaseRecord.from_yaml(text, source.release_record)
        candidate = Candidate.from_record(record, source.name)
        if options.version is not None and options.version != candidate.image.tag:
            raise MlopsError(
                f"{source.name} runs {candidate.image.tag}, not {options.version}; "
                f"{target.name} can only receive what {source.name} runs"
            )
        result = promote(
            PromoteContext(
                spec,
                candidate,
                target.name,
                options.force,
                options.reason,
                settings,
                env=options.env,
                public_key=options.public_key,
            )
        )
    if options.out is None:
        ignored_by_git(MLOPS_DIR)
    RunDir(options.out or DISPATCH_DIR).write_promotion(result)
    return RunOutcome(spec, None, candidate.image.tag, None, [result])


def version_of(run_dir: RunDir) -> str:
    return str(run_dir.manifest()["model_version"])

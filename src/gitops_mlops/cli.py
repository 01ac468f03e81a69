"""The `mlops` command line. The only place where errors become exit codes.

Exit codes: 0 success, 1 other error, 2 invalid spec, 4 gate failed, 5 build failed,
6 promotion conflict, 7 verification failed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TextIO

from gitops_mlops import __version__, arguments
from gitops_mlops.builtin_datasets import BUILTINS
from gitops_mlops.errors import Diagnostic, MlopsError, SpecError, UsageError
from gitops_mlops.triggers import EVENTS, UNTIL

if TYPE_CHECKING:
    from gitops_mlops.attestations.signing import SigningKey
    from gitops_mlops.records.promotion import PromotionRecord
    from gitops_mlops.records.verdict import Verdict
    from gitops_mlops.reporting.progress import Progress
    from gitops_mlops.spec.model import Spec
    from gitops_mlops.stages.report import ReportResult


@dataclass(frozen=True)
class Console:
    """Where a command writes, and the environment it runs in (passed in, never read deep)."""

    out: TextIO
    err: TextIO
    env: Mapping[str, str]

    def print(self, text: str = "") -> None:
        print(text, file=self.out)

    def say(self, text: str) -> None:
        print(text, file=self.err)


Handler = Callable[[argparse.Namespace, Console], int]


def _cmd_validate(args: argparse.Namespace, console: Console) -> int:
    from gitops_mlops.reporting import diagnostics, github
    from gitops_mlops.stages.validate import ValidateContext, validate

    paths: list[str] = args.paths or ["mlops.yaml"]
    found: list[Diagnostic] = []
    for name in paths:
        try:
            spec = validate(ValidateContext(Path(name), name))
        except SpecError as err:
            found += err.diagnostics
            continue
        if args.format == "text":
            console.print(f"{name}: valid ({spec.metadata.name}, {spec.task})")
    if args.format == "json":
        console.print(diagnostics.as_json(found))
    elif found:
        console.print(diagnostics.as_text(found))
    if found and github.running_in_actions(console.env):
        # stderr keeps stdout parseable (JSON); the runner reads commands from both.
        console.say(diagnostics.as_annotations(found))
    if found:
        files = len({d.file for d in found})
        console.say(
            f"{len(found)} problem{'s' if len(found) != 1 else ''} in {files} file"
            f"{'s' if files != 1 else ''}"
        )
        return SpecError.exit_code
    return 0


def _cmd_schema(args: argparse.Namespace, console: Console) -> int:
    from gitops_mlops.spec.schema import schema_text

    console.out.write(schema_text())
    return 0


def _cmd_columns(args: argparse.Namespace, console: Console) -> int:
    import json

    from gitops_mlops.integrations.storage import StorageSettings
    from gitops_mlops.stages.columns import columns

    found = columns(Path(args.spec), args.spec, StorageSettings.from_env(console.env))
    if args.format == "json":
        console.print(json.dumps([d.to_json() for d in found], indent=2))
        return 0
    for dataset in found:
        read = dataset.columns
        console.print(
            f"{dataset.key}: {read.source} ({read.format}; dtypes from {read.dtypes_from})"
        )
        width = max(len(c.name) for c in read.columns)
        for column in read.columns:
            console.print(
                f"  {column.name:<{width}}  {column.dtype or '?':<14} {dataset.roles[column.name]}"
            )
    return 0


def _cmd_metrics(args: argparse.Namespace, console: Console) -> int:
    from gitops_mlops.metrics import METRICS

    for metric in METRICS.values():
        tasks = "/".join(sorted(metric.tasks))
        console.print(f"{metric.name:<20} {metric.direction:<7} {tasks:<26} {metric.description}")
    return 0


def _cmd_init(args: argparse.Namespace, console: Console) -> int:
    from gitops_mlops import starter_spec

    output: Path = args.output
    if args.builtin is not None and args.target is not None:
        raise starter_spec.InitRefused("--target goes with --data (a built-in's is `target`)")
    if args.data is not None and args.target is None:
        raise starter_spec.InitRefused("--data needs --target COLUMN: the column to predict")
    if args.builtin is not None:
        starter = starter_spec.plan_builtin(args.builtin)
        command = f"mlops init --builtin {args.builtin}"
    else:
        starter = starter_spec.plan_file(args.data, args.target, output)
        command = f"mlops init --data {starter.path} --target {args.target}"
    console.print(f"task: {starter.guess.task}, because {starter.guess.reason}")
    starter_spec.write(output, starter_spec.render(starter, command))
    features = len(starter.columns.columns) - 1
    console.print(
        f"wrote {output}: {starter.name}, {features} feature columns; check it with "
        f"`mlops validate {output}`, then `mlops run {output}`"
    )
    return 0


def _cmd_runs(args: argparse.Namespace, console: Console) -> int:
    import json

    from gitops_mlops.run_listing import list_runs, render_text
    from gitops_mlops.rundir import DEFAULT_PARENT

    listing = list_runs(DEFAULT_PARENT, args.limit)
    if args.format == "json":
        console.print(json.dumps(listing.to_json(), indent=2))
    else:
        console.print(render_text(listing))
    return 0


def _cmd_diff(args: argparse.Namespace, console: Console) -> int:
    import json

    from gitops_mlops.run_diff import diff, render_text
    from gitops_mlops.rundir import RunDir

    found = diff(RunDir(args.run_a), RunDir(args.run_b))
    if args.format == "json":
        console.print(json.dumps(found.to_json(), indent=2))
    else:
        console.print(render_text(found))
    return 0


def _progress(console: Console) -> Progress:
    from gitops_mlops.reporting.progress import Progress

    return Progress(console.out, console.env)


def _verdict_exit(verdict: Verdict, report: Path, console: Console) -> int:
    from gitops_mlops.errors import GateFailed

    failed = verdict.failed
    if not failed:
        console.print(f"gate passed ({len(verdict.rows)} checks); report: {report}")
        return 0
    for row in failed:
        console.print(f"  ✗ {row.reason}")
    raise GateFailed(f"gate failed: {len(failed)} of {len(verdict.rows)} checks; report: {report}")


def _cmd_run(args: argparse.Namespace, console: Console) -> int:
    from gitops_mlops.pipeline import RunOptions, run
    from gitops_mlops.triggers import trigger_for

    options = RunOptions(
        spec_path=Path(args.spec),
        until=args.until,
        out=args.out,
        champion_file=args.champion,
        env=console.env,
        event=trigger_for(args.event, console.env).event,
        environment=args.environment,
        version=args.version,
        image=args.image,
        base_image=args.base_image,
        force=args.force,
        reason=args.reason,
        cache=args.cache or _env_path(console.env, "MLOPS_CACHE_DIR"),
        strict=args.strict,
        signing_key=_signing_key(args.signing_key, console),
        public_key=args.public_key,
    )
    _mask_token(console)
    outcome = run(options, _progress(console))
    for promotion in outcome.promotions:
        _print_promotion(promotion, console)
    if outcome.report is not None:
        _print_report(outcome.report, console)
    if outcome.run is not None:
        console.print(f"run directory: {outcome.run.root}")
    if outcome.verdict is None or outcome.run is None:
        return 0
    return _verdict_exit(outcome.verdict, outcome.run.report, console)


def _env_path(env: Mapping[str, str], name: str) -> Path | None:
    value = env.get(name)
    return Path(value) if value else None


def _cmd_plan(args: argparse.Namespace, console: Console) -> int:
    from gitops_mlops.fleet.plan import default_base, plan, render

    paths = [Path(p) for p in args.paths]
    base = args.base or default_base(console.env)
    console.print(render(plan(paths, base, args.all, args.model), args.format))
    return 0


def _fleet_specs(paths: Sequence[str]) -> list[Spec]:
    """The specs named, or every tracked spec of the repository here."""
    from gitops_mlops.fleet.plan import load_all, repository
    from gitops_mlops.stages.validate import load

    if paths:
        return [load(Path(p)) for p in paths]
    root, tracked = repository(Path.cwd())
    return [spec for _, spec in load_all(root, tracked)]


def _cmd_status(args: argparse.Namespace, console: Console) -> int:
    import json

    from gitops_mlops.fleet.releases import render_status, status
    from gitops_mlops.gitops_repo import GitHubSettings

    _mask_token(console)
    specs = [s for s in _fleet_specs(args.paths) if s.promotion is not None]
    report = status(specs, GitHubSettings.from_env(console.env))
    if args.format == "json":
        rows = [row.to_json(report.gated[row.model]) for row in report.rows]
        console.print(json.dumps({"releases": rows, "cost": vars(report.cost)}, indent=2))
    else:
        console.print(render_status(report))
    return 0


def _cmd_history(args: argparse.Namespace, console: Console) -> int:
    import json

    from gitops_mlops.fleet.plan import find
    from gitops_mlops.fleet.releases import history, render_history
    from gitops_mlops.gitops_repo import GitHubSettings
    from gitops_mlops.stages.promote import environment_named

    _mask_token(console)
    spec = find(Path.cwd(), args.name)
    environment = environment_named(spec, args.environment)
    found = history(spec, environment, GitHubSettings.from_env(console.env))
    if args.format == "json":
        console.print(json.dumps([entry.to_json() for entry in found], indent=2))
    else:
        console.print(render_history(found))
    return 0


def _cmd_summary(args: argparse.Namespace, console: Console) -> int:
    from gitops_mlops.fleet.summary import publish

    return publish(Path(args.results), console.env, console.out)


def _cmd_rollback(args: argparse.Namespace, console: Console) -> int:
    from gitops_mlops.fleet.plan import find
    from gitops_mlops.fleet.rollback import rollback
    from gitops_mlops.gitops_repo import GitHubSettings

    _mask_token(console)
    spec = find(Path.cwd(), args.name)
    settings = GitHubSettings.from_env(console.env)
    result, current, chosen = rollback(
        spec, args.environment, args.to, args.reason, settings, console.env
    )
    console.print(f"rolling {args.name} back in {args.environment}: {current} -> {chosen}")
    _print_promotion(result, console)
    return 0


def _cmd_release_hold(args: argparse.Namespace, console: Console) -> int:
    from gitops_mlops.fleet.plan import find
    from gitops_mlops.fleet.rollback import release_hold
    from gitops_mlops.gitops_repo import GitHubSettings

    _mask_token(console)
    spec = find(Path.cwd(), args.name)
    settings = GitHubSettings.from_env(console.env)
    result, reason = release_hold(spec, args.environment, settings, console.env)
    console.print(f"releasing the hold on {args.name} in {args.environment} ({reason})")
    _print_promotion(result, console)
    return 0


def _mask_token(console: Console) -> None:
    from gitops_mlops.gitops_repo import GitHubSettings
    from gitops_mlops.reporting.github import running_in_actions

    token = GitHubSettings.from_env(console.env).token
    if token and running_in_actions(console.env):
        console.print(f"::add-mask::{token}")


def _print_report(result: ReportResult, console: Console) -> None:
    from gitops_mlops.reporting.github import annotation, running_in_actions

    for line in result.annotations:
        console.print(line)
    for warning in result.warnings:
        if running_in_actions(console.env):
            console.print(annotation("warning", warning))
        else:
            console.say(f"warning: {warning}")
    if result.comment is not None:
        verb = "posted" if result.comment["created"] else "updated"
        console.print(f"{verb} the report on pull request #{result.comment['pull_request']}")
    if result.html is not None:
        console.say(f"report with plots: {result.html}")


def _cmd_report(args: argparse.Namespace, console: Console) -> int:
    from gitops_mlops.gitops_repo import GitHubSettings
    from gitops_mlops.reporting.github import running_in_actions
    from gitops_mlops.rundir import RunDir
    from gitops_mlops.stages.report import ReportContext, report
    from gitops_mlops.stages.validate import load
    from gitops_mlops.triggers import trigger_for

    run_dir = RunDir(Path(args.run_dir))
    _mask_token(console)
    context = ReportContext(
        load(run_dir.spec_path()),
        run_dir,
        trigger_for(args.event, console.env).event,
        console.env,
        GitHubSettings.from_env(console.env),
    )
    result = report(context)
    if not running_in_actions(console.env):
        console.print(result.text)
    _print_report(result, console)
    return 0


def _cmd_train(args: argparse.Namespace, console: Console) -> int:
    from gitops_mlops.rundir import new_run_dir
    from gitops_mlops.stages.train import TrainContext, train
    from gitops_mlops.stages.validate import load

    spec = load(Path(args.spec))
    run_dir = new_run_dir(args.out)
    with _progress(console).stage("train"):
        result = train(TrainContext(spec, run_dir, console.env))
    console.print(f"model version {result.version} in {run_dir.root}")
    return 0


def _cmd_evaluate(args: argparse.Namespace, console: Console) -> int:
    from gitops_mlops.integrations.storage import StorageSettings
    from gitops_mlops.rundir import RunDir
    from gitops_mlops.stages.evaluate import EvaluateContext, evaluate
    from gitops_mlops.stages.validate import load

    run_dir = RunDir(Path(args.run_dir))
    spec = load(run_dir.spec_path())
    with _progress(console).stage("evaluate"):
        evaluate(EvaluateContext(spec, run_dir, storage=StorageSettings.from_env(console.env)))
    console.print(f"metrics: {run_dir.metrics}")
    return 0


def _cmd_gate(args: argparse.Namespace, console: Console) -> int:
    from gitops_mlops.pipeline import champion_for, gate_run, track_run, version_of
    from gitops_mlops.rundir import RunDir
    from gitops_mlops.stages.validate import load
    from gitops_mlops.triggers import trigger_for

    run_dir = RunDir(Path(args.run_dir))
    spec = load(run_dir.spec_path())
    champion = champion_for(spec, args.champion, console.env)
    progress = _progress(console)
    measured = run_dir.read_metrics()
    with progress.stage("gate") as line:
        version = version_of(run_dir)
        verdict = gate_run(spec, run_dir, champion, console.env, measured, version, None, progress)
        if not verdict.passed:
            line.fail()
    if spec.tracking is not None:
        event = trigger_for(None, console.env).event
        track_run(spec, run_dir, console.env, event, measured, verdict, progress)
    return _verdict_exit(verdict, run_dir.report, console)


def _cmd_promote(args: argparse.Namespace, console: Console) -> int:
    from gitops_mlops.gitops_repo import GitHubSettings
    from gitops_mlops.pipeline import promote_each
    from gitops_mlops.rundir import RunDir
    from gitops_mlops.stages.promote import Candidate, push_environments
    from gitops_mlops.stages.report import write_model_card
    from gitops_mlops.stages.validate import load

    run_dir = RunDir(Path(args.run_dir))
    _mask_token(console)
    spec = load(run_dir.spec_path())
    environments = [args.environment] if args.environment else push_environments(spec)
    if not environments:
        raise MlopsError("no --environment given and no environment has `on: push`")
    write_model_card(spec, run_dir)  # a run from before cards, or whose report never ran
    candidate = Candidate.from_run(run_dir, args.image)
    settings = GitHubSettings.from_env(console.env)
    for result in promote_each(
        spec,
        run_dir,
        candidate,
        environments,
        args.force,
        args.reason,
        settings,
        _progress(console),
        console.env,
        args.public_key,
    ):
        _print_promotion(result, console)
    return 0


def _print_promotion(result: PromotionRecord, console: Console) -> None:
    verified = result.verified
    if verified is not None:
        console.print(
            f"verified {verified['image']}: model {verified['model_version']}, "
            f"signed by {verified['key']}"
        )
    if not result.changed:
        console.print(f"{result.environment} already runs {result.version}: nothing to do")
        return
    pull = result.pull_request
    if pull is not None:
        verb = "opened" if pull.created else "updated"
        console.print(f"{verb} pull request #{pull.number}: {pull.url}")
        return
    would = result.would_open
    assert would is not None
    console.print(f"committed {result.commit} on branch {result.branch} of {result.repository}")
    console.print(f"{result.diff}")
    console.print("pull request it would open (no GitHub repository for a local path):")
    console.print(f"  title: {would.title}")
    console.print("  body:")
    for line in would.body.splitlines():
        console.print(f"    {line}")


def _cmd_build(args: argparse.Namespace, console: Console) -> int:
    from gitops_mlops import image_runtime
    from gitops_mlops.errors import BuildError
    from gitops_mlops.rundir import RunDir
    from gitops_mlops.stages.build import BuildContext, build
    from gitops_mlops.stages.validate import load

    run_dir = RunDir(Path(args.run_dir))
    spec = load(run_dir.spec_path())
    base = (
        args.base_image
        or console.env.get("MLOPS_BASE_IMAGE")
        or (spec.container.base_image if spec.container else "python:3.11-slim")
    )
    key = _signing_key(args.signing_key, console)
    with _progress(console).stage("build"):
        result = build(BuildContext(spec, run_dir, base, args.push, console.env, signing_key=key))
    record = result.record
    if record is None:
        raise BuildError(f"no image was built: {result.reason}")
    console.print(image_runtime.summary(record.runtime or {}))
    if record.reused:
        console.print(f"build     reused {record.digest}")
        smoke = record.smoke_test
        console.print(
            f"{record.reference} is already in the registry with this model and these "
            "packages; "
            + (
                "smoke test passed"
                if smoke and smoke.passed
                else f"smoke test skipped: {smoke.skipped if smoke else 'not run'}"
            )
        )
    else:
        console.print(
            f"built {record.reference} ({record.size_bytes / 2**20:.0f} MB, "
            f"{record.layers} layers) in {record.build_seconds} s; smoke test passed"
        )
    if record.pinned:
        console.print(f"pushed {record.pinned}")
    from gitops_mlops.reporting.attestations import build_lines

    for line in build_lines(record.attestations):
        console.print(line)
    return 0


def _signing_key(path: Path | None, console: Console) -> SigningKey | None:
    """The attestation signing key, resolved once; its PEM lines masked in Actions logs."""
    from gitops_mlops.attestations.signing import ENV_KEY, signing_key
    from gitops_mlops.reporting.github import running_in_actions

    if running_in_actions(console.env):
        for line in console.env.get(ENV_KEY, "").splitlines():
            if line.strip() and not line.startswith("-----"):
                console.print(f"::add-mask::{line.strip()}")
    return signing_key(path, console.env)


def _cmd_verify(args: argparse.Namespace, console: Console) -> int:
    from gitops_mlops.attestations import chain, signing
    from gitops_mlops.errors import VerificationFailed
    from gitops_mlops.integrations.registry import Reference, Registry
    from gitops_mlops.reporting.attestations import chain_json, chain_text

    try:
        reference = Reference.parse(args.image)
        key = signing.load_public(args.public_key) if args.public_key else None
    except MlopsError as err:
        raise VerificationFailed(str(err)) from None
    if reference.digest is None:
        raise VerificationFailed(f"{args.image} is not pinned by digest; give IMAGE@sha256:<hex>")
    verified = chain.verify(Registry(reference.registry, console.env), reference, key)
    facts = verified.to_json()
    console.print(chain_json(facts) if args.format == "json" else chain_text(facts))
    return 0


def _cmd_serve(args: argparse.Namespace, console: Console) -> int:
    from gitops_mlops.bundle import check_model
    from gitops_mlops.rundir import RunDir
    from gitops_mlops.serving.__main__ import main as serve
    from gitops_mlops.stages.validate import load

    run_dir = RunDir(Path(args.run_dir))
    if not run_dir.model_file.is_file():
        raise MlopsError(f"{run_dir.model_dir}: no model.skops; train first (`mlops run`)")
    # Refuse a tampered or untrusted model here, as an error, before a server starts.
    spec = load(run_dir.spec_path())
    check_model(run_dir.model_dir, spec.model.allow_modules)
    model_dir = run_dir.model_dir
    if args.runtime == "onnx":  # converted and proven as `mlops build` does it
        from gitops_mlops import bundle, image_runtime
        from gitops_mlops.integrations.storage import StorageSettings

        choice = image_runtime.choose(
            spec,
            run_dir,
            bundle.read_manifest(run_dir.model_dir),
            requested="onnx",
            storage=StorageSettings.from_env(console.env),
        )
        console.say(image_runtime.summary(choice.to_json()))
        model_dir = choice.model_dir
    console.say(f"serving {model_dir} on http://{args.host}:{args.port}/v2 (Ctrl-C stops)")
    return serve(
        [
            "--model-dir",
            str(model_dir),
            "--host",
            args.host,
            "--port",
            str(args.port),
            "--workers",
            str(args.workers),
        ]
    )


def _force_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true", help="promote despite a failed gate")
    parser.add_argument("--reason", help="why --force is used (goes into the pull request)")


def _signing_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--signing-key",
        type=arguments.key_file,
        help="PEM private key (ECDSA P-256 or Ed25519) signing the image's SBOM and "
        "provenance (default: MLOPS_SIGNING_KEY's PEM text; none: unsigned)",
    )


def _public_key_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--public-key",
        type=arguments.key_file,
        help="verify the image's signed attestations with this PEM public key before "
        "promoting (replaces promotion.verify; exit 7 when they do not check out)",
    )


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors raised as UsageError (exit 2 from `main`, written to
    the console like every other error) instead of exiting the process."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.format_usage().rstrip()}\n{self.prog}: error: {message}")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mlops",
        description="Validate, train, evaluate, gate, package and promote a model "
        "declared in mlops.yaml.",
        epilog="Exit codes: 0 ok, 1 error, 2 invalid spec, 4 gate failed, 5 build failed, "
        "6 promotion conflict, 7 verification failed.",
    )
    parser.add_argument("--version", action="version", version=f"mlops {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = commands.add_parser("validate", help="check mlops.yaml files")
    # Not arguments.spec_file: validate reports a path that is no spec as one more problem,
    # in the same (text or JSON) report as those of the other files.
    validate.add_argument("paths", nargs="*", metavar="PATH", help="spec files (./mlops.yaml)")
    validate.add_argument("--format", choices=("text", "json"), default="text")
    validate.set_defaults(handler=_cmd_validate)

    run = commands.add_parser("run", help="run the pipeline: validate, train, evaluate, gate")
    run.add_argument(
        "spec", nargs="?", default="mlops.yaml", type=arguments.spec_file, metavar="PATH"
    )
    run.add_argument(
        "--until",
        choices=UNTIL,
        help="stop after this stage (default: every stage the event calls for)",
    )
    run.add_argument(
        "--event",
        choices=EVENTS,
        help="trigger (default: GITHUB_EVENT_NAME, else push)",
    )
    run.add_argument(
        "--out", type=arguments.out_dir, help="run directory (default .mlops/runs/<time>)"
    )
    run.add_argument(
        "--champion",
        type=arguments.champion,
        help="gate against this release record, run directory or model bundle",
    )
    run.add_argument("--environment", "-e", help="workflow_dispatch: environment to promote to")
    run.add_argument("--version", help="workflow_dispatch: model version expected")
    run.add_argument(
        "--image",
        type=arguments.pinned_image,
        help="push: promote this REPOSITORY@sha256:... image",
    )
    run.add_argument("--base-image", help="push: Python base image of the serving image")
    run.add_argument(
        "--strict",
        action="store_true",
        help="push: fail (exit 5) when the image cannot be built or pushed (no Docker engine, "
        "base image or registry) instead of skipping; implied under GitHub Actions for the "
        "base image and the registry",
    )
    _signing_flag(run)
    _public_key_flag(run)
    run.add_argument(
        "--cache",
        type=arguments.out_dir,
        metavar="DIR",
        help="run cache: reuse the model and metrics of identical inputs (MLOPS_CACHE_DIR)",
    )
    _force_flags(run)
    run.set_defaults(handler=_cmd_run)

    plan = commands.add_parser("plan", help="which models of the repository a change affects")
    plan.add_argument(
        "paths",
        nargs="*",
        type=arguments.existing_path,
        metavar="PATH",
        help="specs, or folders holding them (default .)",
    )
    plan.add_argument(
        "--base", help="compare BASE...HEAD (default: the pull request's base branch)"
    )
    plan.add_argument("--all", action="store_true", help="plan every model")
    plan.add_argument("--model", help="only the model with this metadata.name")
    plan.add_argument("--format", choices=("text", "json"), default="text")
    plan.set_defaults(handler=_cmd_plan)

    summary = commands.add_parser("summary", help="one table for the models of a workflow run")
    summary.add_argument(
        "results",
        type=arguments.directory,
        metavar="DIR",
        help="a folder per model: its run's JSON files",
    )
    summary.set_defaults(handler=_cmd_summary)

    status = commands.add_parser("status", help="what runs where: one row per model and env")
    status.add_argument(
        "paths",
        nargs="*",
        type=arguments.spec_file,
        metavar="PATH",
        help="specs (default: all tracked)",
    )
    status.add_argument("--format", choices=("text", "json"), default="text")
    status.set_defaults(handler=_cmd_status)

    history = commands.add_parser("history", help="every release of a model in an environment")
    history.add_argument("name", metavar="NAME", help="the model's metadata.name")
    history.add_argument("--environment", "-e", required=True)
    history.add_argument("--format", choices=("text", "json"), default="text")
    history.set_defaults(handler=_cmd_history)

    rollback = commands.add_parser(
        "rollback", help="pin an earlier release again (pull request), and hold the environment"
    )
    rollback.add_argument("name", metavar="NAME", help="the model's metadata.name")
    rollback.add_argument("--environment", "-e", required=True)
    rollback.add_argument("--to", metavar="VERSION", help="default: the release before this one")
    rollback.add_argument("--reason", required=True, help="why (goes into the record and the PR)")
    rollback.set_defaults(handler=_cmd_rollback)

    release_hold = commands.add_parser(
        "release-hold", help="open the pull request that lifts an environment's hold"
    )
    release_hold.add_argument("name", metavar="NAME", help="the model's metadata.name")
    release_hold.add_argument("--environment", "-e", required=True)
    release_hold.set_defaults(handler=_cmd_release_hold)

    report_cmd = commands.add_parser("report", help="publish a run's report (PR comment, summary)")
    report_cmd.add_argument("run_dir", type=arguments.run_dir, metavar="RUN_DIR")
    report_cmd.add_argument(
        "--event", choices=EVENTS, help="trigger (default: GITHUB_EVENT_NAME, else push)"
    )
    report_cmd.set_defaults(handler=_cmd_report)

    train = commands.add_parser("train", help="train the model into a run directory")
    train.add_argument(
        "spec", nargs="?", default="mlops.yaml", type=arguments.spec_file, metavar="PATH"
    )
    train.add_argument(
        "--out", type=arguments.out_dir, help="run directory (default .mlops/runs/<time>)"
    )
    train.set_defaults(handler=_cmd_train)

    evaluate = commands.add_parser("evaluate", help="measure the model of a run directory")
    evaluate.add_argument("run_dir", type=arguments.run_dir, metavar="RUN_DIR")
    evaluate.set_defaults(handler=_cmd_evaluate)

    gate = commands.add_parser("gate", help="check a run's metrics against the thresholds")
    gate.add_argument("run_dir", type=arguments.run_dir, metavar="RUN_DIR")
    gate.add_argument(
        "--champion",
        type=arguments.champion,
        help="gate against this release record, run directory or model bundle",
    )
    gate.set_defaults(handler=_cmd_gate)

    promote = commands.add_parser("promote", help="open the pull request releasing a run")
    promote.add_argument("run_dir", type=arguments.run_dir, metavar="RUN_DIR")
    promote.add_argument(
        "--environment", "-e", help="environment to promote to (default: every `on: push` one)"
    )
    promote.add_argument(
        "--image",
        type=arguments.pinned_image,
        help="REPOSITORY@sha256:... (default: the run's build.json)",
    )
    _force_flags(promote)
    _public_key_flag(promote)
    promote.set_defaults(handler=_cmd_promote)

    build_cmd = commands.add_parser("build", help="build, smoke-test (and push) the serving image")
    build_cmd.add_argument("run_dir", type=arguments.run_dir, metavar="RUN_DIR")
    build_cmd.add_argument(
        "--base-image",
        help="Python base image (default: MLOPS_BASE_IMAGE, else container.base_image)",
    )
    build_cmd.add_argument("--push", action="store_true", help="push to container.image")
    _signing_flag(build_cmd)
    build_cmd.set_defaults(handler=_cmd_build)

    verify = commands.add_parser(
        "verify",
        help="check an image's signed SBOM and provenance (exit 7 when they do not check out)",
        description="Fetch the attestations attached to IMAGE@sha256:... from its registry, "
        "check their signatures with --public-key and that they are about this digest, and "
        "print the chain: source, spec, model, data, gate, packages. Make a key pair with "
        "`openssl genpkey -algorithm ed25519 -out signing.pem` and "
        "`openssl pkey -in signing.pem -pubout -out signing.pub.pem`.",
    )
    verify.add_argument("image", type=arguments.pinned_image, metavar="IMAGE@sha256:...")
    verify.add_argument(
        "--public-key",
        type=arguments.key_file,
        help="PEM public key the attestations must be signed with",
    )
    verify.add_argument("--format", choices=("text", "json"), default="text")
    verify.set_defaults(handler=_cmd_verify)

    serve = commands.add_parser("serve", help="serve a run's model locally (no Docker)")
    serve.add_argument("run_dir", type=arguments.run_dir, metavar="RUN_DIR")
    serve.add_argument("--port", type=arguments.port, default=8080)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument(
        "--workers",
        type=arguments.workers,
        default="auto",
        help="processes: auto (one per CPU) or a number",
    )
    serve.add_argument(
        "--runtime",
        choices=("sklearn", "onnx"),
        default="sklearn",
        help="onnx: convert the model as `mlops build` does (and prove it) first",
    )
    serve.set_defaults(handler=_cmd_serve)

    schema = commands.add_parser("schema", help="print the JSON Schema of mlops.yaml")
    schema.set_defaults(handler=_cmd_schema)

    columns = commands.add_parser(
        "columns", help="show the columns and dtypes of a spec's data (reads headers only)"
    )
    columns.add_argument(
        "spec", nargs="?", default="mlops.yaml", type=arguments.spec_file, metavar="PATH"
    )
    columns.add_argument("--format", choices=("text", "json"), default="text")
    columns.set_defaults(handler=_cmd_columns)

    init = commands.add_parser(
        "init", help="write a commented starter mlops.yaml for a data file or built-in dataset"
    )
    source = init.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--data", type=arguments.data_file, metavar="PATH", help="CSV or Parquet file"
    )
    source.add_argument("--builtin", choices=sorted(BUILTINS), help="a scikit-learn dataset")
    init.add_argument("--target", metavar="COLUMN", help="with --data: the column to predict")
    init.add_argument(
        "--output",
        type=arguments.new_file,
        default="mlops.yaml",  # a string: argparse checks it with the kind like a given one
        metavar="PATH",
        help="the spec to write (mlops.yaml; never overwritten)",
    )
    init.set_defaults(handler=_cmd_init)

    runs = commands.add_parser("runs", help="the local runs (.mlops/runs), newest first")
    runs.add_argument(
        "--limit", type=arguments.positive, default=20, metavar="N", help="at most N runs (20)"
    )
    runs.add_argument("--format", choices=("text", "json"), default="text")
    runs.set_defaults(handler=_cmd_runs)

    diff_cmd = commands.add_parser(
        "diff",
        help="compare two local runs metric by metric (paired when they share test rows)",
        description="Δ = RUN_B - RUN_A for every metric both runs measured, overall and per "
        "slice, with intervals and a verdict: paired when both runs predicted the same test "
        "rows (their digests agree), unpaired otherwise (said so).",
    )
    diff_cmd.add_argument("run_a", metavar="RUN_A", type=arguments.run_dir)
    diff_cmd.add_argument("run_b", metavar="RUN_B", type=arguments.run_dir)
    diff_cmd.add_argument("--format", choices=("text", "json"), default="text")
    diff_cmd.set_defaults(handler=_cmd_diff)

    metrics = commands.add_parser("metrics", help="list the metrics the gate understands")
    metrics.set_defaults(handler=_cmd_metrics)
    return parser


# A closed standard output (`mlops … | head -1`) ends the command quietly, with the status a
# program killed by SIGPIPE reports (128 + 13), as `cat` or `grep` would.
CLOSED_STDOUT = 141


def main(
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    console = Console(out or sys.stdout, err or sys.stderr, os.environ if env is None else env)
    try:
        return _dispatch(argv, console)
    except BrokenPipeError as error:
        if _reader_left(console):
            return CLOSED_STDOUT
        return _bug(error, console)


def _dispatch(argv: Sequence[str] | None, console: Console) -> int:
    try:
        args = _parser().parse_args(argv)
        handler: Handler = args.handler
        return handler(args, console)
    except SpecError as error:
        console.print(str(error))
        return error.exit_code
    except UsageError as error:
        console.say(str(error))
        return error.exit_code
    except MlopsError as error:
        console.say(f"error: {error}")
        return error.exit_code
    except KeyboardInterrupt:
        console.say("interrupted")
        return 130
    except BrokenPipeError:
        raise  # main tells a reader that left from a bug
    except Exception as error:  # a bug: say so briefly; the traceback only on request
        return _bug(error, console)


def _reader_left(console: Console) -> bool:
    """Whether standard output is a pipe whose reader has gone (`| head`), rather than some
    other pipe breaking (that would be a bug to report). A pipe without readers polls as an
    error on its writing end."""
    import select

    try:
        descriptor = console.out.fileno()
    except (OSError, ValueError, AttributeError):  # not a file (a StringIO in tests)
        return False
    if not hasattr(select, "poll"):  # pragma: no cover - Windows: stdout is the likely one
        return True
    poller = select.poll()
    poller.register(descriptor, 0)
    return any(events & select.POLLERR for _, events in poller.poll(0))


def _bug(error: BaseException, console: Console) -> int:
    console.say(f"internal error: {type(error).__name__}: {error}")
    if console.env.get("MLOPS_DEBUG"):
        traceback.print_exception(error, file=console.err)
    else:
        console.say("This is a bug in mlops; rerun with MLOPS_DEBUG=1 and report the traceback.")
    return 1


def entry() -> NoReturn:
    """The `mlops` command: `main()`, then exit without tearing the interpreter down.

    Unloading scikit-learn, SciPy and pandas module by module takes ~0.4 s at exit (a sixth
    of a small training run) and does nothing useful: by then every file we write is closed.
    So flush the standard streams and leave at once with main's exit code.
    """
    try:
        code = main()
    except SystemExit as stop:  # argparse: --help, --version, usage errors
        if not isinstance(stop.code, int):
            raise
        code = stop.code
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # `mlops … | head`: the reader left; there is nobody to tell
        code = code or CLOSED_STDOUT
    with contextlib.suppress(BrokenPipeError):
        sys.stderr.flush()
    os._exit(code)

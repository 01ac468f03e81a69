"""Log the run to MLflow (`tracking.mlflow`), after the gate and before the report.

One MLflow run per pipeline run: params (the spec's estimator params, the search's best
params), metrics with their interval ends (`accuracy`, `accuracy_ci_low`,
`accuracy_ci_high`, slices as `slice/NAME/METRIC`), tags (model version, verdict, spec,
commit, event, pull request) and artifacts (manifest, metrics, verdict, report, model card).
The report gets a link to the run, so the pull request comment and the job summary have it.

A tracking server that cannot take the run is a warning: a pull request's gate must not
depend on it. With `tracking.required: true` it fails the run (exit 1).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops_mlops import bundle
from gitops_mlops.integrations import tracking
from gitops_mlops.records.metrics import Metrics
from gitops_mlops.records.verdict import Verdict
from gitops_mlops.rundir import RunDir
from gitops_mlops.spec.model import Spec
from gitops_mlops.spec.semantics import repository_root
from gitops_mlops.stages.report import _pull_request_number as pull_request_number


@dataclass(frozen=True)
class TrackContext:
    spec: Spec
    run: RunDir
    env: Mapping[str, str]
    event: str
    measured: Metrics
    verdict: Verdict


@dataclass(frozen=True)
class TrackResult:
    url: str | None  # the MLflow run, when it was logged
    warning: str | None  # why it was not, when that is not an error


def track(ctx: TrackContext) -> TrackResult:
    settings = ctx.spec.tracking
    if settings is None:
        return TrackResult(None, None)
    uri = tracking.tracking_uri(ctx.env)
    try:
        if uri is None:
            raise tracking.TrackingError(
                f"tracking.mlflow is set, but {tracking.URI_ENV} is not: set it to the "
                "tracking server (e.g. https://mlflow.example.com)"
            )
        client, logged = tracking.start(uri, _tracked_run(ctx))
        _link_in_report(ctx.run.report, logged.url, settings.experiment)
        tracking.finish(uri, client, logged, _late_artifacts(ctx.run))
    except tracking.TrackingError as err:
        if settings.required:
            raise tracking.TrackingError(f"{err} (tracking.required is true)") from None
        return TrackResult(None, f"{err}; the run was not tracked (tracking.required: false)")
    return TrackResult(logged.url, None)


def _tracked_run(ctx: TrackContext) -> tracking.TrackedRun:
    manifest = bundle.read_manifest(ctx.run.model_dir)
    version = str(manifest.get("model_version", ""))
    assert ctx.spec.tracking is not None
    return tracking.TrackedRun(
        experiment=ctx.spec.tracking.experiment,
        name=f"{ctx.spec.metadata.name} {version}".strip(),
        params=_params(manifest),
        metrics=_metrics(ctx.measured),
        tags=_tags(ctx, manifest, version),
        artifacts=[
            p for p in (ctx.run.manifest_file, ctx.run.metrics, ctx.run.verdict) if p.is_file()
        ],
    )


def _params(manifest: Mapping[str, Any]) -> dict[str, str]:
    params = {"estimator": str(manifest.get("estimator") or manifest.get("trainer", ""))}
    params |= {k: _text(v) for k, v in (manifest.get("params") or {}).items()}
    params |= {f"best.{k}": _text(v) for k, v in (manifest.get("best_params") or {}).items()}
    return params


def _metrics(measured: Metrics) -> dict[str, float]:
    found: dict[str, float] = {}
    tables = [("", measured.metrics)]
    tables += [(f"slice/{name}/", t) for name, t in measured.slices.items()]
    for prefix, table in tables:
        for name, entry in table.items():
            for suffix, value in (
                ("", entry.value),
                ("_ci_low", entry.ci_low),
                ("_ci_high", entry.ci_high),
            ):
                if value is not None:
                    found[f"{prefix}{name}{suffix}"] = value
    return found


def _tags(ctx: TrackContext, manifest: Mapping[str, Any], version: str) -> dict[str, str]:
    passed = ctx.verdict.passed
    tags = {
        "mlops.model": ctx.spec.metadata.name,
        "mlops.model_version": version,
        "mlops.verdict": "passed" if passed else "failed",
        "mlops.spec": _spec_path(ctx.spec),
        "mlops.event": ctx.event,
    }
    commit = ctx.env.get("GITHUB_SHA") or manifest.get("git_commit")
    if commit:
        tags["mlops.commit"] = str(commit)
        tags["mlflow.source.git.commit"] = str(commit)  # MLflow shows it on the run's page
    number = pull_request_number(ctx.env) if ctx.event == "pull_request" else None
    if number is not None:
        tags["mlops.pull_request"] = str(number)
    return tags


def _spec_path(spec: Spec) -> str:
    file = spec.file.resolve()
    try:
        return file.relative_to(repository_root(file.parent).resolve()).as_posix()
    except ValueError:
        return file.name


def _link_in_report(report: Path, url: str, experiment: str) -> None:
    if not report.is_file():
        return
    text = report.read_text(encoding="utf-8").rstrip("\n")
    link = f"[MLflow run]({url})" if url.startswith(("http://", "https://")) else url
    report.write_text(f"{text}\n\nTracked in MLflow experiment `{experiment}`: {link}\n")


def _late_artifacts(run: RunDir) -> list[Path]:
    """Logged after the link is in the report: the report, and the model card."""
    return [p for p in (run.report, run.model_card) if p.is_file()]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)

"""Stage 7: put the report where people look.

Under GitHub Actions: the job summary, step outputs (`model-version`, `verdict`,
`image-digest`, `pr-url`) and an error annotation on the spec line of each failed threshold.
On a pull_request event: one sticky comment per model, created once and then edited in place.
Elsewhere: the report on standard output. Everywhere: `report.html` in the run directory, the
same report with plots in one self-contained page (reporting/html.py); the reusable workflow
uploads it as the artifact `MLOPS_REPORT_ARTIFACT` names, and the comment links to it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops_mlops.errors import MlopsError
from gitops_mlops.gitops_repo import GitHubSettings
from gitops_mlops.integrations.github import BODY_LIMIT, GitHub, fit
from gitops_mlops.reporting.github import (
    annotation,
    append_summary,
    running_in_actions,
    write_outputs,
)
from gitops_mlops.rundir import RunDir, read_json
from gitops_mlops.spec.model import Spec
from gitops_mlops.triggers import TRIGGERS

_ARTIFACT_NAME = re.compile(r"[A-Za-z0-9._-]{1,200}")


@dataclass(frozen=True)
class ReportContext:
    spec: Spec
    run: RunDir
    event: str  # a key of triggers.TRIGGERS
    env: Mapping[str, str]
    github: GitHubSettings


@dataclass(frozen=True)
class ReportResult:
    outputs: dict[str, str]
    annotations: list[str]
    comment: dict[str, Any] | None  # {"id", "created"} when a sticky comment was written
    warnings: list[str]
    text: str  # the report itself
    html: Path | None = None  # report.html, when the run has metrics to show


def comment_marker(spec: Spec) -> str:
    return f"<!-- gitops-mlops:report model={spec.metadata.name} -->"


def outputs(run: RunDir) -> dict[str, str]:
    """The step outputs: empty where the run has not got that far."""
    # Only the version is shown: the model's files are checked where the model is loaded.
    manifest = read_json(run.manifest_file, "manifest.json") if run.manifest_file.is_file() else {}
    manifest = manifest if isinstance(manifest, dict) else {}
    verdict = run.find_verdict()
    build = run.find_build()
    promotion = run.find_promotion()
    pull = promotion.pull_request if promotion else None
    return {
        "model-version": str(manifest.get("model_version", "")),
        "verdict": "" if verdict is None else ("passed" if verdict.passed else "failed"),
        "image-digest": (build.digest or "") if build else "",
        "pr-url": pull.url if pull else "",
    }


def _annotations(ctx: ReportContext) -> list[str]:
    verdict = ctx.run.find_verdict()
    lines = []
    for row in verdict.failed if verdict else ():
        line, column = ctx.spec.locations.get(f"gate.thresholds[{row.threshold}]", (1, 1))
        lines.append(annotation("error", f"gate: {row.reason}", str(ctx.spec.file), line, column))
    return lines


def _pull_request_number(env: Mapping[str, str]) -> int | None:
    path = env.get("GITHUB_EVENT_PATH")
    if not path or not Path(path).is_file():
        return None
    event = json.loads(Path(path).read_text(encoding="utf-8"))
    number = (event.get("pull_request") or {}).get("number") or event.get("number")
    return int(number) if isinstance(number, int) else None


def _sticky(ctx: ReportContext, text: str) -> tuple[dict[str, Any] | None, list[str]]:
    number = _pull_request_number(ctx.env)
    repository = ctx.github.current_repository
    if number is None or repository is None or ctx.github.token is None:
        return None, [
            "no pull request comment: GITHUB_EVENT_PATH, GITHUB_REPOSITORY or a token is missing"
        ]
    body = fit(
        f"{comment_marker(ctx.spec)}\n{text}",
        BODY_LIMIT,
        "*Truncated: the full report is in the workflow run's job summary.*",
    )
    github = GitHub(ctx.github.token, repository, ctx.github.api_url, ctx.github.throttle)
    try:
        comment_id, created = github.sticky_comment(number, comment_marker(ctx.spec), body)
    except MlopsError as err:
        # Fork pull requests get a read-only token: the job summary still has the report.
        return None, [f"could not comment on pull request #{number}: {err}"]
    return {
        "id": comment_id,
        "created": created,
        "pull_request": number,
        "api_calls": github.calls,
    }, []


def write_html(spec: Spec, run: RunDir) -> Path | None:
    """report.html from the run's records; None when the run has no metrics yet."""
    if not run.metrics.is_file():
        return None
    from gitops_mlops.reporting import html

    manifest = read_json(run.manifest_file, "manifest.json") if run.manifest_file.is_file() else {}
    build = run.find_build()
    rows = run.find_predictions()
    page = html.Page(
        spec,
        run.read_metrics(),
        run.find_verdict(),
        manifest if isinstance(manifest, dict) else {},
        comparison=run.find_comparison(),
        # The scatter plot of predicted against true needs the rows (regression only).
        predictions=rows.predictions if rows and spec.task == "regression" else None,
        test_rows_digest=rows.rows_digest if rows else "",
        image=(build.pinned or "") if build else "",
    )
    run.write_report_html(html.render(page))
    return run.report_html


def html_link(env: Mapping[str, str]) -> str:
    """Where the workflow run keeps report.html (the artifact MLOPS_REPORT_ARTIFACT), or ""."""
    artifact = env.get("MLOPS_REPORT_ARTIFACT")
    server, repository = env.get("GITHUB_SERVER_URL"), env.get("GITHUB_REPOSITORY")
    run_id = env.get("GITHUB_RUN_ID")
    if not (artifact and server and repository and run_id and run_id.isdigit()):
        return ""
    if not _ARTIFACT_NAME.fullmatch(artifact):  # it goes into Markdown: plain names only
        return ""
    url = f"{server.rstrip('/')}/{repository}/actions/runs/{run_id}#artifacts"
    return f"\n📊 Plots and the full report: `report.html` in the artifact [{artifact}]({url}).\n"


def write_model_card(spec: Spec, run: RunDir) -> str | None:
    """model-card.md from the run's records; None before the run has a model and metrics."""
    if not (run.manifest_file.is_file() and run.metrics.is_file()):
        return None
    from gitops_mlops import model_card

    model = run.read_model_summary()
    train, test = spec.data.train, spec.data.test
    data = model_card.DataFacts(
        source=_data_source(train.builtin, train.path),
        test_source=None if test is None else _data_source(test.builtin, test.path),
        digest=model.data_digest,
        target=model.target,
        features=tuple(f.name for f in model.features),
        classes=model.classes,
        n_train=model.n_train,
        n_test=model.n_test,
    )
    text = model_card.markdown(
        model_card.CardFacts(
            name=model.name or spec.metadata.name,
            version=model.version,
            task=model.task or spec.task,
            estimator=model.estimator,
            description=spec.metadata.description,
            limitations=spec.metadata.limitations,
            metrics=run.read_metrics(),
            data=data,
            model_digest=model.model_digest,
            git_commit=model.git_commit,
        )
    )
    run.write_model_card(text)
    return text


def _data_source(builtin: str | None, path: str | None) -> str:
    return f"builtin {builtin}" if builtin is not None else str(path)


def report(ctx: ReportContext) -> ReportResult:
    warnings: list[str] = []
    try:
        page = write_html(ctx.spec, ctx.run)
    except MlopsError as err:  # a damaged record: the comment and summary still go out
        page = None
        warnings.append(f"report.html not written: {err}")
    try:
        write_model_card(ctx.spec, ctx.run)
    except MlopsError as err:
        warnings.append(f"model-card.md not written: {err}")
    text = ctx.run.read_report() + (html_link(ctx.env) if page else "")
    values = outputs(ctx.run)
    comment: dict[str, Any] | None = None
    if TRIGGERS[ctx.event].comments:
        comment, refused = _sticky(ctx, text)
        warnings += refused
    notes: list[str] = []
    if running_in_actions(ctx.env):
        append_summary(ctx.env, text)
        write_outputs(ctx.env, values)
        notes = _annotations(ctx)
    return ReportResult(values, notes, comment, warnings, text, page)

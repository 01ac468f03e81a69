"""Which stages run, in which order, for a run.

`mlops run --until STAGE` runs validate → train → evaluate → gate (or fewer); each stage is a
module in `stages/` with one entry point, and this module only wires their results together.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops_mlops import bundle, release
from gitops_mlops.gitops_repo import GitHubSettings
from gitops_mlops.reporting.progress import Progress
from gitops_mlops.rundir import RunDir, new_run_dir
from gitops_mlops.spec.model import Spec
from gitops_mlops.stages import validate
from gitops_mlops.stages.evaluate import EvaluateContext, evaluate
from gitops_mlops.stages.gate import GateContext, gate
from gitops_mlops.stages.train import TrainContext, train

STAGES = ("validate", "train", "evaluate", "gate")


@dataclass(frozen=True)
class RunOptions:
    spec_path: Path
    until: str
    out: Path | None
    champion_file: Path | None
    env: Mapping[str, str]


@dataclass(frozen=True)
class RunOutcome:
    spec: Spec
    run: RunDir | None
    version: str | None
    verdict: dict[str, Any] | None


def champion_for(
    spec: Spec, champion_file: Path | None, env: Mapping[str, str]
) -> release.Champion | None:
    """`--champion FILE` when given, else the release record in the GitOps repository."""
    if champion_file is not None:
        return release.read_record(champion_file)
    return release.champion(spec, GitHubSettings.from_env(env))


def run(options: RunOptions, progress: Progress) -> RunOutcome:
    stop = STAGES.index(options.until)
    with progress.stage("validate"):
        spec = validate.load(options.spec_path)
    if stop == 0:
        return RunOutcome(spec, None, None, None)
    run_dir = new_run_dir(options.out)
    with progress.stage("train"):
        trained = train(TrainContext(spec, run_dir, options.env))
    progress.note(f"model {spec.metadata.name} version {trained.version} in {run_dir.model_dir}")
    if stop == 1:
        return RunOutcome(spec, run_dir, trained.version, None)
    with progress.stage("evaluate"):
        measured = evaluate(EvaluateContext(spec, run_dir, trained.model, trained.data))
    if stop == 2:
        return RunOutcome(spec, run_dir, trained.version, None)
    champion = champion_for(spec, options.champion_file, options.env)
    with progress.stage("gate"):
        verdict = gate(GateContext(spec, run_dir, champion, measured, trained.version))
    return RunOutcome(spec, run_dir, trained.version, verdict)


def version_of(run_dir: RunDir) -> str:
    return str(bundle.read_manifest(run_dir.model_dir)["model_version"])

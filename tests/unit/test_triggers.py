"""The trigger registry is the one table of what runs for which event: the CLI, the docs and
the reusable workflow all follow it (each checked here, entry by entry)."""

from __future__ import annotations

import argparse
import re
from typing import Any

import pytest

from gitops_mlops.cli import _parser
from gitops_mlops.errors import MlopsError
from gitops_mlops.spec.document import load_file
from gitops_mlops.triggers import (
    EVENTS,
    STAGES,
    TRIGGERS,
    UNTIL,
    Stage,
    Trigger,
    markdown_table,
    trigger_for,
)
from tests.conftest import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "mlops.yml"
# The stages each composite action runs (train runs `mlops run --until evaluate`).
ACTION_STAGES: dict[str, tuple[Stage, ...]] = {
    "validate": ("validate",),
    "train": ("train", "evaluate"),
    "gate": ("gate",),
    "build": ("build",),
    "promote": ("promote",),
    "report": ("report",),
    # Around the per-model stages: which models to run, and one table of them all.
    "plan": (),
    "summary": (),
}


@pytest.mark.parametrize("trigger", TRIGGERS.values(), ids=lambda t: t.event)
def test_every_trigger_runs_known_stages_in_order(trigger: Trigger) -> None:
    assert trigger.stages[0] == "validate"
    assert list(trigger.stages) == sorted(trigger.stages, key=STAGES.index)
    assert trigger.description.strip()


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = _parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_the_cli_offers_exactly_the_registered_events() -> None:
    commands = _commands()
    for name in ("run", "report"):
        event = next(a for a in commands[name]._actions if a.dest == "event")
        assert tuple(event.choices or ()) == EVENTS, name
    until = next(a for a in commands["run"]._actions if a.dest == "until")
    assert tuple(until.choices or ()) == UNTIL


def test_the_event_comes_from_the_flag_then_github_then_push() -> None:
    assert trigger_for("pull_request", {"GITHUB_EVENT_NAME": "push"}).event == "pull_request"
    assert trigger_for(None, {"GITHUB_EVENT_NAME": "workflow_dispatch"}).event == (
        "workflow_dispatch"
    )
    assert trigger_for(None, {}).event == "push"
    with pytest.raises(MlopsError, match="event 'schedule' is not handled; use one of"):
        trigger_for(None, {"GITHUB_EVENT_NAME": "schedule"})


@pytest.mark.parametrize("doc", ["README.md", "docs/architecture.md"])
def test_the_docs_show_the_registry(doc: str) -> None:
    assert markdown_table() in (ROOT / doc).read_text(encoding="utf-8"), (
        f"{doc}: paste the output of `python -m gitops_mlops.triggers`"
    )


def _holds(condition: Any, event: str) -> bool:
    """A workflow `if:` of the forms mlops.yml uses, evaluated for one event."""
    if condition is None:
        return True
    expression = str(condition).replace("github.event_name", repr(event))
    expression = expression.replace("always()", "True")
    expression = re.sub(r"steps\.\w+\.outcome == 'success'", "True", expression)
    # Whether the plan found models is not the event's business: assume it did.
    expression = re.sub(
        r"needs\.\w+\.(outputs\.\w+ != '0'|result == 'success')", "True", expression
    )
    expression = expression.replace("&&", " and ").replace("||", " or ")
    assert re.fullmatch(r"[\w\s'=!]+", expression), f"cannot evaluate {condition!r}"
    return bool(eval(expression))


def _stages_in_workflow(event: str) -> set[str]:
    workflow = load_file(WORKFLOW).data
    stages: set[str] = set()
    for job in workflow["jobs"].values():
        if not _holds(job.get("if"), event):
            continue
        for step in job["steps"]:
            uses = str(step.get("uses", ""))
            if not uses.startswith("gitops-mlops/gitops-mlops/actions/"):
                continue
            if not _holds(step.get("if"), event):
                continue
            action = uses.split("/")[3].split("@")[0]
            if action == "promote" and step.get("with", {}).get("environment"):
                # `mlops run --event workflow_dispatch`: the pipeline reads the registry itself.
                script = (ROOT / "actions" / "promote" / "action.yml").read_text()
                assert "--event workflow_dispatch" in script
                stages |= set(TRIGGERS["workflow_dispatch"].stages)
            else:
                stages |= set(ACTION_STAGES[action])
    return stages


@pytest.mark.parametrize("trigger", TRIGGERS.values(), ids=lambda t: t.event)
def test_the_reusable_workflow_runs_the_stages_of_each_trigger(trigger: Trigger) -> None:
    assert _stages_in_workflow(trigger.event) == set(trigger.stages)


def test_the_workflow_answers_only_registered_events() -> None:
    text = WORKFLOW.read_text()
    named = set(re.findall(r"github\.event_name [!=]= '(\w+)'", text))
    assert named <= set(EVENTS)


def test_docs_cite_the_project_not_a_design_brief() -> None:
    folders = ("src", "tests", "benchmarks", "actions", ".github", ".ci", "docs", "examples")
    files = [p for folder in folders for p in (ROOT / folder).rglob("*")]
    cited = [
        str(path.relative_to(ROOT))
        for path in [*files, *ROOT.glob("*")]  # README.md, pyproject.toml, ...
        if path.is_file()
        and path.suffix in {"", ".py", ".yml", ".yaml", ".md", ".sh", ".json", ".toml"}
        and "DESIGN" + ".md" in path.read_text(encoding="utf-8", errors="replace")
    ]
    assert cited == []


def test_the_architecture_names_every_stage_module() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for module in sorted((ROOT / "src" / "gitops_mlops" / "stages").glob("*.py")):
        if module.stem != "__init__":
            assert f"stages/{module.name}" in text, module.name

"""The trigger registry: which stages `mlops run` runs for each GitHub event.

One table. The CLI's `--event` choices, `pipeline.run`, the report stage, the README's and
docs/architecture.md's trigger tables and the reusable workflow (.github/workflows/mlops.yml)
all follow it; tests/unit/test_triggers.py walks every entry and checks each of those.
Adding a trigger: one entry here, its branch in `pipeline.run`, its job or steps in the
reusable workflow, then `python -m gitops_mlops.triggers` prints the table for the docs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from gitops_mlops.errors import MlopsError

Stage = Literal["validate", "train", "evaluate", "gate", "build", "promote", "report"]
STAGES: tuple[Stage, ...] = ("validate", "train", "evaluate", "gate", "build", "promote", "report")
# `mlops run --until STAGE` stops after one of these (later stages depend on the event).
UNTIL: tuple[Stage, ...] = ("validate", "train", "evaluate", "gate")
DEFAULT_EVENT = "push"  # a laptop: what a push to the default branch would do


@dataclass(frozen=True)
class Trigger:
    event: str  # GITHUB_EVENT_NAME
    stages: tuple[Stage, ...]  # in order
    description: str  # what else happens, for the docs (Markdown)
    comments: bool = False  # the report becomes a sticky comment on the pull request

    def runs(self, stage: Stage) -> bool:
        return stage in self.stages

    @property
    def trains(self) -> bool:
        return self.runs("train")


TRIGGERS: Mapping[str, Trigger] = MappingProxyType(
    {
        trigger.event: trigger
        for trigger in (
            Trigger(
                "pull_request",
                ("validate", "train", "evaluate", "gate", "report"),
                "One sticky comment per model on the pull request (edited in place on later "
                "runs), the job summary, step outputs, an `::error` annotation on the spec line "
                "of each failed threshold; exit 4 fails the check. Needs no secrets: with a "
                "fork's read-only token the comment becomes a warning and the summary still "
                "has the report.",
                comments=True,
            ),
            Trigger(
                "push",
                ("validate", "train", "evaluate", "gate", "build", "promote", "report"),
                "Builds, smoke-tests and pushes the image, then promotes it to every environment "
                "with `on: push`. What the image needs and the machine lacks (a Docker engine, "
                "the base image, a registry) is a `skip` line saying how to get it, and "
                "promotion is skipped for want of a digest; `--strict` makes it exit 5, as a "
                "missing base image or registry always does under GitHub Actions. The default "
                "event outside GitHub Actions.",
            ),
            Trigger(
                "workflow_dispatch",
                ("validate", "promote"),
                "`--environment production [--version V]`: promotes what the `requires` "
                "environment runs (read from its release record), without retraining. When it "
                "has no release yet, exit 6 naming the pull request (or branch) to merge first.",
            ),
        )
    }
)
EVENTS: tuple[str, ...] = tuple(TRIGGERS)


def trigger_for(explicit: str | None, env: Mapping[str, str]) -> Trigger:
    """`--event`, else the workflow's GITHUB_EVENT_NAME, else push (a laptop)."""
    event = explicit or env.get("GITHUB_EVENT_NAME") or DEFAULT_EVENT
    trigger = TRIGGERS.get(event)
    if trigger is None:
        raise MlopsError(f"event {event!r} is not handled; use one of {', '.join(EVENTS)}")
    return trigger


def markdown_table() -> str:
    """The trigger table of the README and docs/architecture.md."""
    lines = ["| event | stages | what else |", "|---|---|---|"]
    for trigger in TRIGGERS.values():
        stages = " → ".join(trigger.stages)
        lines.append(f"| `{trigger.event}` | {stages} | {trigger.description} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover - a maintainer's helper
    print(markdown_table(), end="")

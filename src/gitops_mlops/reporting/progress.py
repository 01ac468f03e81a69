"""One line per stage with its time; a collapsible log group per stage under GitHub Actions."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TextIO

from gitops_mlops.reporting.github import annotation, endgroup, group, running_in_actions


class StageLine:
    """The outcome a stage's line shows: `ok` unless the stage raised or said it failed or
    only warned."""

    def __init__(self) -> None:
        self.failed = False
        self.warned = False

    def fail(self) -> None:
        """The stage ran to its end but its answer is a failure (a gate that failed)."""
        self.failed = True

    def warn(self) -> None:
        """The stage did not do its work, and the run goes on (a tracking server that is down):
        its line must not say `ok`."""
        self.warned = True


class Progress:
    def __init__(self, stream: TextIO, env: Mapping[str, str]) -> None:
        self.stream = stream
        self.grouped = running_in_actions(env)

    def note(self, text: str) -> None:
        print(f"  {text}", file=self.stream, flush=True)

    @contextmanager
    def stage(self, name: str) -> Iterator[StageLine]:
        if self.grouped:
            print(group(name), file=self.stream, flush=True)
        started = time.perf_counter()
        line = StageLine()
        outcome = "failed"
        try:
            yield line
            outcome = "failed" if line.failed else "warn" if line.warned else "ok"
        finally:
            if self.grouped:
                print(endgroup(), file=self.stream, flush=True)
            took = time.perf_counter() - started
            print(f"{name:<9} {outcome:<6} {took:6.2f} s", file=self.stream, flush=True)

    def cached(self, name: str, key: str) -> None:
        """A stage whose result came from the run cache (`key`: the entry, or empty)."""
        print(f"{name:<9} cached {key}".rstrip(), file=self.stream, flush=True)

    def warn(self, text: str) -> None:
        """A problem the run goes on despite; an annotation under GitHub Actions."""
        line = annotation("warning", text) if self.grouped else f"  warning: {text}"
        print(line, file=self.stream, flush=True)

    def skipped(self, name: str, why: str) -> None:
        print(f"{name:<9} {'skip':<6} {'':>8}  {why}", file=self.stream, flush=True)

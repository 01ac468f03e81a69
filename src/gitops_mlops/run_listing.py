"""`mlops runs`: the local run directories, newest first, each read through its records.

A run is listed whatever state it is in: complete, partial (a stage did not run or did not
finish: no model, no metrics) or damaged (a record that does not read, a symbolic link, a
record too large to be one). Reading one run never stops the listing of the others.

Only the newest `limit` runs are read: the order comes from the directory names
(`rundir.new_run_dir` stamps them) or, for other names, the directory's modification time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from gitops_mlops.errors import MlopsError
from gitops_mlops.records.metrics import Estimate
from gitops_mlops.reporting.escaping import terminal_text
from gitops_mlops.reporting.numbers import NONE, number, span
from gitops_mlops.rundir import RunDir

State = Literal["complete", "partial", "damaged"]
MAX_RECORD_BYTES = 16 << 20  # a run's JSON records are kilobytes; more is not one of ours
HEADLINE = 3  # metrics shown per run in the text table
_STAMP = re.compile(r"^(\d{8}T\d{6})(\d{6})Z$")


@dataclass(frozen=True)
class RunEntry:
    name: str  # the directory's name
    path: Path
    time: datetime  # UTC
    state: State
    problem: str | None = None  # what is missing or damaged
    model: str | None = None
    version: str | None = None
    task: str | None = None
    verdict: Literal["passed", "failed"] | None = None  # None: not gated
    metrics: Mapping[str, Estimate] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "run": self.name,
            "path": str(self.path),
            "time": self.time.isoformat().replace("+00:00", "Z"),
            "state": self.state,
            "problem": self.problem,
            "model": self.model,
            "version": self.version,
            "task": self.task,
            "verdict": self.verdict,
            "metrics": {name: e.to_json() for name, e in self.metrics.items()},
        }


@dataclass(frozen=True)
class Listing:
    parent: Path
    total: int  # runs found; `entries` holds the newest of them
    entries: tuple[RunEntry, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "directory": str(self.parent),
            "total": self.total,
            "runs": [e.to_json() for e in self.entries],
        }


def list_runs(parent: Path, limit: int) -> Listing:
    """The newest `limit` runs under `parent` (none when it does not exist)."""
    if parent.is_symlink():
        raise MlopsError(f"{parent} is a symbolic link; runs are not read through links")
    if not parent.is_dir():
        return Listing(parent, 0, ())
    found = sorted(
        ((_time_of(p), p) for p in parent.iterdir() if p.is_dir() or p.is_symlink()),
        key=lambda pair: (pair[0], pair[1].name),
        reverse=True,
    )
    return Listing(parent, len(found), tuple(read_entry(p, t) for t, p in found[:limit]))


def _time_of(path: Path) -> datetime:
    stamp = _STAMP.match(path.name)
    if stamp is not None:
        moment = datetime.strptime(stamp.group(1), "%Y%m%dT%H%M%S")
        return moment.replace(microsecond=int(stamp.group(2)), tzinfo=timezone.utc)
    return datetime.fromtimestamp(path.lstat().st_mtime, tz=timezone.utc)


def read_entry(path: Path, time: datetime) -> RunEntry:
    """One run, read as far as it goes; never raises for a damaged run."""
    base = RunEntry(path.name, path, time, "partial")
    if path.is_symlink():
        return _damaged(base, "a symbolic link; not read")
    run = RunDir(path)
    for file in (run.run_json, run.manifest_file, run.metrics, run.verdict):
        problem = _unreadable(file, run.root)
        if problem is not None:
            return _damaged(base, problem)
    try:
        return _read(base, run)
    except MlopsError as err:
        return _damaged(base, str(err))
    except OSError as err:  # unreadable: permissions, a file where a folder belongs, ...
        return _damaged(base, f"{err.filename or path}: {err.strerror or err}")


def _read(base: RunEntry, run: RunDir) -> RunEntry:
    if not run.run_json.is_file():
        return _partial(base, "no run.json: training did not start")
    run.read_run_info()  # checked: a damaged one makes the run damaged
    if not run.manifest_file.is_file():
        return _partial(base, "no model: training did not finish")
    model = run.read_model_summary()
    found = RunEntry(
        base.name, base.path, base.time, "partial", None, model.name, model.version, model.task
    )
    if not run.metrics.is_file():
        return _partial(found, "not evaluated: no metrics.json")
    measured = run.read_metrics().metrics
    verdict = run.find_verdict()
    passed: Literal["passed", "failed"] | None = None
    if verdict is not None:
        passed = "passed" if verdict.passed else "failed"
    return RunEntry(
        base.name,
        base.path,
        base.time,
        "complete",
        None,
        model.name,
        model.version,
        model.task,
        passed,
        measured,
    )


def _unreadable(file: Path, root: Path) -> str | None:
    """Why a record file must not be read: a link (it could lead anywhere), or too big."""
    if file.is_symlink():
        return f"{file.relative_to(root)} is a symbolic link; not read"
    try:
        size = file.stat().st_size
    except FileNotFoundError:
        return None
    if size > MAX_RECORD_BYTES:
        return f"{file.relative_to(root)} is {size} bytes, more than a record holds; not read"
    return None


def _partial(entry: RunEntry, problem: str) -> RunEntry:
    return RunEntry(**{**vars(entry), "state": "partial", "problem": problem})


def _damaged(entry: RunEntry, problem: str) -> RunEntry:
    return RunEntry(**{**vars(entry), "state": "damaged", "problem": problem})


# --- text ---------------------------------------------------------------------------------
def render_text(listing: Listing) -> str:
    if not listing.entries:
        return f"no runs in {listing.parent} (`mlops run` makes one)"
    rows = [("TIME (UTC)", "RUN", "MODEL", "VERSION", "VERDICT", "METRICS")]
    rows += [_row(e) for e in listing.entries]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r[:5], widths, strict=True)) + "  " + r[5]
        for r in rows
    ]
    lines = [line.rstrip() for line in lines]
    if listing.total > len(listing.entries):
        older = listing.total - len(listing.entries)
        lines.append(f"… {older} older run{'s' if older != 1 else ''} (--limit N shows more)")
    return "\n".join(lines)


def _row(entry: RunEntry) -> tuple[str, str, str, str, str, str]:
    when = entry.time.strftime("%Y-%m-%d %H:%M:%S")
    verdict: str
    if entry.state == "complete":
        verdict = entry.verdict or "not gated"
        shown = headline(entry.metrics)
    else:
        verdict, shown = entry.state, terminal_text(entry.problem or "")
    return (
        when,
        terminal_text(entry.name),
        terminal_text(entry.model or NONE),
        terminal_text(entry.version or NONE),
        verdict,
        shown,
    )


def headline(metrics: Mapping[str, Estimate], count: int = HEADLINE) -> str:
    """The first metrics with a value (latency aside): `accuracy 0.956 [0.911, 0.978]`."""
    shown: list[str] = []
    for name, estimate in metrics.items():
        if name.startswith("latency_") or estimate.value is None:
            continue
        text = f"{terminal_text(name)} {number(estimate.value)}"
        if estimate.ci_low is not None and estimate.ci_high is not None:
            text += " " + span(estimate.ci_low, estimate.ci_high)
        shown.append(text)
    return "; ".join(shown[:count])

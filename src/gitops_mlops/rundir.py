"""The run directory: one folder per run holding every artifact of DESIGN.md §3."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gitops_mlops.errors import MlopsError

DEFAULT_PARENT = Path(".mlops") / "runs"


@dataclass(frozen=True)
class RunDir:
    root: Path

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def model_file(self) -> Path:
        return self.model_dir / "model.skops"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def verdict(self) -> Path:
        return self.root / "verdict.json"

    @property
    def report(self) -> Path:
        return self.root / "report.md"

    @property
    def run_json(self) -> Path:
        return self.root / "run.json"

    def spec_path(self) -> Path:
        """The spec this run was made from (recorded by `mlops train`)."""
        return Path(read_json(self.run_json, "run.json")["spec"])


def new_run_dir(out: Path | None) -> RunDir:
    if out is not None:
        return RunDir(out)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    return RunDir(DEFAULT_PARENT / stamp)


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n")
    tmp.replace(path)  # readers never see half a file


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise MlopsError(f"{path}: no {what}; run the earlier stages first (`mlops run`)") from None
    except json.JSONDecodeError as err:
        raise MlopsError(f"{path}: {what} is not valid JSON ({err})") from None

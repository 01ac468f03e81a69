"""One table for a workflow run that handled many models.

Each model job of the matrix leaves the small JSON files of its run directory (the manifest,
verdict, build and promotion records) in a folder named after the model; this reads every
such folder and gives the `models` output (name -> version, verdict, image digest, pull
request) and the markdown table of the job summary. The folders come from workflow
artifacts, so each file is size-capped and read leniently: a missing or damaged file leaves
its cells empty, never fails the summary.

It needs nothing but the standard library, so the workflow's summary job runs it straight
from the action's checkout (`python3 -m gitops_mlops.fleet.summary DIR`) without installing
the package and its machine-learning dependencies.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from gitops_mlops.reporting.github import append_summary, running_in_actions, write_outputs
from gitops_mlops.reporting.numbers import NONE

FILE_LIMIT = 1 << 20
FILES = ("model/manifest.json", "verdict.json", "build.json", "promotion.json")


def _read(path: Path) -> dict[str, Any]:
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > FILE_LIMIT:
            return {}
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _text(value: object) -> str:
    return "" if value is None else str(value)


def row(folder: Path) -> dict[str, str]:
    manifest, verdict, build, promotion = (_read(folder / name) for name in FILES)
    passed = verdict.get("passed")
    pull = promotion.get("pull_request")
    url = pull.get("url") if isinstance(pull, dict) else None
    if url is None and promotion.get("changed"):
        url = f"branch {promotion.get('branch')}"  # a local GitOps repository
    return {
        "version": _text(manifest.get("model_version")),
        "verdict": "" if passed is None else "passed" if passed else "failed",
        "image-digest": _text(build.get("digest")),
        "image": _text(build.get("image")),
        "pr-url": _text(url),
    }


def collect(results: Path) -> dict[str, dict[str, str]]:
    """model name -> its row, for every folder under `results`, in name order."""
    if not results.is_dir():
        return {}
    folders = sorted(p for p in results.iterdir() if p.is_dir() and not p.is_symlink())
    return {folder.name: row(folder) for folder in folders}


def markdown(models: dict[str, dict[str, str]]) -> str:
    if not models:
        return "### Models\n\nNo model was affected by this change: nothing ran.\n"
    lines = [
        "### Models",
        "",
        "| model | verdict | version | image | promotion |",
        "|---|---|---|---|---|",
    ]
    for name, cells in models.items():
        verdict = {"passed": "✅ passed", "failed": "❌ failed"}.get(cells["verdict"], NONE)
        image = f"`{cells['image']}@{cells['image-digest']}`" if cells["image-digest"] else NONE
        lines.append(
            f"| {name} | {verdict} | {cells['version'] or NONE} | {image} | "
            f"{cells['pr-url'] or NONE} |"
        )
    return "\n".join(lines) + "\n"


def output(models: dict[str, dict[str, str]]) -> str:
    """The `models` output: name -> {version, verdict, image-digest, pr-url}."""
    keys = ("version", "verdict", "image-digest", "pr-url")
    return json.dumps({n: {k: c[k] for k in keys} for n, c in models.items()}, sort_keys=True)


def publish(results: Path, env: Mapping[str, str], out: TextIO) -> int:
    """Print the table; under GitHub Actions also the job summary and the `models` output."""
    models = collect(results)
    text = markdown(models)
    print(text, file=out)
    if running_in_actions(env):
        append_summary(env, text)
        write_outputs(env, {"models": output(models)})
    return 0


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1:
        print("usage: python3 -m gitops_mlops.fleet.summary RESULTS_DIR", file=sys.stderr)
        return 2
    return publish(Path(argv[0]), os.environ, sys.stdout)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

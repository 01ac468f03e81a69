"""Where a repository's specs are, and which files each spec's folder holds.

Pure, over git's list of tracked files (repository-relative, '/'-separated). A file belongs
to the folder of the nearest spec above it: a spec at the repository root, or one whose
folder holds other models' folders, does not own what a nested spec owns (as a package owns
its files in Bazel, or a folder its CODEOWNERS entry). Planning and the run cache both read
folders this way, so a change that plans a model is one its cache key sees.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import PurePosixPath

from gitops_mlops.errors import MlopsError
from gitops_mlops.globs import under

SPEC_NAME = "mlops.yaml"
RUN_FOLDER = ".mlops"
MAX_SPECS = 1000  # a matrix takes at most 256 jobs; far past that is a mistake, not a fleet


def discover(tracked: Iterable[str]) -> list[str]:
    """Tracked spec files, outside run folders, in path order."""
    found = [
        p
        for p in tracked
        if PurePosixPath(p).name == SPEC_NAME and RUN_FOLDER not in PurePosixPath(p).parts
    ]
    if len(found) > MAX_SPECS:
        raise MlopsError(
            f"{len(found)} files named {SPEC_NAME} are tracked; plan handles at most {MAX_SPECS}"
        )
    return sorted(found)


def folder_of(spec: str) -> str:
    """The spec's folder; '' for a spec at the repository root. (String work, not
    PurePosixPath: a plan asks this for every pair of specs.)"""
    return spec.rpartition("/")[0]


def nested(spec: str, specs: Iterable[str]) -> tuple[str, ...]:
    """The folders of the other specs below this spec's folder: what it does not own."""
    mine = folder_of(spec)
    return tuple(
        sorted(
            folder
            for other in specs
            if (folder := folder_of(other)) != mine and under(mine, folder)
        )
    )


def owns(folder: str, inner: Sequence[str], path: str) -> bool:
    """Whether `path` is in `folder` and in none of the `inner` spec folders below it."""
    return under(folder, path) and not any(under(f, path) for f in inner)


def folder_files(spec: str, tracked: Sequence[str]) -> list[str]:
    """The tracked files the spec's folder owns, the spec itself and run folders left out."""
    folder, inner = folder_of(spec), nested(spec, discover(tracked))
    return [
        p
        for p in tracked
        if p != spec and owns(folder, inner, p) and RUN_FOLDER not in PurePosixPath(p).parts
    ]

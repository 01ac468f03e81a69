"""The run cache: never retrain what has not changed.

The key is a digest of everything that determines the trained model and its metrics: the
spec's `task`, `data`, `model` and `evaluation` sections in canonical form, the bytes of the
data files, of the training command's files and of the files `inputs:` matches, and the
versions of Python and the packages that train and measure. Thresholds, the container and
promotion do not enter it: changing them gates the same model again.

An entry is `model/` (the bundle) plus `metrics.json` and, when evaluate wrote it,
`predictions.npz` (the champion comparison pairs with it), under `<dir>/v1/<key>/`, with
`entry.json` listing every file's sha256. It is written in a private folder and renamed into
place (readers see a whole entry or none), and verified on the way out: a corrupt, partial
or foreign entry is a miss, never a crash. The cache may be shared (actions/cache restores
what another run wrote), so an entry is read only from real files inside it: a symbolic
link anywhere in it, or a listing naming anything but the bundle, the metrics and the
predictions, is a miss.
A cache directory that cannot be written (read only, full) costs the store, not the run.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, is_dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from gitops_mlops import bundle, globs
from gitops_mlops.errors import MlopsError
from gitops_mlops.fleet import layout
from gitops_mlops.integrations import git
from gitops_mlops.records.metrics import Metrics
from gitops_mlops.records.run import RunInfo
from gitops_mlops.rundir import RunDir
from gitops_mlops.spec.model import Spec

FORMAT = "v1"
ENTRY_FILE = "entry.json"
KEY_PACKAGES = ("scikit-learn", "numpy", "scipy", "pandas", "skops", "gitops-mlops")
_HEX = frozenset("0123456789abcdef")
MAX_LISTING = 1 << 20  # bytes of entry.json: a bundle lists a handful of files


def canonical(value: Any) -> Any:
    """Plain JSON for a spec section: dataclasses as mappings, tuples as lists."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: canonical(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    return value


@lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in KEY_PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "absent"
    return found


@lru_cache(maxsize=1)
def _distributions() -> Mapping[str, list[str]]:
    return metadata.packages_distributions()


def module_versions(modules: Iterable[str]) -> dict[str, str]:
    """`model.allow_modules` with the installed distributions that provide each (a model
    built from a package's classes changes with its version); "absent" when none does."""
    found = {}
    for module in modules:
        names = sorted(set(_distributions().get(module.split(".")[0], [])))
        found[module] = ",".join(f"{n}-{metadata.version(n)}" for n in names) or "absent"
    return found


def dependency_files(spec: Spec, repo_root: Path, tracked: Iterable[str]) -> list[str]:
    """Repository-relative files whose bytes determine the model: data, trainer, inputs.

    A `model.command` trainer imports its own modules and reads its own files: every
    tracked file its spec's folder owns is the trainer's.
    """
    found: set[str] = set()
    tracked = list(tracked)
    root = repo_root.resolve()
    candidates = [d.path for d in (spec.data.train, spec.data.test) if d and d.path]
    candidates += list(spec.model.command or ())  # the program and arguments naming files
    for value in candidates:
        path = (spec.root / value).resolve()
        if path.is_file() and path.is_relative_to(root):
            found.add(path.relative_to(root).as_posix())
    if spec.model.command:
        here = (spec.root.resolve() / spec.file.name).relative_to(root).as_posix()
        found.update(layout.folder_files(here, tracked))
    found.update(globs.select(spec.inputs, tracked))
    return sorted(found)


def file_digests(
    repo_root: Path, paths: Iterable[str], memo: dict[str, str] | None = None
) -> dict[str, str]:
    """sha256 of each file; `memo` shares them between specs (a plan of many specs that
    use one shared library hashes each of its files once)."""
    memo = {} if memo is None else memo
    digests = {}
    for path in paths:
        if path not in memo:
            memo[path] = _content_digest(repo_root / path)
        digests[path] = memo[path]
    return digests


def _content_digest(file: Path) -> str:
    """What git stores for the path: a link's target text (never followed: it may point out
    of the repository, and retargeting it is a change), a file's bytes; a tracked file
    deleted in the work tree is "absent"."""
    if file.is_symlink():
        return "link:" + hashlib.sha256(str(file.readlink()).encode()).hexdigest()
    return _sha(file) if file.is_file() else "absent"


def _sha(path: Path) -> str:
    return bundle.sha256_file(path)


def cache_key(
    spec: Spec, repo_root: Path, tracked: Iterable[str], memo: dict[str, str] | None = None
) -> str:
    files = dependency_files(spec, repo_root, tracked)
    material = {
        "format": FORMAT,
        "task": spec.task,
        "data": canonical(spec.data),
        "model": canonical(spec.model),
        "evaluation": canonical(spec.evaluation),
        "files": file_digests(repo_root, files, memo),
        "versions": versions(),
        "allowed": module_versions(spec.model.allow_modules),
    }
    text = json.dumps(material, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Lookup:
    hit: bool
    why: str  # on a miss: what was wrong with the entry, or "no entry"


@dataclass(frozen=True)
class RunCache:
    root: Path

    def entry(self, key: str) -> Path:
        if len(key) != 64 or not set(key) <= _HEX:
            raise MlopsError(f"cache key {key!r} is not a sha256 hex digest")
        return self.root / FORMAT / key

    def restore(self, key: str, run: RunDir) -> Lookup:
        """Copy the entry for `key` into `run` when it is whole and verified."""
        folder = self.entry(key)
        if not folder.is_symlink() and not folder.is_dir():
            return Lookup(False, "no entry")
        try:
            _no_links(self.root, folder)
            listed = _listing(folder)
            if run.root.exists():
                shutil.rmtree(run.model_dir, ignore_errors=True)
            for name, digest in listed.items():
                _copy_verified(folder / name, run.root / name, digest)
            bundle.read_manifest(run.model_dir)  # the bundle's own digests, like any model
        except (OSError, ValueError, KeyError, TypeError, MlopsError) as err:
            shutil.rmtree(run.model_dir, ignore_errors=True)
            run.metrics.unlink(missing_ok=True)
            run.predictions.unlink(missing_ok=True)
            return Lookup(False, f"unusable entry: {err}")
        return Lookup(True, "")

    def store(self, key: str, run: RunDir) -> str | None:
        """Add the run's bundle and metrics under `key`; None, or why it was not stored."""
        final = self.entry(key)
        if final.is_dir():
            return None
        names = [f"model/{p.name}" for p in sorted(run.model_dir.iterdir()) if p.is_file()]
        names.append("metrics.json")
        if run.predictions.is_file():
            names.append(run.predictions.name)
        tmp: Path | None = None
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=final.parent))
            listed = {}
            for name in names:
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(run.root / name, tmp / name)
                listed[name] = _sha(tmp / name)
            _write_synced(tmp / ENTRY_FILE, json.dumps({"key": key, "files": listed}, indent=1))
            tmp.rename(final)  # atomic: a reader sees the whole entry or none
            tmp = None
        except OSError as err:
            if final.is_dir():  # another run stored the same key meanwhile
                return None
            return f"{err.strerror or err} ({final.parent})"
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
        return None


def _no_links(root: Path, folder: Path) -> None:
    """Refuse an entry with a symbolic link in it or on the way to it (below `root`, the
    cache folder the caller chose): a link could restore, and later ship, any file."""
    on_the_way = [folder.parent, folder]
    inside = [Path(top) / name for top, dirs, files in os.walk(folder) for name in dirs + files]
    for path in on_the_way + inside:
        if path.is_symlink():
            raise ValueError(f"{path.relative_to(root)} is a symbolic link")


def _listing(folder: Path) -> dict[str, str]:
    raw = json.loads(_read_limited(folder / ENTRY_FILE, MAX_LISTING).decode("utf-8"))
    files = raw["files"]
    if raw.get("key") != folder.name or not isinstance(files, dict):
        raise ValueError("entry.json does not describe this entry")
    needed = {"metrics.json", f"model/{bundle.MODEL_FILE}", f"model/{bundle.MANIFEST_FILE}"}
    if not needed <= set(files):
        raise ValueError(f"entry.json lacks {', '.join(sorted(needed - set(files)))}")
    for name, digest in files.items():
        if not _restorable(name):
            raise ValueError(
                f"entry.json names {name!r}; an entry holds only model/, metrics.json and "
                "predictions.npz"
            )
        if not isinstance(digest, str) or len(digest) != 64 or not set(digest) <= _HEX:
            raise ValueError(f"entry.json gives {name!r} no sha256 digest")
    return {str(k): str(v) for k, v in files.items()}


def _restorable(name: object) -> bool:
    """The metrics, the predictions, or a file directly in the bundle: what a run restores
    from the cache."""
    if not isinstance(name, str):
        return False
    parts = name.split("/")
    plain = all(p not in ("", ".", "..") and "\\" not in p for p in parts)
    alone = parts in (["metrics.json"], ["predictions.npz"])
    return plain and (alone or (len(parts) == 2 and parts[0] == "model"))


def _read_limited(path: Path, limit: int) -> bytes:
    with path.open("rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{path.name} is larger than {limit} bytes")
    return data


def _copy_verified(source: Path, target: Path, digest: str) -> None:
    """Copy `source` (never through a link) to `target`, hashing what was copied: the bytes
    checked are the bytes restored, even if the entry changes meanwhile."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(source, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    sha = hashlib.sha256()
    with os.fdopen(fd, "rb") as reader, target.open("wb") as writer:
        for block in iter(lambda: reader.read(1 << 20), b""):
            sha.update(block)
            writer.write(block)
    if sha.hexdigest() != digest:
        raise ValueError(f"{source.name} differs from its digest")


def _write_synced(path: Path, text: str) -> None:
    with path.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def repository_files(spec: Spec) -> tuple[Path, list[str]]:
    """The repository holding the spec and its tracked files (outside git: the spec's folder
    and the files under it)."""
    root = git.work_tree_root(spec.root)
    if root is not None:
        return root, git.tracked_files(root)
    files = sorted(
        p.relative_to(spec.root).as_posix()
        for p in spec.root.rglob("*")
        if p.is_file() and ".mlops" not in p.relative_to(spec.root).parts
    )
    return spec.root, files


def key_for(spec: Spec) -> str:
    root, tracked = repository_files(spec)
    return cache_key(spec, root, tracked)


@dataclass(frozen=True)
class Restored:
    version: str
    metrics: Metrics


def restore(folder: Path, key: str, spec: Spec, run: RunDir) -> Restored | Lookup:
    """The version and metrics of the entry restored into `run`, or the miss and why.

    The bundle's provenance is this run's: the same model may come from a spec that differs
    in what the key ignores (thresholds, promotion) or from another commit.
    """
    found = RunCache(folder).restore(key, run)
    if not found.hit:
        return found
    manifest = bundle.read_manifest(run.model_dir)
    manifest.pop("files", None)
    manifest |= {
        "name": spec.metadata.name,
        "spec_digest": f"sha256:{spec.digest}",
        "git_commit": git.head_commit(spec.root),
        "cache_key": key,
    }
    bundle.write_manifest(run.model_dir, manifest)
    run.write_run_info(RunInfo(spec.file.resolve(), spec.digest))
    return Restored(str(manifest["model_version"]), run.read_metrics())


def store(folder: Path, key: str, run: RunDir) -> str | None:
    return RunCache(folder).store(key, run)

"""The champion's model, to re-evaluate it on the candidate's test rows.

Where it comes from:

- A release record (the gate's champion): the model file inside the released image, read
  from its registry over the distribution API by the image digest the record pins (no
  Docker engine). The serving image copies the bundle to `/model/` in its last layer, so
  this costs one manifest and one blob request of about the model's size, and what is
  compared is exactly what serves: no second copy of the model is pushed that could
  drift from the image.
- Locally, `--champion` naming a run directory or a model bundle (`model.skops` beside its
  `manifest.json`).

Integrity before anything is deserialised: the file's sha256 must equal the digest in the
release record (for a folder: its manifest's). A mismatch is an error (`UntrustedModel`,
exit 1), never a fallback: it means the registry, the cache or the record was tampered
with. The bytes that were hashed are the bytes that are loaded, with the exact trusted
types of the spec's `model.allow_modules` (`serving.model.load_trusted`).

What cannot be had is `ChampionUnavailable`, and the comparison falls back to the
champion's recorded metrics, saying why: no digest in an older record, a registry that does
not answer or refuses (a fork's pull request has no registry login), an image without the
model file, a model whose types this spec does not trust.

Models read from a registry are cached by digest (`~/.cache/gitops-mlops/champions/`, or
`$XDG_CACHE_HOME`, or `MLOPS_CHAMPION_CACHE`); a cached file is hashed again on every use,
and one that no longer matches is fetched again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops_mlops import bundle
from gitops_mlops.bundle import UntrustedModel
from gitops_mlops.errors import MlopsError
from gitops_mlops.records.release import ReleaseRecord

IMAGE_MODEL_DIR = "model"  # the serving image's /model (stages/build.py copies the bundle)
MODEL_LIMIT = 1 << 30  # bytes of model file read from a registry
MANIFEST_LIMIT = 16 << 20
_DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")


class ChampionUnavailable(MlopsError):
    """The champion's model cannot be had, or cannot score the candidate's rows: the
    comparison falls back to its recorded metrics and says why."""


@dataclass(frozen=True)
class ChampionModel:
    model: Any
    manifest: Mapping[str, Any]  # its bundle's manifest: features, task, classes (not trusted)
    digest: str  # sha256:… of the model file, checked
    source: str  # where it was read, for the report
    cached: bool  # read from the local cache
    seconds: float  # to fetch (or read) and load it


def cache_root(env: Mapping[str, str]) -> Path:
    if env.get("MLOPS_CHAMPION_CACHE"):
        return Path(env["MLOPS_CHAMPION_CACHE"])
    base = Path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "gitops-mlops" / "champions"


def from_release(
    record: ReleaseRecord, allow_modules: tuple[str, ...], env: Mapping[str, str]
) -> ChampionModel:
    """The model the record's image serves, checked against the record's model digest."""
    started = time.perf_counter()
    digest = record.model_digest or ""
    match = _DIGEST.match(digest)
    if match is None:
        raise ChampionUnavailable(
            f"the release record of {record.environment} names no model digest "
            "(sha256:<hex>), so its model cannot be checked"
        )
    folder = cache_root(env) / match[1]
    cached = _read_cached(folder, digest)
    if cached is not None:
        data, manifest = cached
        source = f"{record.image} (cached)"
    else:
        data, manifest = _from_registry(record, env)
        _check(data, digest, f"{record.image}: /{IMAGE_MODEL_DIR}/{bundle.MODEL_FILE}")
        _store(folder, data, manifest)
        source = record.image
    model = _load(folder / bundle.MODEL_FILE, data, allow_modules, source)
    return ChampionModel(
        model,
        _manifest(manifest, source),
        digest,
        source,
        cached is not None,
        time.perf_counter() - started,
    )


def from_folder(path: Path, allow_modules: tuple[str, ...]) -> ChampionModel:
    """A run directory's model, or a bundle folder's: checked against its manifest."""
    from gitops_mlops.serving.model import verified_bytes
    from gitops_mlops.serving.trust import UntrustedModelError

    started = time.perf_counter()
    folder = path / "model" if (path / "model" / bundle.MANIFEST_FILE).is_file() else path
    if not (folder / bundle.MANIFEST_FILE).is_file():
        raise MlopsError(
            f"{path}: not a run directory or a model bundle (no {bundle.MANIFEST_FILE}); "
            "--champion takes a release record, a run directory or a model bundle folder"
        )
    try:
        manifest, data = verified_bytes(folder)
    except UntrustedModelError as err:
        raise UntrustedModel(str(err)) from None
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    model = _load(folder / bundle.MODEL_FILE, data, allow_modules, str(folder))
    return ChampionModel(model, manifest, digest, str(folder), False, time.perf_counter() - started)


def _check(data: bytes, digest: str, where: str) -> None:
    actual = "sha256:" + hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise UntrustedModel(
            f"{where}: refusing the champion's model: its sha256 is {actual}, but the release "
            f"record names {digest}. The image or the record was changed after the release; "
            "check the GitOps repository's history and the registry"
        )


def _from_registry(record: ReleaseRecord, env: Mapping[str, str]) -> tuple[bytes, bytes]:
    from gitops_mlops.integrations.registry import Reference, Registry, RegistryError

    try:
        reference = Reference.parse(record.image)
        if reference.digest is None:
            raise ChampionUnavailable(f"{record.image} is not pinned by digest")
        registry = Registry(reference.registry, env)
        wanted = (
            f"{IMAGE_MODEL_DIR}/{bundle.MODEL_FILE}",
            f"{IMAGE_MODEL_DIR}/{bundle.MANIFEST_FILE}",
        )
        files = registry.read_image_files(
            reference.repository, reference.digest, wanted, MODEL_LIMIT
        )
    except RegistryError as err:
        raise ChampionUnavailable(f"cannot fetch the champion's model: {err}") from None
    if len(files[wanted[1]]) > MANIFEST_LIMIT:
        raise ChampionUnavailable(f"{record.image}: its manifest.json is over {MANIFEST_LIMIT}")
    return files[wanted[0]], files[wanted[1]]


def _read_cached(folder: Path, digest: str) -> tuple[bytes, bytes] | None:
    """The cached model and manifest, when the model still hashes to `digest` (never
    through a symbolic link: a link is a miss, and the entry is fetched again)."""
    try:
        if folder.is_symlink():
            raise OSError(f"{folder} is a symbolic link")
        data = _read_no_link(folder / bundle.MODEL_FILE, MODEL_LIMIT)
        manifest = _read_no_link(folder / bundle.MANIFEST_FILE, MANIFEST_LIMIT)
    except OSError:  # missing, partial, or a link: make room for a fresh fetch
        if folder.is_symlink():
            folder.unlink()
        else:
            shutil.rmtree(folder, ignore_errors=True)
        return None
    if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
        shutil.rmtree(folder, ignore_errors=True)  # damaged: fetch it again
        return None
    return data, manifest


def _read_no_link(path: Path, limit: int) -> bytes:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise OSError(f"{path} is over {limit} bytes")
    return data


def _store(folder: Path, data: bytes, manifest: bytes) -> None:
    """Cache the files under their digest (a private folder renamed into place); a cache
    that cannot be written costs the next run a fetch, not this one."""
    tmp: Path | None = None
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".fetch-", dir=folder.parent))
        (tmp / bundle.MODEL_FILE).write_bytes(data)
        (tmp / bundle.MANIFEST_FILE).write_bytes(manifest)
        tmp.rename(folder)
        tmp = None
    except OSError:
        pass
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _load(path: Path, data: bytes, allow_modules: tuple[str, ...], source: str) -> Any:
    from gitops_mlops.serving.model import load_trusted
    from gitops_mlops.serving.trust import UntrustedModelError

    try:
        return load_trusted(path, allow_modules, data)
    except UntrustedModelError as err:
        raise ChampionUnavailable(
            f"the champion's model ({source}) is not loaded with this spec's trusted types: {err}"
        ) from None


def _manifest(raw: bytes, source: str) -> dict[str, Any]:
    try:
        loaded = json.loads(raw)
    except (ValueError, RecursionError):
        raise ChampionUnavailable(f"{source}: the champion's manifest.json is not JSON") from None
    if not isinstance(loaded, dict):
        raise ChampionUnavailable(f"{source}: the champion's manifest.json is not an object")
    return loaded

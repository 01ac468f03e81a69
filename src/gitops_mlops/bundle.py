"""The model bundle: `model/model.skops` plus `model/manifest.json`.

skops never unpickles: loading names every type the file will build, and we build only types
from trusted modules. Its archive is made canonical (entries renamed and ordered by first use,
fixed timestamps, object ids renumbered) so the same model gives the same bytes, and the model
version, a prefix of the bundle digest, is stable across reruns.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gitops_mlops.errors import MlopsError

MODEL_FILE = "model.skops"
MANIFEST_FILE = "manifest.json"
VERSION_LENGTH = 12
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_IDS = re.compile(rb'("__id__": )(\d+)|"(\d+)\.npy"')


class UntrustedModel(MlopsError):
    """A model file that would build types from modules we do not trust."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def canonical_skops(raw: bytes) -> bytes:
    """The same archive with ids, names, order and timestamps made deterministic."""
    source = zipfile.ZipFile(io.BytesIO(raw))
    schema = source.read("schema.json")
    numbers: dict[bytes, bytes] = {}

    def renumber(match: re.Match[bytes]) -> bytes:
        old = match[2] or match[3]
        new = numbers.setdefault(old, str(len(numbers) + 1).encode())
        return match[1] + new if match[2] else b'"' + new + b'.npy"'

    schema = _IDS.sub(renumber, schema)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as target:
        entries = [("schema.json", schema)]
        for info in source.infolist():
            if info.filename != "schema.json":
                stem = info.filename.removesuffix(".npy").encode()
                entries.append((numbers[stem].decode() + ".npy", source.read(info)))
        for name, data in sorted(entries):
            target.writestr(zipfile.ZipInfo(name, _ZIP_EPOCH), data)
    return out.getvalue()


def save_model(model: Any, path: Path) -> str:
    """Write `model` as canonical skops; return the file's sha256."""
    import skops.io

    data = canonical_skops(skops.io.dumps(model))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def load_model(path: Path, allow_modules: tuple[str, ...] = ()) -> Any:
    """Load a skops model, building only types from trusted modules (the server's loader)."""
    from gitops_mlops.serving.model import UntrustedModelError, load_trusted

    if not path.is_file():
        raise MlopsError(f"{path}: model file not found")
    try:
        return load_trusted(path, allow_modules)
    except UntrustedModelError as err:
        raise UntrustedModel(str(err)) from None


def model_version(model_digest: str) -> str:
    """Content-addressed version: the same model bytes always give the same version."""
    return model_digest[:VERSION_LENGTH]


def write_manifest(folder: Path, fields: Mapping[str, Any]) -> dict[str, Any]:
    """manifest.json with the sha256 of every file in the bundle folder, plus `fields`."""
    files = {
        p.name: sha256_file(p)
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != MANIFEST_FILE
    }
    manifest = {**fields, "files": files}
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST_FILE
    try:
        loaded: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise MlopsError(f"{path}: not found; run `mlops train` first") from None
    except json.JSONDecodeError as err:
        raise MlopsError(f"{path}: not valid JSON ({err})") from None
    for name, digest in loaded.get("files", {}).items():
        if sha256_file(folder / name) != digest:
            raise MlopsError(f"{folder / name}: sha256 differs from the manifest; retrain")
    return loaded

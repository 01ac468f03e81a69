"""The model bundle: `model/model.skops` plus `model/manifest.json`.

skops never unpickles: loading names every type the file will build, and we build only the
exact types `serving.trust` accepts, after checking the file's sha256 against the manifest
(`load_verified`, `served`, `check_model`). Its archive is made canonical (entries renamed and
ordered by first use, fixed timestamps, object ids renumbered) so the same model gives the
same bytes, and the model version, a prefix of the bundle digest, is stable across reruns.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import pickle
import re
import subprocess
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from gitops_mlops.errors import MlopsError
from gitops_mlops.serving.trust import UntrustedModelError

if TYPE_CHECKING:
    from gitops_mlops.serving.model import ServedModel

MODEL_FILE = "model.skops"
MANIFEST_FILE = "manifest.json"
VERSION_LENGTH = 12
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
HELPER_TIMEOUT = 600  # seconds for the helper to write a model; then this process does it
_NPY = re.compile(r"\d+\.npy")


class UntrustedModel(MlopsError):
    """A model refused: its file does not match its manifest, or it would build types we do
    not trust. Not a bug: the message says what was refused and why."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def canonical_skops(raw: bytes) -> bytes:
    """The same archive with ids, names, order and timestamps made deterministic.

    skops numbers objects by `id()`: those become 1, 2, … in order of appearance, and the
    array files are renamed to match. Primitives (JSON nodes) each get their own number:
    whether two fields share one float object (a shared default, or not after a pickle
    round trip) changes nothing about the model, so it must not change the bytes.
    """
    source = zipfile.ZipFile(io.BytesIO(raw))
    numbers: dict[str, int] = {}
    counter = itertools.count(1)

    def number(old: str, own: bool) -> int:
        if own:
            return next(counter)
        if old not in numbers:
            numbers[old] = next(counter)
        return numbers[old]

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if isinstance(node, str) and _NPY.fullmatch(node):
            return f"{number(node.removesuffix('.npy'), own=False)}.npy"
        if not isinstance(node, dict):
            return node
        return {
            key: number(str(value), own=node.get("is_json") is True)
            if key == "__id__"
            else walk(value)
            for key, value in node.items()
        }

    schema = json.dumps(walk(json.loads(source.read("schema.json"))), indent=2).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as target:
        entries = [("schema.json", schema)]
        for info in source.infolist():
            if info.filename != "schema.json":
                stem = info.filename.removesuffix(".npy")
                entries.append((f"{numbers[stem]}.npy", source.read(info)))
        for name, data in sorted(entries):
            target.writestr(zipfile.ZipInfo(name, _ZIP_EPOCH), data)
    return out.getvalue()


def save_model(model: Any, path: Path) -> str:
    """Write `model` as canonical skops; return the file's sha256."""
    from gitops_mlops.serving.model import import_skops

    data = canonical_skops(import_skops().dumps(model))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


class ModelWriter:
    """Writes model.skops from a helper process that imports skops while the model trains.

    Importing skops takes ~0.3 s (it looks up the module of every SciPy ufunc by scanning all
    loaded modules), over a tenth of a small training run. A helper started before training
    pays that on another core; at save time the model reaches it pickled over a pipe (from
    this process to its own child: nothing untrusted is unpickled) and it writes the bytes
    `save_model` would. If the helper cannot start or fails, this process saves the model.
    """

    def __init__(self) -> None:
        self._helper: subprocess.Popen[bytes] | None
        try:
            self._helper = subprocess.Popen(
                [sys.executable, "-m", "gitops_mlops.bundle"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
        except OSError:
            self._helper = None

    def __enter__(self) -> ModelWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def save(self, model: Any, path: Path) -> str:
        """Write `model` as canonical skops at `path`; return the file's sha256."""
        helper, self._helper = self._helper, None
        if helper is not None:
            try:
                payload = pickle.dumps((model, str(path)), protocol=pickle.HIGHEST_PROTOCOL)
                out, _ = helper.communicate(payload, timeout=HELPER_TIMEOUT)
                if helper.returncode == 0 and path.is_file():
                    return out.decode().strip()
            except (OSError, pickle.PicklingError, TypeError, AttributeError):
                pass  # e.g. a model that cannot be pickled: save it here instead
            except subprocess.TimeoutExpired:
                helper.kill()
                helper.wait()
        return save_model(model, path)

    def close(self) -> None:
        if self._helper is not None:  # never used (training failed): stop it
            self._helper.kill()
            self._helper.wait()
            self._helper = None


def _helper_main() -> NoReturn:
    """The helper's side: import skops at once, then save the model that arrives on stdin."""
    from gitops_mlops.serving.model import import_skops

    import_skops()
    model, path = pickle.loads(sys.stdin.buffer.read())  # noqa: S301 - from our parent process
    sys.stdout.write(save_model(model, Path(path)))
    sys.stdout.flush()
    # The parent waits for our exit: skip unloading SciPy and scikit-learn (~0.3 s).
    os._exit(0)


def load_model(path: Path, allow_modules: tuple[str, ...] = ()) -> Any:
    """Load a skops file that has no manifest yet (a training command's output), building
    only trusted types. Files of a bundle are loaded with `load_verified`."""
    from gitops_mlops.serving.model import load_trusted

    if not path.is_file():
        raise MlopsError(f"{path}: model file not found")
    try:
        return load_trusted(path, allow_modules)
    except UntrustedModelError as err:
        raise UntrustedModel(str(err)) from None


def served(folder: Path, allow_modules: tuple[str, ...]) -> ServedModel:
    """The bundle's model as the server loads it: its sha256 checked against the manifest
    before it is read, then built with the types `allow_modules` (the spec's) trusts."""
    from gitops_mlops.serving import model

    try:
        _check_recorded(model.read_manifest(folder), allow_modules, folder)
        return model.load(folder, allow_modules)
    except UntrustedModelError as err:
        raise UntrustedModel(str(err)) from None


def load_verified(folder: Path, allow_modules: tuple[str, ...]) -> Any:
    """The bundle's model object (see `served`)."""
    return served(folder, allow_modules).model


def check_model(folder: Path, allow_modules: tuple[str, ...]) -> dict[str, Any]:
    """The manifest, once the model matches it and would build only trusted types (nothing
    is deserialised): for commands that hand the bundle to a server or an image."""
    from gitops_mlops.serving import model

    manifest = read_manifest(folder)  # every file of the bundle, not only the model
    try:
        model.check(folder, allow_modules)
    except UntrustedModelError as err:
        raise UntrustedModel(str(err)) from None
    _check_recorded(manifest, allow_modules, folder)
    return manifest


def _check_recorded(
    manifest: Mapping[str, Any], allow_modules: tuple[str, ...], folder: Path
) -> None:
    """The server trusts the manifest's allow_modules: it may not list more than the spec."""
    from gitops_mlops.serving.model import allowed_in

    extra = [m for m in allowed_in(dict(manifest)) if m not in allow_modules]
    if extra:
        raise UntrustedModel(
            f"{folder / MANIFEST_FILE}: refusing the model: its manifest trusts modules the "
            f"spec's model.allow_modules does not list ({', '.join(extra)}); retrain with "
            "this spec"
        )


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
    if not isinstance(loaded, dict) or not isinstance(loaded.get("files"), dict):
        raise MlopsError(f"{path}: not a model manifest (no `files`); retrain")
    for name, digest in loaded["files"].items():
        file = folder / str(name)
        if Path(str(name)).name != name or not file.is_file():
            raise UntrustedModel(f"{path}: refusing it: it lists {name!r}, not a file beside it")
        actual = sha256_file(file)
        if actual != digest:
            raise UntrustedModel(
                f"{file}: refusing it: its sha256 is {actual}, but manifest.json records "
                f"{digest}. The file changed after training; retrain (`mlops train`)"
            )
    return loaded


if __name__ == "__main__":
    _helper_main()

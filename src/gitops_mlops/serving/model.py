"""The served model: loaded with trusted types only, described by its manifest.

This package runs inside the serving image, where the rest of gitops_mlops is not installed:
it imports only the standard library, numpy, pandas and skops.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from gitops_mlops.serving.errors import UntrustedModelError

MODEL_FILE = "model.skops"
MANIFEST_FILE = "manifest.json"

_DATATYPES = {
    "float64": "FP64",
    "float32": "FP32",
    "int64": "INT64",
    "int32": "INT32",
    "bool": "BOOL",
}


def import_skops() -> ModuleType:
    """skops.io, imported without building its default list of trusted types.

    That list comes from `sklearn.utils.all_estimators()`, which imports every scikit-learn
    module: ~0.4 s, a sixth of a small training run. We never use it: our own policy
    (TRUSTED_MODULES) decides what a file may build, and writing a file needs no list. The
    list only ever widens trust, so without it skops trusts less, never more.
    """
    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    import sklearn.utils

    everything = sklearn.utils.all_estimators
    sklearn.utils.all_estimators = _no_estimators
    try:
        return importlib.import_module("skops.io")
    finally:
        sklearn.utils.all_estimators = everything


def _no_estimators(type_filter: Any = None) -> list[tuple[str, type]]:
    return []


def load_trusted(path: Path, allow_modules: tuple[str, ...] = (), data: bytes | None = None) -> Any:
    """Load a skops file, building only the exact types `trust.audit` accepts (never pickle).

    Check the file's sha256 first (`verified_bytes`) and pass the bytes that were checked as
    `data`, so the file cannot change between the check and the load.
    """
    from gitops_mlops.serving import structure, trust

    if data is None:
        data = _read(path)
    names = trust.audit(data, path, allow_modules)
    skops_io = import_skops()
    try:  # skops checks the file again, against exactly the names the audit accepted
        model = skops_io.loads(data, trusted=names)
    except Exception as err:  # whatever a hostile file makes skops raise
        raise UntrustedModelError(
            f"{path}: refusing to load it: skops could not build it ({type(err).__name__}: {err})"
        ) from None
    try:  # trusted types can still hold indices that compiled code follows unchecked
        structure.check(model)
    except structure.BadStructure as err:
        raise UntrustedModelError(f"{path}: refusing to load it: {err}") from None
    return model


def read_manifest(model_dir: Path) -> dict[str, Any]:
    path = model_dir / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        raise UntrustedModelError(f"{path}: cannot read the model's manifest ({err})") from None
    if not isinstance(manifest, dict):
        raise UntrustedModelError(f"{path}: the model's manifest is not a JSON object")
    return manifest


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise UntrustedModelError(f"{path}: cannot read the model file ({err})") from None


def verified_bytes(model_dir: Path) -> tuple[dict[str, Any], bytes]:
    """The manifest and the model file's bytes, once they match the sha256 it records.

    This is integrity, not trust: a manifest next to the model can be rewritten with it.
    """
    manifest = read_manifest(model_dir)
    path = model_dir / MODEL_FILE
    data = _read(path)
    expected = (manifest.get("files") or {}).get(MODEL_FILE)
    actual = hashlib.sha256(data).hexdigest()
    if expected != actual:
        raise UntrustedModelError(
            f"{path}: refusing to load it: its sha256 is {actual}, but manifest.json records "
            f"{expected}. The file changed after training; retrain, or restore the trained file"
        )
    return manifest, data


def check(model_dir: Path, allow_modules: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The manifest, once the file matches it and would build only trusted types.

    Nothing is deserialised. `allow_modules` defaults to the manifest's (what training
    recorded); callers that hold the spec pass the spec's.
    """
    from gitops_mlops.serving import trust  # here: the onnx runtime never needs it

    manifest, data = verified_bytes(model_dir)
    allowed = allow_modules if allow_modules is not None else allowed_in(manifest)
    trust.audit(data, model_dir / MODEL_FILE, allowed)
    return manifest


def allowed_in(manifest: dict[str, Any]) -> tuple[str, ...]:
    """The `model.allow_modules` that training recorded in the manifest."""
    recorded = manifest.get("allow_modules") or ()
    return tuple(str(m) for m in recorded) if isinstance(recorded, list) else ()


def datatype_of(dtype: str) -> str:
    """The Open Inference Protocol datatype for a pandas/numpy dtype name."""
    return _DATATYPES.get(dtype, "BYTES")


@dataclass(frozen=True)
class Feature:
    name: str
    datatype: str  # FP64, INT64, BOOL, BYTES, ...


@dataclass(frozen=True)
class ServedModel:
    name: str
    version: str
    model: Any
    features: tuple[Feature, ...]
    classes: tuple[Any, ...] | None  # None for regressors

    @property
    def outputs(self) -> tuple[str, ...]:
        return ("predict", "predict_proba") if self.classes is not None else ("predict",)

    @property
    def predict_datatype(self) -> str:
        if self.classes is None:
            return "FP64"
        kinds = {type(c) for c in self.classes}
        if kinds <= {int}:
            return "INT64"
        if kinds <= {bool}:
            return "BOOL"
        return "FP64" if kinds <= {int, float} else "BYTES"


def load(model_dir: Path, allow_modules: tuple[str, ...] | None = None) -> ServedModel:
    """The model and its manifest from a bundle folder (model.skops + manifest.json).

    The file is checked against the manifest's sha256 before it is read, then built with
    trusted types only (see `check` for `allow_modules`).
    """
    manifest, data = verified_bytes(model_dir)
    allowed = allow_modules if allow_modules is not None else allowed_in(manifest)
    model = load_trusted(model_dir / MODEL_FILE, allowed, data)
    try:
        features = tuple(Feature(f["name"], datatype_of(f["dtype"])) for f in manifest["features"])
        name, version = str(manifest["name"]), str(manifest["model_version"])
    except (KeyError, TypeError) as err:
        raise UntrustedModelError(
            f"{model_dir / MANIFEST_FILE}: the manifest lacks {err}; retrain"
        ) from None
    classes = manifest.get("classes")
    return ServedModel(
        name=name,
        version=version,
        model=model,
        features=features,
        classes=tuple(classes)
        if classes is not None and manifest.get("task") != "regression"
        else None,
    )

"""The served model: loaded with trusted types only, described by its manifest.

This package runs inside the serving image, where the rest of gitops_mlops is not installed:
it imports only the standard library, numpy, pandas and skops.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

# Modules whose types a model file may build. Anything else is refused before loading.
TRUSTED_MODULES = ("sklearn", "numpy", "scipy")

_DATATYPES = {
    "float64": "FP64",
    "float32": "FP32",
    "int64": "INT64",
    "int32": "INT32",
    "bool": "BOOL",
}


class UntrustedModelError(Exception):
    """A model file that would build types from modules we do not trust, or no skops file."""


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


def load_trusted(path: Path, allow_modules: tuple[str, ...] = ()) -> Any:
    """Load a skops file, building only types from trusted modules (never unpickling)."""
    skops_io = import_skops()
    try:
        untrusted = skops_io.get_untrusted_types(file=path)
    except (zipfile.BadZipFile, KeyError, ValueError, json.JSONDecodeError) as err:
        raise UntrustedModelError(f"{path}: not a skops model file ({err})") from None
    trusted_roots = (*TRUSTED_MODULES, *allow_modules)
    refused = [t for t in untrusted if t.split(".")[0] not in trusted_roots]
    if refused:
        raise UntrustedModelError(
            f"{path}: refusing to load types from untrusted modules: {', '.join(refused)}. "
            "Models may only hold scikit-learn, numpy and scipy types (or modules listed in "
            "model.allow_modules)."
        )
    return skops_io.load(path, trusted=untrusted)


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


def load(model_dir: Path) -> ServedModel:
    """The model and its manifest from a bundle folder (model.skops + manifest.json)."""
    manifest = json.loads((model_dir / "manifest.json").read_text(encoding="utf-8"))
    path = model_dir / "model.skops"
    # Trusting sklearn types includes tree node arrays that predict indexes unchecked, so the
    # file must be the one that was trained: its sha256 is in the manifest.
    expected = manifest.get("files", {}).get("model.skops")
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    if expected != actual:
        raise UntrustedModelError(f"{path}: sha256 {actual} is not the manifest's {expected}")
    model = load_trusted(path, tuple(manifest.get("allow_modules", ())))
    features = tuple(Feature(f["name"], datatype_of(f["dtype"])) for f in manifest["features"])
    classes = manifest.get("classes")
    return ServedModel(
        name=str(manifest["name"]),
        version=str(manifest["model_version"]),
        model=model,
        features=features,
        classes=tuple(classes)
        if classes is not None and manifest.get("task") != "regression"
        else None,
    )

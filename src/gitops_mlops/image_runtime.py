"""Which serving runtime an image gets (`container.runtime`), and what the image holds for it.

`auto` (the default) converts the model to ONNX and ships it when the conversion predicts the
same as the model (onnx_export's proof); otherwise the image runs the scikit-learn model, and
the reason is recorded. `onnx` makes a failed conversion or comparison a build error.
`sklearn` never converts.

Conversion happens at build time, not at train time: it is packaging, not training. The model
version stays the digest of the trained model; a pull request run (which never builds) does
not pay for it; the proof runs with the ONNX Runtime version the image will hold; and a newer
converter can serve an old model without retraining it. The ONNX model and its record go to
RunDir.onnx_dir, reused while the model file and the converter versions are the same.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitops_mlops import bundle, datasets
from gitops_mlops.errors import BuildError, MlopsError
from gitops_mlops.rundir import RunDir, write_json
from gitops_mlops.serving.runtimes import RUNTIME_FILE, RUNTIMES, Runtime
from gitops_mlops.spec.model import Spec

if TYPE_CHECKING:
    from gitops_mlops.integrations.storage import StorageSettings

SERVER_PACKAGES = ("httptools", "uvloop")  # the server itself, in every image
ONNX_FILE = "model.onnx"


@dataclass(frozen=True)
class RuntimeChoice:
    requested: str  # container.runtime
    runtime: str  # the RUNTIMES entry that ships
    reason: str  # why this one
    comparison: dict[str, Any] | None  # the ONNX proof, when one ran
    model_dir: Path  # the folder holding the runtime's files

    @property
    def entry(self) -> Runtime:
        return RUNTIMES[self.runtime]

    def to_json(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "runtime": self.runtime,
            "reason": self.reason,
            "comparison": self.comparison,
            "files": list(self.entry.files),
        }


def summary(record: Mapping[str, Any]) -> str:
    """One line for the build output, from a RuntimeChoice's JSON."""
    runtime, c = record.get("runtime", "sklearn"), record.get("comparison")
    if runtime != "onnx" or not c:
        return f"runtime   {runtime}: {record.get('reason', '')}"
    agreement = (
        f"labels identical, probabilities within {c['max_abs_difference']:.2g}"
        if c["label_agreement"] is not None
        else f"predictions within {c['max_relative_difference']:.2g} (relative)"
    )
    return (
        f"runtime   onnx: {c['rows']} test rows and {c['probe_rows']} rows with a missing "
        f"value, {agreement} (tolerance {c['tolerance']:g})"
    )


def choose(
    spec: Spec,
    run: RunDir,
    manifest: Mapping[str, Any],
    requested: str | None = None,
    storage: StorageSettings | None = None,
) -> RuntimeChoice:
    """The runtime for `requested` (default: the spec's container.runtime). `storage`: the
    object stores' settings the command resolved, to read the test rows the ONNX model is
    compared on."""
    if requested is None:
        requested = spec.container.runtime if spec.container else "auto"
    if requested == "sklearn":
        return RuntimeChoice(
            requested, "sklearn", "container.runtime: sklearn", None, run.model_dir
        )
    record = _cached(run, manifest) or _export(spec, run, manifest, storage)
    comparison = record.get("comparison")
    if "error" not in record and comparison and comparison.get("passed"):
        why = "converted with skl2onnx; it predicts the same as the model"
        return RuntimeChoice(requested, "onnx", why, comparison, run.onnx_dir)
    reason = record.get("error") or (comparison or {}).get("reason") or "not converted"
    if requested == "onnx":
        raise BuildError(f"container.runtime is onnx, but the ONNX model cannot ship: {reason}")
    return RuntimeChoice(
        requested, "sklearn", f"ONNX not used: {reason}", comparison, run.model_dir
    )


def _source_digest(manifest: Mapping[str, Any]) -> str:
    return str((manifest.get("files") or {}).get(bundle.MODEL_FILE, ""))


def _host() -> dict[str, Any]:
    """What a conversion's outcome depends on besides the model: versions and tolerances."""
    from gitops_mlops import onnx_export

    found: dict[str, Any] = {}
    for package in ("skl2onnx", "onnxruntime", "numpy", "scikit-learn"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = ""
    found["tolerances"] = [onnx_export.PROBABILITY_TOLERANCE, onnx_export.REGRESSION_TOLERANCE]
    return found


def _cached(run: RunDir, manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    """The last conversion of this very model file with these very versions, if any."""
    path = run.onnx_dir / RUNTIME_FILE
    try:
        record: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        if record["source_sha256"] != _source_digest(manifest) or record["host"] != _host():
            return None
        if "error" not in record:
            data = (run.onnx_dir / record["model"]).read_bytes()
            if hashlib.sha256(data).hexdigest() != record["sha256"]:
                return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record


def _export(
    spec: Spec, run: RunDir, manifest: Mapping[str, Any], storage: StorageSettings | None
) -> dict[str, Any]:
    """Convert and compare; write the folder the image's /model is made of."""
    from gitops_mlops import onnx_export

    shutil.rmtree(run.onnx_dir, ignore_errors=True)
    run.onnx_dir.mkdir(parents=True)
    base = {"source_sha256": _source_digest(manifest), "host": _host()}
    try:
        model = bundle.load_model(run.model_file, spec.model.allow_modules)
        exported = onnx_export.export(
            model, manifest["features"], _test_rows(spec, manifest, storage)
        )
    except onnx_export.Unsupported as err:
        record = {"runtime": "onnx", "error": str(err), **base}
        write_json(run.onnx_dir / RUNTIME_FILE, record)
        return record
    (run.onnx_dir / ONNX_FILE).write_bytes(exported.onnx)
    shutil.copy2(run.model_dir / bundle.MANIFEST_FILE, run.onnx_dir / bundle.MANIFEST_FILE)
    record = {**exported.record(ONNX_FILE), **base}
    write_json(run.onnx_dir / RUNTIME_FILE, record)
    return record


def _test_rows(spec: Spec, manifest: Mapping[str, Any], storage: StorageSettings | None) -> Any:
    """The test set the model was evaluated on (the data must not have changed since)."""
    data = datasets.load(spec, storage)
    if f"sha256:{data.digest}" != manifest.get("data_digest"):
        raise MlopsError(
            "the data changed since the model was trained, so the ONNX model cannot be "
            "compared on its test set; retrain with `mlops run`"
        )
    return data.x_test


def pins(choice: RuntimeChoice, manifest: Mapping[str, Any]) -> list[str]:
    """Exact versions the image installs: the scikit-learn runtime's as trained (from the
    manifest), the ONNX runtime's as compared (this install's), the server's as installed."""
    trained = manifest.get("versions", {})
    found = []
    for package in choice.entry.packages:
        if choice.runtime == "sklearn":
            version = trained.get(package)
            if version is None:
                raise MlopsError(f"the manifest records no {package} version; retrain the model")
        else:
            version = metadata.version(package)
        found.append(f"{package}=={version}")
    return found + [f"{p}=={metadata.version(p)}" for p in SERVER_PACKAGES]

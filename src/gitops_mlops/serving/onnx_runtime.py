"""The `onnx` runtime: the model converted to ONNX at build time, run by ONNX Runtime.

The image holds numpy, onnxruntime and this server: no scikit-learn, SciPy or pandas. The
model folder has `model.onnx`, `runtime.json` (its sha256, which ONNX input each feature
feeds, which ONNX output answers `predict` and `predict_proba`, and the comparison with
the scikit-learn model that let it ship) and the training manifest (names, features,
classes: the same V2 metadata as the sklearn runtime).

Calls cost microseconds, so they run on the event loop: handing each to a thread would
cost more than the call. Each worker process runs one ONNX Runtime thread.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from gitops_mlops.serving.errors import UntrustedModelError
from gitops_mlops.serving.model import Feature, ServedModel, datatype_of
from gitops_mlops.serving.runtimes import RUNTIME_FILE, Columns, Loaded, Outputs

# What a missing text value becomes: ONNX strings have no NaN. The converted imputer
# replaces exactly this string, as scikit-learn's replaces NaN.
MISSING_TEXT = "\x00missing"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UntrustedModelError(f"{path}: cannot read it ({err})") from None
    if not isinstance(loaded, dict):
        raise UntrustedModelError(f"{path}: not a JSON object")
    return loaded


def prepare() -> ModuleType:
    """onnxruntime, imported with its telemetry off.

    Some onnxruntime builds carry a telemetry client (events to a Microsoft collector, a
    device id written to the home folder): a model server sends nothing anywhere.
    """
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    import onnxruntime

    onnxruntime.disable_telemetry_events()
    module: ModuleType = onnxruntime
    return module


def _verified(model_dir: Path) -> tuple[dict[str, Any], bytes]:
    """runtime.json and the ONNX file's bytes, once they match the sha256 it records."""
    record = _read_json(model_dir / RUNTIME_FILE)
    path = model_dir / str(record.get("model", "model.onnx"))
    try:
        data = path.read_bytes()
    except OSError as err:
        raise UntrustedModelError(f"{path}: cannot read it ({err})") from None
    if hashlib.sha256(data).hexdigest() != record.get("sha256"):
        raise UntrustedModelError(
            f"{path}: refusing to load it: its sha256 differs from {RUNTIME_FILE}'s; rebuild"
        )
    return record, data


def check(model_dir: Path) -> None:
    _verified(model_dir)


def load(model_dir: Path) -> Loaded:
    onnxruntime = prepare()
    record, data = _verified(model_dir)
    manifest = _read_json(model_dir / "manifest.json")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # one worker process per core already
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    classes = manifest.get("classes")
    served = ServedModel(
        name=str(manifest["name"]),
        version=str(manifest["model_version"]),
        model=session,
        features=tuple(Feature(f["name"], datatype_of(f["dtype"])) for f in manifest["features"]),
        classes=tuple(classes)
        if classes is not None and manifest.get("task") != "regression"
        else None,
    )
    return Loaded(served, Predictor(session, record), inline=True)


class Predictor:
    def __init__(self, session: Any, record: dict[str, Any]) -> None:
        self.session = session
        # (ONNX input, kind, features): one feature as a number or text column, or all of
        # them as one float64 matrix (a model without a ColumnTransformer takes that).
        self.inputs: list[tuple[str, str, list[str]]] = [
            (i["input"], i["kind"], i["features"]) for i in record["inputs"]
        ]
        self.outputs: dict[str, str] = record["outputs"]
        self.refuses_missing = frozenset(record.get("refuses_missing", ()))

    def __call__(self, columns: Columns, outputs: tuple[str, ...]) -> Outputs:
        feeds = {}
        for name, kind, features in self.inputs:
            if kind == "text":
                feeds[name] = _text(columns[features[0]])
            else:
                numbers = [self._number(f, columns[f]) for f in features]
                feeds[name] = numbers[0] if kind == "number" else np.hstack(numbers)
        results = self.session.run([self.outputs[o] for o in outputs], feeds)
        answer: Outputs = {}
        for output, values in zip(outputs, results, strict=True):
            if output == "predict_proba":
                answer[output] = values.astype(np.float64)
            elif values.dtype.kind == "f":
                answer[output] = values.reshape(-1).astype(np.float64)
            else:
                answer[output] = values.reshape(-1)
        return answer

    def _number(self, feature: str, values: np.ndarray) -> np.ndarray:
        column = np.asarray(values, dtype=np.float64)  # text raises ValueError: a 422
        # The same refusals as scikit-learn's input checks, so clients see the same errors.
        if np.isinf(column).any():
            raise ValueError(f"Input X contains infinity (feature {feature!r})")
        if feature in self.refuses_missing and np.isnan(column).any():
            raise ValueError(f"Input X contains NaN (feature {feature!r})")
        return column.reshape(-1, 1)


def _text(values: np.ndarray) -> np.ndarray:
    column = np.empty((len(values), 1), dtype=object)
    column[:, 0] = [
        v if isinstance(v, str) else MISSING_TEXT if v is None or v != v else str(v)
        for v in values.tolist()
    ]
    return column

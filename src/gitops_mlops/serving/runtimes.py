"""Serving runtimes: the ways the server can run a model. One table, one entry per runtime.

An entry says what the image must hold for it (packages, the model folder's files) and how
the server loads a model folder into a predict function. The server picks the entry named
by the folder's `runtime.json`; a plain bundle (model.skops + manifest.json) is `sklearn`.
Clients cannot tell the runtimes apart: the V2 metadata, inputs, outputs, errors and
/metrics are the same, only the speed differs.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gitops_mlops.serving.errors import UntrustedModelError
from gitops_mlops.serving.model import ServedModel

Columns = dict[str, np.ndarray]
Outputs = dict[str, np.ndarray]
Predict = Callable[[Columns, tuple[str, ...]], Outputs]

RUNTIME_FILE = "runtime.json"


@dataclass(frozen=True)
class Loaded:
    model: ServedModel
    predict: Predict  # columns in feature order, output names -> one array per output
    inline: bool  # cheap enough to call on the event loop rather than in a worker thread


@dataclass(frozen=True)
class Runtime:
    name: str
    summary: str
    # Distributions the image installs for this runtime, besides the server's own.
    packages: tuple[str, ...]
    # True: pip adds their dependencies. False: exactly these (ONNX Runtime's declared
    # dependencies, protobuf and friends, serve its tools, not inference).
    resolve: bool
    # Paths under site-packages the image drops: parts of the packages that serving never
    # loads (checked by the smoke test that runs every image before it ships).
    prune: tuple[str, ...]
    # "module:function" run once before the worker processes fork: imports the runtime's
    # libraries (their pages are then shared by every worker) and sets them up.
    prepare: str
    # The model folder's files that the image carries.
    files: tuple[str, ...]
    loader: str  # "module:function" taking the model folder, returning Loaded
    # "module:function" that refuses a model folder (UntrustedModelError) without loading
    # it: the server checks once, before any worker starts.
    checker: str

    def load(self, model_dir: Path) -> Loaded:
        loaded: Loaded = _function(self.loader)(model_dir)
        return loaded

    def check(self, model_dir: Path) -> None:
        _function(self.checker)(model_dir)

    def preload(self) -> None:
        _function(self.prepare)()


def _function(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


RUNTIMES: dict[str, Runtime] = {
    runtime.name: runtime
    for runtime in (
        Runtime(
            name="sklearn",
            summary="the scikit-learn model itself, built from skops with trusted types",
            packages=("scikit-learn", "numpy", "scipy", "pandas", "skops"),
            resolve=True,
            prune=(),
            prepare="gitops_mlops.serving.sklearn_runtime:prepare",
            files=("model.skops", "manifest.json"),
            loader="gitops_mlops.serving.sklearn_runtime:load",
            checker="gitops_mlops.serving.model:check",
        ),
        Runtime(
            name="onnx",
            summary="the model converted to ONNX (skl2onnx), run by ONNX Runtime",
            packages=("numpy", "onnxruntime"),
            resolve=False,
            prune=(
                "onnxruntime/capi/libonnxruntime.so.*",  # the C API library; Python has its own
                "onnxruntime/transformers",
                "onnxruntime/quantization",
                "onnxruntime/tools",
                "onnxruntime/datasets",
            ),
            prepare="gitops_mlops.serving.onnx_runtime:prepare",
            files=("model.onnx", RUNTIME_FILE, "manifest.json"),
            loader="gitops_mlops.serving.onnx_runtime:load",
            checker="gitops_mlops.serving.onnx_runtime:check",
        ),
    )
}


def of(model_dir: Path) -> Runtime:
    """The runtime a model folder is for."""
    path = model_dir / RUNTIME_FILE
    if not path.is_file():
        return RUNTIMES["sklearn"]
    try:
        name = json.loads(path.read_text(encoding="utf-8"))["runtime"]
        return RUNTIMES[name]
    except (ValueError, KeyError, TypeError) as err:
        raise UntrustedModelError(
            f"{path}: names no runtime this server has ({', '.join(RUNTIMES)}): {err!r}"
        ) from None

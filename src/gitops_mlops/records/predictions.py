"""predictions.npz: what the model predicted on the test rows, for comparisons and pictures.

Evaluate writes it; the champion comparison (a paired difference needs the candidate's own
predictions of the same rows), `mlops diff`, the report's charts and `report.html` read it.

The file is a NumPy archive read with `allow_pickle=False`: only plain arrays, never
objects, so a file from elsewhere cannot run code. Class labels are stored once, as JSON
values (strings, numbers, booleans) in `meta`, and the rows hold indices into them; the
probabilities, when there are any, have one column per model class. `rows_digest` is the
sha256 of the test rows (features and target): two runs whose digests agree predicted the
same rows, so their difference can be paired.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gitops_mlops.errors import MlopsError
from gitops_mlops.predictions import Predictions

WHAT = "predictions.npz"
FORMAT = 1
# A test set of millions of rows with a dozen classes stays far below this; a bigger file
# (or one that unpacks to more) is refused rather than read.
MAX_BYTES = 2 << 30
Label = str | int | float | bool


@dataclass(frozen=True)
class PredictionSet:
    task: str  # classification | regression
    predictions: Predictions
    slices: Mapping[str, NDArray[np.bool_]] = field(default_factory=dict)  # name -> row mask
    rows_digest: str = ""  # sha256 of the test rows, features and target

    def of_slice(self, name: str | None) -> Predictions:
        """The predictions on a slice's rows (None: every row)."""
        return self.predictions if name is None else self.predictions.subset(self.slices[name])


def rows_digest(frame: Any) -> str:
    """sha256 of a DataFrame's rows (values and column names, not the index)."""
    import hashlib

    import pandas as pd

    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()
    names = json.dumps([str(c) for c in frame.columns]).encode()
    return "sha256:" + hashlib.sha256(names + hashed).hexdigest()


def _json_label(value: Any) -> Label:
    plain = value.item() if isinstance(value, np.generic) else value
    if isinstance(plain, str | int | float | bool):
        return plain
    raise MlopsError(f"class label {value!r} is not a string, number or boolean")


def write(path: Path, found: PredictionSet) -> None:
    """Write the archive (whole or not at all: a temporary file renamed into place)."""
    p = found.predictions
    arrays: dict[str, NDArray[Any]] = {}
    meta: dict[str, Any] = {"format": FORMAT, "task": found.task, "rows": found.rows_digest}
    if found.task == "regression":
        arrays["y_true"] = np.asarray(p.y_true, dtype=np.float64)
        arrays["y_pred"] = np.asarray(p.y_pred, dtype=np.float64)
    else:
        meta["labels"] = [_json_label(label) for label in p.labels]
        meta["model_classes"] = len(p.model_classes)
        meta["positive"] = p.positive
        arrays["y_true"] = p.true_index.astype(np.int32)
        arrays["y_pred"] = p.pred_index.astype(np.int32)
        if p.proba is not None:
            arrays["proba"] = np.asarray(p.proba, dtype=np.float64)
    meta["slices"] = list(found.slices)
    for index, mask in enumerate(found.slices.values()):
        arrays[f"slice_{index}"] = np.asarray(mask, dtype=bool)
    arrays["meta"] = np.array(json.dumps(meta))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".npz.tmp")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(path)


def read(path: Path) -> PredictionSet:
    """The archive, checked: sizes, shapes, label indices; never a pickled object."""
    try:
        if path.stat().st_size > MAX_BYTES:
            raise MlopsError(f"{path}: {WHAT} is over {MAX_BYTES} bytes; refusing to read it")
        with zipfile.ZipFile(path) as archive:
            if sum(info.file_size for info in archive.infolist()) > MAX_BYTES:
                raise MlopsError(f"{path}: {WHAT} unpacks to over {MAX_BYTES} bytes")
        with np.load(path, allow_pickle=False) as loaded:
            arrays = {name: loaded[name] for name in loaded.files}
        meta = json.loads(str(arrays.pop("meta")))
        return _parse(meta, arrays)
    except FileNotFoundError:
        raise MlopsError(f"{path}: no {WHAT}; evaluate the run first (`mlops run`)") from None
    except (OSError, ValueError, KeyError, TypeError, IndexError, zipfile.BadZipFile) as err:
        raise MlopsError(
            f"{path}: {WHAT} is damaged ({type(err).__name__}: {err}); evaluate the run again"
        ) from None


def _parse(meta: Mapping[str, Any], arrays: Mapping[str, NDArray[Any]]) -> PredictionSet:
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"unknown format {meta.get('format') if isinstance(meta, dict) else meta}")
    y_true, y_pred = arrays["y_true"], arrays["y_pred"]
    n = y_true.shape[0]
    if y_true.ndim != 1 or y_pred.shape != (n,):
        raise ValueError("y_true and y_pred are not two columns of the same rows")
    task = str(meta["task"])
    if task == "regression":
        predictions = Predictions.regression(y_true, y_pred)
    else:
        predictions = _classification(meta, arrays, y_true, y_pred)
    names = meta.get("slices") or []
    slices = {}
    for index, name in enumerate(names):
        mask = arrays[f"slice_{index}"]
        if mask.dtype != np.bool_ or mask.shape != (n,):
            raise ValueError(f"slice {name!r} is not one flag per row")
        slices[str(name)] = mask
    return PredictionSet(task, predictions, MappingProxyType(slices), str(meta.get("rows", "")))


def _classification(
    meta: Mapping[str, Any],
    arrays: Mapping[str, NDArray[Any]],
    y_true: NDArray[Any],
    y_pred: NDArray[Any],
) -> Predictions:
    labels = meta["labels"]
    if not isinstance(labels, list) or not all(
        isinstance(label, str | int | float | bool) for label in labels
    ):
        raise ValueError("labels are not a list of strings, numbers or booleans")
    for column in (y_true, y_pred):
        if column.dtype.kind not in "iu" or (
            column.size and not 0 <= column.min() <= column.max() < len(labels)
        ):
            raise ValueError("label indices out of range")
    values = np.asarray(labels)
    if len({type(label) for label in labels}) > 1:  # mixed kinds: keep each label as it is
        values = np.empty(len(labels), dtype=object)
        values[:] = labels
    classes = int(meta["model_classes"])
    proba = arrays.get("proba")
    if proba is not None and (proba.dtype != np.float64 or proba.shape != (y_true.size, classes)):
        raise ValueError("proba does not hold one column per model class for every row")
    positive = meta.get("positive")
    if positive is not None and not (isinstance(positive, int) and 0 <= positive < len(labels)):
        raise ValueError("positive is not the index of a label")
    return Predictions(
        y_true=values[y_true],
        y_pred=values[y_pred],
        proba=proba,
        model_classes=tuple(labels[:classes]),
        labels=tuple(labels),
        positive=positive,
        _index={label: i for i, label in enumerate(labels)},
    )

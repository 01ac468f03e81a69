"""predictions.npz round-trips every kind of label, and refuses what it must not read."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gitops_mlops.errors import MlopsError
from gitops_mlops.predictions import Predictions
from gitops_mlops.records.predictions import PredictionSet, read, rows_digest, write


@pytest.mark.parametrize(
    "labels",
    [
        np.array([0, 1, 1, 0, 1]),
        np.array(["setosa", "virginica", "virginica", "setosa", "other"]),
        np.array([True, False, True, True, False]),
        np.array([1.5, 2.5, 2.5, 1.5, 2.5]),
    ],
)
def test_classification_round_trips(tmp_path: Path, labels: np.ndarray[Any, Any]) -> None:
    classes = sorted(set(labels.tolist()))[:2]
    proba = np.linspace(0, 1, labels.size * 2).reshape(-1, 2)
    predicted = Predictions.classification(labels, labels[::-1], proba, classes)
    mask = np.array([True, False, True, False, True])
    write(tmp_path / "p.npz", PredictionSet("classification", predicted, {"s": mask}, "sha256:x"))
    back = read(tmp_path / "p.npz")
    p = back.predictions
    assert p.y_true.tolist() == labels.tolist() and p.y_pred.tolist() == labels[::-1].tolist()
    assert p.labels == predicted.labels and p.model_classes == predicted.model_classes
    assert p.positive == predicted.positive
    assert p.proba is not None and np.array_equal(p.proba, proba)
    assert p.true_index.tolist() == predicted.true_index.tolist()
    assert back.slices["s"].tolist() == mask.tolist() and back.rows_digest == "sha256:x"
    assert back.of_slice("s").n == 3


def test_regression_round_trips(tmp_path: Path) -> None:
    predicted = Predictions.regression([1.0, 2.0, 3.5], [1.5, 2.0, 3.0])
    write(tmp_path / "p.npz", PredictionSet("regression", predicted))
    back = read(tmp_path / "p.npz")
    assert back.task == "regression" and back.predictions.y_pred.tolist() == [1.5, 2.0, 3.0]


def _archive(path: Path, **arrays: Any) -> Path:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.write_bytes(buffer.getvalue())
    return path


def test_a_pickled_object_is_never_loaded(tmp_path: Path) -> None:
    meta = np.array('{"format": 1, "task": "regression", "rows": ""}')
    hostile = np.array([object(), {"a": 1}], dtype=object)
    path = _archive(tmp_path / "p.npz", meta=meta, y_true=hostile, y_pred=hostile)
    with pytest.raises(MlopsError, match="damaged"):
        read(path)


def test_label_indices_outside_the_labels_are_refused(tmp_path: Path) -> None:
    meta = np.array(
        '{"format": 1, "task": "classification", "rows": "", "labels": ["a", "b"],'
        ' "model_classes": 2, "positive": 1, "slices": []}'
    )
    index = np.array([0, 1, 7], dtype=np.int32)
    path = _archive(tmp_path / "p.npz", meta=meta, y_true=index, y_pred=index)
    with pytest.raises(MlopsError, match="out of range"):
        read(path)


def test_a_file_that_unpacks_to_too_much_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gitops_mlops.records import predictions

    zeros = np.zeros(100_000)  # compresses to almost nothing: a small zip bomb
    write(tmp_path / "p.npz", PredictionSet("regression", Predictions.regression(zeros, zeros)))
    with zipfile.ZipFile(tmp_path / "p.npz") as archive:
        unpacked = sum(i.file_size for i in archive.infolist())
    assert (tmp_path / "p.npz").stat().st_size < unpacked // 100
    monkeypatch.setattr(predictions, "MAX_BYTES", unpacked - 1)
    with pytest.raises(MlopsError, match="unpacks to over"):
        read(tmp_path / "p.npz")


def test_the_rows_digest_changes_with_any_value_or_column_name() -> None:
    import pandas as pd

    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    same = rows_digest(frame.copy())
    assert rows_digest(frame) == same
    assert rows_digest(frame.assign(a=[1, 3])) != same
    assert rows_digest(frame.rename(columns={"a": "c"})) != same

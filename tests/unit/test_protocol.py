"""Request tensors become columns whose dtype follows the declared datatype, not the values."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from gitops_mlops.serving import protocol
from gitops_mlops.serving.model import Feature, ServedModel

MODEL = ServedModel(
    name="m",
    version="1",
    model=None,
    features=(Feature("a", "FP64"), Feature("b", "BYTES")),
    classes=None,
)


def one_column(datatype: str, data: list[Any]) -> np.ndarray:
    request = {
        "inputs": [
            {"name": "a", "shape": [len(data)], "datatype": datatype, "data": data},
            {"name": "b", "shape": [len(data)], "datatype": "BYTES", "data": ["x"] * len(data)},
        ]
    }
    columns, rows = protocol.columns(MODEL, request)
    assert rows == len(data)
    return columns["a"]


@pytest.mark.parametrize(
    ("datatype", "data", "dtype"),
    [
        ("FP64", [5, 3], "float64"),  # integers written without a point are still FP64
        ("FP32", [5.5, 3], "float64"),  # kept as written: no rounding to 32 bits
        ("FP64", [5.5, None], "float64"),  # missing -> NaN, for the pipeline's imputer
        ("INT64", [5, 3], "int64"),
        ("INT32", [5, None], "float64"),  # NaN needs a float column, as pandas does it
        ("BOOL", [True, False], "bool"),
        ("BOOL", [True, None], "object"),
        ("BYTES", ["x", None], "object"),
    ],
)
def test_column_dtype_follows_the_datatype(datatype: str, data: list[Any], dtype: str) -> None:
    column = one_column(datatype, data)
    assert column.dtype == np.dtype(dtype)
    assert len(column) == len(data)


def test_missing_float_is_nan_and_text_stays_text() -> None:
    assert np.isnan(one_column("FP64", [1.0, None])[1])
    text = one_column("BYTES", ["x", None])
    assert text[0] == "x" and np.isnan(text[1])


def test_an_integer_beyond_64_bits_is_a_client_error() -> None:
    with pytest.raises(protocol.V2Error) as caught:
        one_column("UINT64", [2**64])
    assert caught.value.status == 400 and "beyond 64 bits" in caught.value.message


def test_one_two_dimensional_tensor_splits_into_columns_in_training_order() -> None:
    model = ServedModel("m", "1", None, (Feature("a", "FP64"), Feature("c", "FP64")), None)
    request = {
        "inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP64", "data": [[1, 2], [3, 4]]}]
    }
    columns, rows = protocol.columns(model, request)
    assert rows == 2
    assert {k: v.tolist() for k, v in columns.items()} == {"a": [1.0, 3.0], "c": [2.0, 4.0]}

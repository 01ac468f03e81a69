"""Triton's binary tensor extension: the same columns as JSON, and a 4xx for every bad size."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from gitops_mlops.serving import binary, protocol
from gitops_mlops.serving.model import Feature, ServedModel

MODEL = ServedModel(
    name="m",
    version="1",
    model=None,
    features=(Feature("a", "FP64"), Feature("b", "BYTES"), Feature("c", "INT64")),
    classes=(0, 1),
)


def strings(*items: str) -> bytes:
    return b"".join(len(s.encode()).to_bytes(4, "little") + s.encode() for s in items)


def body(inputs: list[dict[str, Any]], blob: bytes, **extra: Any) -> tuple[bytes, bytes]:
    head = json.dumps({"inputs": inputs, **extra}).encode()
    return head + blob, str(len(head)).encode()


def tensor(name: str, datatype: str, rows: int, size: int) -> dict[str, Any]:
    return {
        "name": name,
        "datatype": datatype,
        "shape": [rows],
        "parameters": {"binary_data_size": size},
    }


A = np.array([1.5, -2.0], dtype="<f8").tobytes()
B = strings("x", "yé")
C = np.array([3, 4], dtype="<i8").tobytes()
GOOD = [tensor("a", "FP64", 2, 16), tensor("b", "BYTES", 2, len(B)), tensor("c", "INT64", 2, 16)]


def test_binary_inputs_give_the_columns_json_gives() -> None:
    parsed = protocol.parse(MODEL, *body(GOOD, A + B + C))
    as_json = protocol.parse(
        MODEL,
        json.dumps(
            {
                "inputs": [
                    {"name": "a", "datatype": "FP64", "shape": [2], "data": [1.5, -2.0]},
                    {"name": "b", "datatype": "BYTES", "shape": [2], "data": ["x", "yé"]},
                    {"name": "c", "datatype": "INT64", "shape": [2], "data": [3, 4]},
                ]
            }
        ).encode(),
    )
    assert parsed.rows == as_json.rows == 2
    for name in ("a", "b", "c"):
        assert parsed.columns[name].dtype == as_json.columns[name].dtype
        assert parsed.columns[name].tolist() == as_json.columns[name].tolist()


def test_mixed_json_and_binary_inputs_and_a_two_dimensional_fp32_tensor() -> None:
    mixed = [GOOD[0], {"name": "b", "datatype": "BYTES", "shape": [2], "data": ["p", "q"]}, GOOD[2]]
    parsed = protocol.parse(MODEL, *body(mixed, A + C))
    assert parsed.columns["b"].tolist() == ["p", "q"]
    model = ServedModel("m", "1", None, (Feature("x", "FP64"), Feature("y", "FP64")), None)
    raw = np.array([[1, 2], [3, 4], [5, 6]], dtype="<f4").tobytes()
    two_d = [
        {"name": "in", "datatype": "FP32", "shape": [3, 2], "parameters": {"binary_data_size": 24}}
    ]
    parsed = protocol.parse(model, *body(two_d, raw))
    assert parsed.columns["x"].tolist() == [1.0, 3.0, 5.0]
    assert parsed.columns["y"].dtype == np.float64


def test_outputs_asked_as_binary() -> None:
    ask_all = body(GOOD, A + B + C, parameters={"binary_data_output": True})
    assert protocol.parse(MODEL, *ask_all).binary == {"predict", "predict_proba"}
    one = body(
        GOOD,
        A + B + C,
        parameters={"binary_data_output": True},
        outputs=[
            {"name": "predict", "parameters": {"binary_data": False}},
            {"name": "predict_proba"},
        ],
    )
    assert protocol.parse(MODEL, *one).binary == {"predict_proba"}


def test_answers_encode_each_binary_output_after_the_json_header() -> None:
    parsed = protocol.parse(MODEL, *body(GOOD, A + B + C, parameters={"binary_data_output": True}))
    predicted = {"predict": np.array([1, 0]), "predict_proba": np.array([[0.25, 0.75], [1.0, 0.0]])}
    answer, length = protocol.answer(MODEL, parsed, predicted)
    assert length is not None
    head = json.loads(answer[:length])
    sizes = [o["parameters"]["binary_data_size"] for o in head["outputs"]]
    assert sizes == [16, 32] and len(answer) == length + 48
    assert np.frombuffer(answer[length : length + 16], "<i8").tolist() == [1, 0]
    assert np.frombuffer(answer[length + 16 :], "<f8").tolist() == [0.25, 0.75, 1.0, 0.0]
    assert binary.encode(np.array(["setosa", "é"], dtype=object), "BYTES") == strings("setosa", "é")


MALFORMED: list[tuple[str, list[dict[str, Any]], bytes, bytes | None, str]] = [
    ("header-too-long", GOOD, A + B + C, b"100000", "not a length within"),
    ("header-not-a-number", GOOD, A + B + C, b"12a", "not a length within"),
    ("blob-too-short", GOOD, A + B, None, "runs past"),
    ("blob-too-long", GOOD, A + B + C + b"x", None, "add up to"),
    (
        "size-not-whole-values",
        [tensor("a", "FP64", 2, 15), GOOD[1], GOOD[2]],
        A[:15] + B + C,
        None,
        "not a whole number of FP64 values",
    ),
    (
        "size-vs-shape",
        [tensor("a", "FP64", 3, 16), GOOD[1], GOOD[2]],
        A + B + C,
        None,
        "has 2 binary values, but shape [3] needs 3",
    ),
    (
        "string-length-beyond",
        [GOOD[0], tensor("b", "BYTES", 2, 9), GOOD[2]],
        A + strings("x") + b"\xff\x00\x00\x00" + C,
        None,
        "runs past its data",
    ),
    (
        "string-length-cut",
        [GOOD[0], tensor("b", "BYTES", 2, len(B) + 2), GOOD[2]],
        A + B + b"\x01\x00" + C,
        None,
        "4-byte length is cut off",
    ),
    (
        "string-not-utf8",
        [GOOD[0], tensor("b", "BYTES", 1, 5), GOOD[2]],
        A + b"\x01\x00\x00\x00\xff" + C,
        None,
        "not UTF-8",
    ),
    (
        "data-and-binary",
        [GOOD[0] | {"data": [1.0, 2.0]}, GOOD[1], GOOD[2]],
        A + B + C,
        None,
        "both `data` and binary_data_size",
    ),
    (
        "negative-size",
        [tensor("a", "FP64", 2, -16), GOOD[1], GOOD[2]],
        A + B + C,
        None,
        "non-negative integer",
    ),
    (
        "bool-size",
        [tensor("a", "FP64", 2, 16) | {"parameters": {"binary_data_size": True}}, GOOD[1], GOOD[2]],
        A + B + C,
        None,
        "non-negative integer",
    ),
    (
        "unknown-datatype",
        [tensor("a", "BF16", 2, 4), GOOD[1], GOOD[2]],
        b"\x00" * 4 + B + C,
        None,
        "datatype 'BF16' is not one of",
    ),
    (
        "uint64-beyond-int64",
        [GOOD[0], GOOD[1], tensor("c", "UINT64", 2, 16)],
        A + B + np.array([1, 2**63], dtype="<u8").tobytes(),
        None,
        "beyond 64 bits",
    ),
]


@pytest.mark.parametrize(
    ("inputs", "blob", "header", "fragment"),
    [m[1:] for m in MALFORMED],
    ids=[m[0] for m in MALFORMED],
)
def test_malformed_binary_requests_are_client_errors(
    inputs: list[dict[str, Any]], blob: bytes, header: bytes | None, fragment: str
) -> None:
    data, length = body(inputs, blob)
    with pytest.raises(protocol.V2Error) as caught:
        protocol.parse(MODEL, data, header if header is not None else length)
    assert caught.value.status == 400
    assert fragment in caught.value.message

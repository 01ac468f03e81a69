"""Property: whatever a client sends, the request parser answers with columns or a 4xx.

Every other exception would reach the client as a 500 (issue 10 found `"datatype": []`,
400-digit integers and deep nesting that way), so the parser is fed arbitrary JSON values,
tensors that are nearly right (which reach deeper into it), and binary extension bodies with
arbitrary sizes, header lengths and bytes.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gitops_mlops.serving import protocol
from gitops_mlops.serving.model import Feature, ServedModel

MODEL = ServedModel(
    name="m",
    version="1",
    model=None,
    features=(Feature("a", "FP64"), Feature("b", "BYTES"), Feature("c", "INT64")),
    classes=(0, 1),
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**500), max_value=10**500),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=20,
)
datatypes = st.one_of(st.sampled_from(sorted(protocol.DATATYPES)), json_values)
shapes = st.one_of(st.lists(st.integers(min_value=-2, max_value=5), max_size=3), json_values)
tensors = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(st.sampled_from(["a", "b", "c", "x"]), json_values),
        "shape": shapes,
        "datatype": datatypes,
        "data": st.one_of(st.lists(st.one_of(scalars, st.lists(scalars, max_size=4))), json_values),
        "parameters": st.one_of(
            json_values,
            st.fixed_dictionaries(
                {"binary_data_size": st.one_of(st.integers(min_value=-2, max_value=40), scalars)}
            ),
        ),
    },
)
requests = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"inputs": st.one_of(st.lists(tensors, max_size=4), json_values)},
        optional={
            "outputs": st.one_of(
                st.lists(st.fixed_dictionaries({"name": json_values}), max_size=3), json_values
            ),
            "id": json_values,
            "parameters": st.one_of(
                json_values, st.fixed_dictionaries({"binary_data_output": json_values})
            ),
        },
    ),
)


@settings(max_examples=300, deadline=None)
@given(requests)
def test_any_json_request_gives_columns_or_a_client_error(request: Any) -> None:
    body = json.dumps(request).encode()
    try:
        parsed = protocol.parse(MODEL, body)
    except protocol.V2Error as err:
        assert 400 <= err.status < 500 and err.message
        return
    assert_sound(parsed)


@settings(max_examples=300, deadline=None)
@given(
    requests,
    st.binary(max_size=64),
    st.one_of(st.none(), st.integers(-3, 3), st.binary(max_size=4)),
)
def test_any_binary_request_gives_columns_or_a_client_error(
    request: Any, blob: bytes, header_shift: int | bytes | None
) -> None:
    head = json.dumps(request).encode()
    if isinstance(header_shift, bytes):
        header_length = header_shift  # not a number, or a strange one
    else:
        header_length = str(len(head) + (header_shift or 0)).encode()
    try:
        parsed = protocol.parse(MODEL, head + blob, header_length)
    except protocol.V2Error as err:
        assert 400 <= err.status < 500 and err.message
        return
    assert_sound(parsed)


def assert_sound(parsed: protocol.Parsed) -> None:
    assert list(parsed.columns) == ["a", "b", "c"]
    assert all(isinstance(c, np.ndarray) and len(c) == parsed.rows for c in parsed.columns.values())
    assert set(parsed.outputs) <= {"predict", "predict_proba"}
    assert parsed.binary <= set(parsed.outputs)

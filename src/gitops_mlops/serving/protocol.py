"""Open Inference Protocol (KServe V2) requests and responses for tabular models.

Inputs come either as one tensor per feature (named after the training columns, shape [N])
or as one 2-D tensor [N, features] in training column order, as JSON `data` or as raw bytes
(Triton's binary extension, see binary.py). Every problem is a V2Error with a 4xx status and
a message that says what to send instead. Nothing here depends on the runtime: the columns
are numpy arrays, and the runtime turns them into what its model takes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gitops_mlops.serving import binary
from gitops_mlops.serving.errors import V2Error
from gitops_mlops.serving.model import ServedModel

__all__ = ["DATATYPES", "Columns", "Parsed", "V2Error", "answer", "metadata", "parse"]

Columns = dict[str, np.ndarray]
Outputs = dict[str, np.ndarray]

NUMERIC = {
    "FP16",
    "FP32",
    "FP64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
}
DATATYPES = NUMERIC | {"BOOL", "BYTES"}
_INT64_MAX = np.iinfo(np.int64).max


@dataclass(frozen=True)
class Parsed:
    """An inference request, checked: its columns in the model's feature order."""

    columns: Columns
    rows: int
    outputs: tuple[str, ...]
    binary: frozenset[str]  # outputs to send as raw bytes
    id: str | None


def parse(model: ServedModel, body: bytes, header_length: bytes | None = None) -> Parsed:
    """A request body (with the binary extension's header length, when it has one)."""
    head, blob = (body, b"") if header_length is None else binary.split(body, header_length)
    try:
        request = json.loads(head)
    except (ValueError, UnicodeDecodeError) as err:
        raise V2Error(400, f"the body is not valid JSON: {err}") from None
    except RecursionError:  # `[[[[…` thousands deep: no tensor nests like that
        raise V2Error(400, "the body is not valid JSON: nested too deeply") from None
    raw = binary.inputs(request, blob)
    found, rows = columns(model, request, raw)
    outputs = tuple(requested_outputs(model, request))
    return Parsed(
        columns={f.name: found[f.name] for f in model.features},
        rows=rows,
        outputs=outputs,
        binary=binary.requested(request, outputs),
        id=request["id"] if isinstance(request.get("id"), str) else None,
    )


def answer(model: ServedModel, parsed: Parsed, predicted: Outputs) -> tuple[bytes, int | None]:
    """The response body, and the length of its JSON part when binary outputs follow it."""
    outputs, blobs = [], []
    for name in parsed.outputs:
        values = predicted[name]
        proba = name == "predict_proba"
        datatype = "FP64" if proba else model.predict_datatype
        entry: dict[str, Any] = {
            "name": name,
            "datatype": datatype,
            "shape": [parsed.rows, values.shape[1]] if proba else [parsed.rows],
        }
        if name in parsed.binary:
            data = binary.encode(values, datatype)
            entry["parameters"] = {"binary_data_size": len(data)}
            blobs.append(data)
        else:
            entry["data"] = values.ravel().tolist()
        outputs.append(entry)
    response: dict[str, Any] = {
        "model_name": model.name,
        "model_version": model.version,
        "outputs": outputs,
    }
    if parsed.id is not None:
        response["id"] = parsed.id
    head = json.dumps(response, separators=(",", ":")).encode()
    if not blobs:
        return head, None
    return head + b"".join(blobs), len(head)


def _flatten(data: Any, depth: int) -> list[Any]:
    if depth == 0 or not isinstance(data, list):
        return [data]
    flat: list[Any] = []
    for item in data:
        if isinstance(item, list):
            flat.extend(_flatten(item, depth - 1))
        else:
            flat.append(item)
    return flat


def _values(
    tensor: Any, where: str, raw: np.ndarray | None
) -> tuple[list[Any] | np.ndarray, list[int]]:
    if not isinstance(tensor, dict):
        raise V2Error(400, f"{where} must be an object with name, shape, datatype and data")
    needed = ("name", "shape", "datatype", *(() if raw is not None else ("data",)))
    missing = [k for k in needed if k not in tensor]
    if missing:
        raise V2Error(400, f"{where} is missing {', '.join(missing)}")
    shape, datatype = tensor["shape"], tensor["datatype"]
    if (
        not isinstance(shape, list)
        or not shape
        or len(shape) > 2
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise V2Error(400, f"{where} shape must be [N] or [N, F] with non-negative integers")
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise V2Error(400, f"{where} datatype {datatype!r} is not one of {sorted(DATATYPES)}")
    if raw is not None:
        if len(raw) != math.prod(shape):
            raise V2Error(
                400,
                f"{where} has {len(raw)} binary values, but shape {shape} needs {math.prod(shape)}",
            )
        return raw, shape
    data = tensor["data"]
    if not isinstance(data, list):
        raise V2Error(400, f"{where} data must be a list")
    flat = _flatten(data, len(shape))
    if len(flat) != math.prod(shape):
        raise V2Error(
            400, f"{where} has {len(flat)} values, but shape {shape} needs {math.prod(shape)}"
        )
    for value in flat:
        _check_value(value, datatype, where)
    return flat, shape


def _array(values: list[Any] | np.ndarray, datatype: str, where: str) -> np.ndarray:
    """One column as the model sees it. The dtype follows the tensor's datatype, not the
    values (pandas would make `[5, 3]` int64 and `[5.5, 3]` float64), so a request's rows
    get the same column whether they are predicted alone or batched with others, and
    whether they came as JSON or as binary data."""
    if isinstance(values, np.ndarray):
        return _wire_array(values, datatype, where)
    missing = any(v is None for v in values)
    if datatype in NUMERIC:
        if datatype.startswith(("INT", "UINT")) and not missing:
            try:
                return np.array(values, dtype=np.int64)
            except OverflowError:
                raise V2Error(400, f"{where} holds an integer beyond 64 bits") from None
        try:
            return np.array(values, dtype=np.float64)  # missing values become NaN, for imputers
        except OverflowError:  # an integer with hundreds of digits: no float holds it
            raise V2Error(400, f"{where} holds a number beyond the range of FP64") from None
    if datatype == "BOOL" and not missing:
        return np.array(values, dtype=bool)
    # Strings (or booleans with gaps) as objects, a gap as NaN: that is how pandas reads a
    # missing value in a text column, and what the pipeline's imputer replaces (None it would
    # pass on to the encoder as one more unknown category).
    column = np.empty(len(values), dtype=object)
    column[:] = [np.nan if v is None else v for v in values] if missing else values
    return column


def _wire_array(values: np.ndarray, datatype: str, where: str) -> np.ndarray:
    """A binary tensor's values with the dtype the same JSON tensor would give."""
    if datatype.startswith("FP"):
        return values.astype(np.float64)
    if datatype.startswith(("INT", "UINT")):
        if datatype == "UINT64" and len(values) and values.max() > _INT64_MAX:
            raise V2Error(400, f"{where} holds an integer beyond 64 bits")
        return values.astype(np.int64)
    return values  # BOOL (bool) and BYTES (str objects) are decoded as they are used


def _check_value(value: Any, datatype: str, where: str) -> None:
    if value is None:
        return  # missing values: the model's pipeline imputes them
    if datatype == "BOOL":
        ok = isinstance(value, bool)
    elif datatype == "BYTES":
        ok = isinstance(value, str)
    elif datatype.startswith(("INT", "UINT")):
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok:
        raise V2Error(400, f"{where}: {value!r} is not a {datatype} value")


def columns(
    model: ServedModel, request: Any, raw: Mapping[int, np.ndarray] | None = None
) -> tuple[Columns, int]:
    """The request's inputs as feature columns, and the number of rows."""
    raw = raw or {}
    if not isinstance(request, dict):
        raise V2Error(400, "the request body must be a JSON object with `inputs`")
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise V2Error(400, "`inputs` must be a non-empty list of tensors")
    names = [f.name for f in model.features]
    first = inputs[0]
    if len(inputs) == 1 and isinstance(first, dict) and _two_dimensional(first.get("shape")):
        flat, shape = _values(first, "inputs[0]", raw.get(0))
        if len(shape) != 2 or shape[1] != len(names):
            raise V2Error(
                400,
                f"one input tensor must have shape [N, {len(names)}] with the "
                f"features in this order: {', '.join(names)}",
            )
        values = _array(flat, first["datatype"], "inputs[0]")
        return {n: values[i :: len(names)] for i, n in enumerate(names)}, shape[0]
    found: Columns = {}
    rows = -1
    for index, tensor in enumerate(inputs):
        flat, shape = _values(tensor, f"inputs[{index}]", raw.get(index))
        name = tensor["name"]
        if name not in names:
            raise V2Error(
                400,
                f"inputs[{index}]: unknown input {name!r}; the model's inputs are "
                f"{', '.join(names)}",
            )
        if len(shape) != 1:
            raise V2Error(400, f"inputs[{index}] ({name}) must have shape [N]")
        if rows not in (-1, shape[0]):
            raise V2Error(400, f"inputs[{index}] ({name}) has {shape[0]} rows, others {rows}")
        rows = shape[0]
        found[name] = _array(flat, tensor["datatype"], f"inputs[{index}]")
    missing = [n for n in names if n not in found]
    if missing:
        raise V2Error(400, f"missing input(s): {', '.join(missing)}")
    return found, rows


def _two_dimensional(shape: Any) -> bool:
    return isinstance(shape, list) and len(shape) == 2


def requested_outputs(model: ServedModel, request: Mapping[str, Any]) -> Sequence[str]:
    outputs = request.get("outputs")
    if outputs is None:
        return model.outputs
    if not isinstance(outputs, list):
        raise V2Error(400, '`outputs` must be a list of {"name": ...}')
    names = []
    for index, item in enumerate(outputs):
        name = item.get("name") if isinstance(item, dict) else None
        if name not in model.outputs:
            raise V2Error(
                400,
                f"outputs[{index}]: unknown output {name!r}; this model offers "
                f"{', '.join(model.outputs)}",
            )
        names.append(name)
    return names


def metadata(model: ServedModel) -> dict[str, Any]:
    outputs = [{"name": "predict", "datatype": model.predict_datatype, "shape": [-1]}]
    if model.classes is not None:
        outputs.append(
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(model.classes)]}
        )
    return {
        "name": model.name,
        "versions": [model.version],
        "platform": "sklearn",
        "inputs": [{"name": f.name, "datatype": f.datatype, "shape": [-1]} for f in model.features],
        "outputs": outputs,
    }

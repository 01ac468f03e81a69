"""Triton's binary tensor data extension to the Open Inference Protocol (HTTP/REST).

A request with an `Inference-Header-Content-Length: N` header carries N bytes of JSON, then
raw tensors: each input whose `parameters` hold `binary_data_size` takes that many bytes, in
the order of `inputs`. Elements are little-endian, BOOL is one byte, and BYTES elements are
each a 4-byte little-endian length followed by that many bytes. Outputs are sent the same way
when the request asks: `parameters.binary_data_output` for all of them, or
`parameters.binary_data` per output. `tritonclient` sends and asks for binary by default.

Every inconsistency (sizes that do not add up, lengths beyond the body, a size that is not a
whole number of elements) is the client's: a V2Error with status 400.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gitops_mlops.serving.errors import V2Error

# Element types as they travel (little-endian), by V2 datatype.
WIRE: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype("u1"),
    "INT8": np.dtype("i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "UINT8": np.dtype("u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
HEADER = b"inference-header-content-length"


def split(body: bytes, header_length: bytes) -> tuple[bytes, bytes]:
    """The JSON part and the binary part of a request body."""
    if not header_length.isdigit() or int(header_length) > len(body):
        raise V2Error(
            400,
            f"Inference-Header-Content-Length {header_length.decode('latin-1')!r} is not a "
            f"length within the {len(body)}-byte body",
        )
    length = int(header_length)
    return body[:length], body[length:]


def inputs(request: Any, blob: bytes) -> dict[int, np.ndarray]:
    """The binary inputs' values by their index in `inputs`, each flat, in wire order.

    Inputs without `binary_data_size` are left to the JSON reader; an input that has one but
    whose other fields are wrong is reported by it as well.
    """
    found: dict[int, np.ndarray] = {}
    tensors = request.get("inputs") if isinstance(request, dict) else None
    offset = 0
    for index, tensor in enumerate(tensors if isinstance(tensors, list) else ()):
        size = _binary_size(tensor, f"inputs[{index}]")
        if size is None:
            continue
        where = f"inputs[{index}]"
        if offset + size > len(blob):
            raise V2Error(
                400,
                f"{where}: binary_data_size {size} at byte {offset} runs past the "
                f"{len(blob)} bytes of binary data",
            )
        if "data" in tensor:
            raise V2Error(400, f"{where} has both `data` and binary_data_size; send one")
        found[index] = decode(blob[offset : offset + size], tensor.get("datatype"), where)
        offset += size
    if offset != len(blob):
        raise V2Error(
            400,
            f"the body has {len(blob)} bytes after the JSON header, but the inputs' "
            f"binary_data_size add up to {offset}",
        )
    return found


def _binary_size(tensor: Any, where: str) -> int | None:
    parameters = tensor.get("parameters") if isinstance(tensor, dict) else None
    if not isinstance(parameters, dict) or "binary_data_size" not in parameters:
        return None
    size = parameters["binary_data_size"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise V2Error(400, f"{where}: binary_data_size must be a non-negative integer")
    return size


def decode(chunk: bytes, datatype: Any, where: str) -> np.ndarray:
    """One tensor's raw bytes as a flat array (BYTES as an object array of str)."""
    if datatype == "BYTES":
        return _strings(chunk, where)
    wire = WIRE.get(datatype) if isinstance(datatype, str) else None
    if wire is None:
        raise V2Error(
            400, f"{where} datatype {datatype!r} is not one of {sorted([*WIRE, 'BYTES'])}"
        )
    if len(chunk) % wire.itemsize:
        raise V2Error(
            400,
            f"{where}: {len(chunk)} bytes are not a whole number of {datatype} values "
            f"({wire.itemsize} bytes each)",
        )
    values: np.ndarray = np.frombuffer(chunk, dtype=wire)
    return values != 0 if datatype == "BOOL" else values


def _strings(chunk: bytes, where: str) -> np.ndarray:
    items: list[str] = []
    offset, end = 0, len(chunk)
    while offset < end:
        if offset + 4 > end:
            raise V2Error(400, f"{where}: a BYTES element's 4-byte length is cut off")
        length = int.from_bytes(chunk[offset : offset + 4], "little")
        offset += 4
        if offset + length > end:
            raise V2Error(400, f"{where}: a BYTES element of {length} bytes runs past its data")
        try:
            items.append(chunk[offset : offset + length].decode("utf-8"))
        except UnicodeDecodeError:
            raise V2Error(400, f"{where}: a BYTES element is not UTF-8 text") from None
        offset += length
    column = np.empty(len(items), dtype=object)
    column[:] = items
    return column


def encode(values: np.ndarray, datatype: str) -> bytes:
    """An output tensor's values as raw bytes."""
    if datatype == "BYTES":
        parts = []
        for value in values.ravel().tolist():
            data = str(value).encode("utf-8")
            parts += [len(data).to_bytes(4, "little"), data]
        return b"".join(parts)
    return bytes(np.ascontiguousarray(values, dtype=WIRE[datatype]).tobytes())


def requested(request: Any, names: Sequence[str]) -> frozenset[str]:
    """Which of the outputs `names` the request wants as binary data."""
    parameters = request.get("parameters")
    every = False
    if parameters is not None:
        if not isinstance(parameters, dict):
            raise V2Error(400, "`parameters` must be an object")
        every = parameters.get("binary_data_output", False)
        if not isinstance(every, bool):
            raise V2Error(400, "parameters.binary_data_output must be true or false")
    chosen = set(names) if every else set()
    for index, item in enumerate(request.get("outputs") or ()):
        own = item.get("parameters") if isinstance(item, dict) else None
        if own is None:
            continue
        if not isinstance(own, dict) or not isinstance(own.get("binary_data", every), bool):
            raise V2Error(400, f"outputs[{index}].parameters.binary_data must be true or false")
        if own.get("binary_data", every):
            chosen.add(item["name"])
        else:
            chosen.discard(item["name"])
    return frozenset(chosen & set(names))

"""The column names and types of a Parquet file, read from its footer alone.

A Parquet file ends with its metadata (a Thrift compact-protocol `FileMetaData`), the
metadata's length and `PAR1`. Reading only that tail answers "which columns" without reading
any row and without pyarrow, whose import pulls numpy in (over a second): validation stays
fast. Only what columns need is decoded (the schema and the key-value metadata, where pandas
records its index columns and dtypes); everything else is skipped by type.
See https://github.com/apache/parquet-format (parquet.thrift) for the structures.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import IO, Any

MAGIC = b"PAR1"
MAX_FOOTER_BYTES = 16 * 1024 * 1024  # the row-group index of a very large file fits
_MAX_NESTING = 64

# Thrift compact protocol type ids
_STOP, _TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY = range(9)
_LIST, _SET, _MAP, _STRUCT = 9, 10, 11, 12

# parquet.thrift enums, as the names Parquet tools print
_PHYSICAL = {
    0: "boolean",
    1: "int32",
    2: "int64",
    3: "int96",
    4: "float",
    5: "double",
    6: "binary",
    7: "fixed_len_byte_array",
}
_CONVERTED = {0: "string", 1: "map", 2: "map", 3: "list", 4: "enum", 5: "decimal", 6: "date"}
_CONVERTED |= {19: "json", 20: "bson"}
_LOGICAL = {1: "string", 2: "map", 3: "list", 4: "enum", 5: "decimal", 6: "date", 7: "time"}
_LOGICAL |= {8: "timestamp"}
_LOGICAL |= {12: "json", 13: "bson", 14: "uuid", 15: "float16"}


class FooterError(Exception):
    """Not a readable Parquet file; the message says why."""


@dataclass(frozen=True)
class ParquetColumn:
    name: str
    type: str  # the Parquet type (`int64`, `double`, `string`, `timestamp`, `struct`, ...)
    pandas_dtype: str | None  # what pandas recorded when it wrote the file


def read_columns(stream: IO[bytes]) -> list[ParquetColumn]:
    """The top-level columns pandas would read from the Parquet file open in `stream`."""
    metadata = _decode(_footer(stream))
    elements = _structs(metadata.get(2))
    if not elements:
        raise FooterError("the Parquet footer holds no schema")
    pandas = _pandas_metadata(_structs(metadata.get(5, [])))
    index_columns = {c for c in pandas.get("index_columns", []) if isinstance(c, str)}
    dtypes = {
        str(c.get("field_name", c.get("name"))): _pandas_dtype(c)
        for c in pandas.get("columns", [])
        if isinstance(c, dict)
    }
    columns = []
    for element in _top_level(elements):
        name = _text(element.get(4, b""))
        if name not in index_columns:
            columns.append(ParquetColumn(name, _type_name(element), dtypes.get(name)))
    return columns


def _structs(value: Any) -> list[dict[int, Any]]:
    """A list of structs, as the footer must hold in this place."""
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise FooterError("the Parquet footer is damaged (a list of structures expected)")
    return value


def _children(element: dict[int, Any]) -> int:
    count = element.get(5, 0)
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise FooterError("the Parquet footer is damaged (a bad count of children)")
    return count


def _footer(stream: IO[bytes]) -> bytes:
    try:
        size = stream.seek(0, 2)
        if size < 12:
            raise FooterError("the file is too short to be Parquet")
        stream.seek(size - 8)
        tail = stream.read(8)
        length = struct.unpack("<I", tail[:4])[0]
        if tail[4:] != MAGIC:
            raise FooterError("the file does not end with PAR1: it is not Parquet")
        if length > min(MAX_FOOTER_BYTES, size - 12):
            raise FooterError(f"the Parquet footer claims {length} bytes; the file is damaged")
        stream.seek(size - 8 - length)
        footer = stream.read(length)
    except OSError as err:
        raise FooterError(f"cannot read the file: {err}") from None
    if len(footer) != length:
        raise FooterError("the Parquet footer is cut short")
    return footer


def _top_level(elements: list[dict[int, Any]]) -> list[dict[int, Any]]:
    """The root's children: the schema lists a tree depth first, each node with its count."""
    root, position, found = elements[0], 1, []
    for _ in range(_children(root)):
        if position >= len(elements):
            raise FooterError("the Parquet schema is cut short")
        found.append(elements[position])
        position = _skip_subtree(elements, position)
    return found


def _skip_subtree(elements: list[dict[int, Any]], position: int) -> int:
    pending = 1
    while pending:
        if position >= len(elements):
            raise FooterError("the Parquet schema is cut short")
        pending += _children(elements[position]) - 1
        position += 1
    return position


def _type_name(element: dict[int, Any]) -> str:
    logical = element.get(10)
    if isinstance(logical, dict) and logical:
        kind = next(iter(logical))
        integer = logical[kind]
        if kind == 10 and isinstance(integer, dict):  # INTEGER(bitWidth, isSigned)
            width, signed = integer.get(1, 64), integer.get(2, True)
            return f"{'' if signed is True else 'u'}int{width}"
        if kind in _LOGICAL:
            return _LOGICAL[kind]
    converted = _enum(element.get(6))
    if converted in _CONVERTED:
        return _CONVERTED[converted]
    if _children(element):
        return "struct"  # a group of fields: pandas reads a column of dicts
    physical = _enum(element.get(1))
    return _PHYSICAL.get(-1 if physical is None else physical, "unknown")


def _enum(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _pandas_metadata(pairs: list[dict[int, Any]]) -> dict[str, Any]:
    for pair in pairs:
        if _text(pair.get(1, b"")) == "pandas":
            try:
                found = json.loads(_text(pair.get(2, b"{}")))
            except ValueError:
                return {}
            return found if isinstance(found, dict) else {}
    return {}


def _pandas_dtype(column: dict[str, Any]) -> str | None:
    if column.get("pandas_type") == "categorical":
        return "category"
    numpy_type = column.get("numpy_type")
    return str(numpy_type) if numpy_type is not None else None


def _text(raw: Any) -> str:
    if not isinstance(raw, bytes):
        raise FooterError("the Parquet footer is damaged (a name that is not text)")
    return raw.decode("utf-8", "replace")


def _decode(footer: bytes) -> dict[int, Any]:
    reader = _Compact(footer)
    try:
        return reader.struct(0)
    except (IndexError, TypeError, struct.error, RecursionError):
        raise FooterError("the Parquet footer is damaged") from None


class _Compact:
    """Just enough of Thrift's compact protocol to read structs, lists and scalars."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def byte(self) -> int:
        value = self.data[self.at]
        self.at += 1
        return value

    def varint(self) -> int:
        shift = result = 0
        while True:
            byte = self.byte()
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7
            if shift > 70:
                raise IndexError("varint too long")

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def binary(self) -> bytes:
        size = self.varint()
        if self.at + size > len(self.data):
            raise IndexError("binary past the end")
        value = self.data[self.at : self.at + size]
        self.at += size
        return value

    def struct(self, depth: int) -> dict[int, Any]:
        if depth > _MAX_NESTING:
            raise IndexError("nesting too deep")
        fields: dict[int, Any] = {}
        last = 0
        while True:
            header = self.byte()
            kind = header & 0x0F
            if kind == _STOP:
                return fields
            delta = header >> 4
            last = last + delta if delta else self.zigzag()
            fields[last] = self.value(kind, depth)

    def value(self, kind: int, depth: int) -> Any:
        if kind in (_TRUE, _FALSE):
            return kind == _TRUE
        if kind == _BYTE:
            return self.byte()
        if kind in (_I16, _I32, _I64):
            return self.zigzag()
        if kind == _DOUBLE:
            self.at += 8
            return struct.unpack("<d", self.data[self.at - 8 : self.at])[0]
        if kind == _BINARY:
            return self.binary()
        if kind in (_LIST, _SET):
            header = self.byte()
            size = header >> 4 if header >> 4 != 15 else self.varint()
            element = header & 0x0F
            if element in (_TRUE, _FALSE):  # booleans in a list take one byte each
                return [self.byte() == 1 for _ in range(size)]
            return [self.value(element, depth + 1) for _ in range(size)]
        if kind == _MAP:
            size = self.varint()
            types = self.byte() if size else 0
            return {
                self.value(types >> 4, depth + 1): self.value(types & 0x0F, depth + 1)
                for _ in range(size)
            }
        if kind == _STRUCT:
            return self.struct(depth + 1)
        raise IndexError(f"unknown Thrift type {kind}")

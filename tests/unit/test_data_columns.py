"""Reading a dataset's columns from its header or footer only, checked against pandas."""

from __future__ import annotations

import datetime
import decimal
import io
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitops_mlops import data_columns, parquet_footer
from gitops_mlops.data_columns import ColumnsError, from_stream
from gitops_mlops.integrations.storage import StorageSettings


class CountingStream(io.BytesIO):
    """A stream that counts the bytes read from it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.consumed = 0

    def read(self, size: int | None = -1, /) -> bytes:
        chunk = super().read(size)
        self.consumed += len(chunk)
        return chunk

    def readinto(self, buffer: Any, /) -> int:
        count = super().readinto(buffer)
        self.consumed += count
        return count


@pytest.mark.parametrize(
    "header",
    [
        "a,b,c",
        "a,a,b,a",  # repeated names
        "a,,b,",  # empty names
        '"x, y",z,"q""uote"',  # quoted commas and quotes
        "\ufeffa,b",  # a byte-order mark
        "\n\nspaced out , b",  # blank lines first; spaces kept
        "a,a.1,a",  # a repeat that meets an existing `a.1`
        "ünï,çødé",
    ],
)
def test_csv_header_names_are_those_pandas_gives(header: str) -> None:
    raw = (header + "\n1,2,3,4\n").encode("utf-8")
    expected = [str(c) for c in pd.read_csv(io.BytesIO(raw)).columns]
    assert from_stream(io.BytesIO(raw), "csv", "t.csv").names == expected


def test_only_the_start_of_a_big_csv_is_read() -> None:
    # 40 MB of rows, and bytes further down that are not UTF-8: neither is touched.
    rows = b"1.5,2,x\n" * 5_000_000 + b"\xff\xfe,\xff,\xff\n"
    stream = CountingStream(b"alpha,beta,gamma\n" + rows)
    found = from_stream(stream, "csv", "big.csv")
    assert found.names == ["alpha", "beta", "gamma"]
    assert stream.consumed <= data_columns.MAX_HEADER_BYTES + 1


def test_csv_dtypes_come_from_a_bounded_sample() -> None:
    # The first 1,000 rows are numbers; a text value comes after them.
    text = "n,s\n" + "1,a\n" * 1000 + "oops,b\n" * 10
    found = from_stream(io.BytesIO(text.encode()), "csv", "s.csv", dtypes=True)
    assert [(c.name, c.dtype) for c in found.columns] == [
        ("n", "int64"),
        ("s", str(pd.read_csv(io.StringIO(text)).dtypes["s"])),
    ]
    assert found.dtypes_from == "pandas' inference on the first 1000 rows"
    small = from_stream(io.BytesIO(b"n\n1\n2\n"), "csv", "s.csv", dtypes=True)
    assert small.dtypes_from == "pandas' inference on all 2 rows"


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"", "is empty"),
        (b"\n\n", "is empty"),
        (b"\xff\xfeab,c\n", "byte 0xff near the start is not UTF-8"),
        (b"x" * (data_columns.MAX_HEADER_BYTES + 10), "longer than 1048576 bytes"),
    ],
    ids=["empty", "blank", "not-utf8", "endless-header"],
)
def test_unreadable_csv_headers(raw: bytes, fragment: str) -> None:
    with pytest.raises(ColumnsError, match=fragment):
        from_stream(io.BytesIO(raw), "csv", "bad.csv")


TABLES: dict[str, pa.Table] = {
    "scalars": pa.table(
        {
            "i64": pa.array([1, None], pa.int64()),
            "i8": pa.array([1, 2], pa.int8()),
            "u16": pa.array([1, 2], pa.uint16()),
            "f32": pa.array([1.5, 2.5], pa.float32()),
            "f64": pa.array([1.5, None], pa.float64()),
            "flag": pa.array([True, None]),
            "text": pa.array(["a", None]),
            "blob": pa.array([b"a", b"b"], pa.binary()),
        }
    ),
    "dates-and-numbers": pa.table(
        {
            "day": pa.array([datetime.date(2024, 1, 1), None]),
            "ts": pa.array([1, 2], pa.timestamp("ms")),
            "tz": pa.array([1, 2], pa.timestamp("us", tz="UTC")),
            "money": pa.array([decimal.Decimal("1.25"), None], pa.decimal128(6, 2)),
            "dict": pa.array(["a", "b"]).dictionary_encode(),
        }
    ),
    "nested": pa.table(
        {
            "point": pa.array([{"x": 1, "y": {"z": 2}}, None]),
            "tags": pa.array([["a"], ["b", "c"]]),
            "props": pa.array([[("k", 1)], []], pa.map_(pa.string(), pa.int64())),
            "after": pa.array([1, 2]),
        }
    ),
    "odd-names": pa.table({"": [1, 2], "a b": [1, 2], "ü/ñ": [1, 2], "0": [1, 2]}),
}
FRAMES: dict[str, pd.DataFrame] = {
    "pandas-with-index": pd.DataFrame(
        {"a": [1, 2], "b": ["x", "y"], "c": pd.Categorical(["u", "v"])}, index=[10, 20]
    ),
    "pandas-named-index": pd.DataFrame({"a": [1.0, 2.0]}, index=pd.Index([3, 4], name="id")),
    "pandas-range-index": pd.DataFrame(
        {"when": pd.to_datetime(["2024-01-01", "2024-01-02"]), "n": [1, 2]}
    ),
    "pandas-multiindex": pd.DataFrame(
        {"v": [1, 2]}, index=pd.MultiIndex.from_tuples([(1, "a"), (2, "b")], names=["k", "l"])
    ),
}


def parquet_bytes(table: pa.Table | pd.DataFrame) -> bytes:
    sink = io.BytesIO()
    if isinstance(table, pd.DataFrame):
        table.to_parquet(sink)
    else:
        pq.write_table(table, sink)
    return sink.getvalue()


@pytest.mark.parametrize("name", [*TABLES, *FRAMES])
def test_parquet_columns_are_those_pandas_reads(name: str) -> None:
    raw = parquet_bytes(TABLES.get(name, FRAMES.get(name)))
    stream = CountingStream(raw)
    found = from_stream(stream, "parquet", f"{name}.parquet", dtypes=True)
    frame = pd.read_parquet(io.BytesIO(raw))
    assert found.names == [str(c) for c in frame.columns]
    # The footer and its length: no row is read.
    footer = int.from_bytes(raw[-8:-4], "little")
    assert stream.consumed == footer + 8
    if name in FRAMES:  # pandas recorded its dtypes: they are the ones it reads back
        assert [c.dtype for c in found.columns] == [str(t) for t in frame.dtypes]


def test_parquet_types_are_named_as_parquet_names_them() -> None:
    found = from_stream(io.BytesIO(parquet_bytes(TABLES["scalars"])), "parquet", "s", True)
    assert [c.dtype for c in found.columns] == [
        "int64",
        "int8",
        "uint16",
        "float",
        "double",
        "boolean",
        "string",
        "binary",
    ]
    nested = from_stream(io.BytesIO(parquet_bytes(TABLES["nested"])), "parquet", "n", True)
    assert [c.dtype for c in nested.columns] == ["struct", "list", "map", "int64"]


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"a,b\n1,2\n", "too short"),
        (b"a,b\n1,2\n3,4\n5,6\n", "does not end with PAR1"),
        (b"PAR1" + b"\xff\xff\xff\x7f" + b"PAR1", "claims 2147483647 bytes"),
        (b"PAR1" + b"\x19\x0c" + b"\x02\x00\x00\x00" + b"PAR1", "damaged"),
    ],
    ids=["short", "csv", "huge-footer", "garbage-footer"],
)
def test_files_that_are_not_parquet(raw: bytes, fragment: str) -> None:
    with pytest.raises(ColumnsError, match=fragment):
        from_stream(io.BytesIO(raw), "parquet", "x.parquet")


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_a_damaged_footer_is_an_error_never_a_crash(data: st.DataObject) -> None:
    raw = bytearray(parquet_bytes(FRAMES["pandas-with-index"]))
    footer = int.from_bytes(raw[-8:-4], "little")
    start = len(raw) - 8 - footer
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(start, len(raw) - 9))
        raw[at] = data.draw(st.integers(0, 255))
    try:
        found = parquet_footer.read_columns(io.BytesIO(bytes(raw)))
    except parquet_footer.FooterError:
        return
    assert all(isinstance(c.name, str) and isinstance(c.type, str) for c in found)


def test_builtin_datasets_come_from_the_registry() -> None:
    iris = data_columns.of_builtin("iris")
    assert iris.names[-1] == "target" and len(iris.names) == 5
    assert {c.dtype for c in iris.columns} == {"float64", "int64"}


def test_a_url_is_read_from_object_storage_not_from_the_folder(tmp_path: Path) -> None:
    # Unit tests refuse connections: the error shows the read went to the store, not to a
    # file named like the URL. tests/integration/test_object_storage.py reads it for real.
    (tmp_path / "s3:").mkdir()
    with pytest.raises(ColumnsError, match=r"^s3://bucket/train\.csv: cannot read it"):
        data_columns.read("s3://bucket/train.csv", tmp_path, None, storage=StorageSettings({}))


def test_a_url_without_store_settings_is_refused(tmp_path: Path) -> None:
    """The settings are passed down by the command; nothing below reads the environment."""
    with pytest.raises(ColumnsError, match="no object store settings given"):
        data_columns.read("s3://bucket/train.csv", tmp_path, None)

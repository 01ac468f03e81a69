"""The columns of a dataset the spec names, found without reading its rows.

- a built-in dataset: the registry (`builtin_datasets`), nothing is loaded;
- a CSV file: its header line, parsed the way pandas parses it (blank lines skipped, empty
  names `Unnamed: N`, repeated names `name.1`); dtypes, when asked, are inferred by pandas
  from the first `CSV_SAMPLE_ROWS` rows (a bounded sample: a value further down can still
  change a column's type over the whole file);
- a Parquet file: the schema in its footer (`parquet_footer`), without pyarrow; dtypes are
  what pandas recorded when it wrote the file, else the Parquet type.

`read` is the one function that opens a data file for its columns (`mlops validate` and
`mlops columns` both use it); `open_data` is where reading a URL plugs in.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from gitops_mlops import data_url
from gitops_mlops.builtin_datasets import BUILTINS
from gitops_mlops.errors import MlopsError
from gitops_mlops.parquet_footer import FooterError
from gitops_mlops.parquet_footer import read_columns as parquet_columns

if TYPE_CHECKING:
    from gitops_mlops.integrations.storage import StorageSettings

CSV_SAMPLE_ROWS = 1000
MAX_HEADER_BYTES = 1024 * 1024
Format = Literal["csv", "parquet"]


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str | None = None  # None when dtypes were not asked for


@dataclass(frozen=True)
class DataColumns:
    source: str  # what was read, for messages: `data/train.csv`, `builtin iris`
    format: Literal["builtin", "csv", "parquet"]
    columns: tuple[Column, ...]
    dtypes_from: str | None  # how the dtypes were found; None when they were not asked for

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


class ColumnsError(MlopsError):
    """A data file whose columns cannot be read; the message says why."""


class DataUnreachable(ColumnsError):
    """The data's store could not be read (missing object, denied, not answering): the
    store is at fault, not the data or the spec."""


def of_builtin(name: str) -> DataColumns:
    entry = BUILTINS[name]
    columns = tuple(Column(c, entry.dtype(c)) for c in entry.columns)
    return DataColumns(f"builtin {name}", "builtin", columns, "scikit-learn's dataset")


def data_format(location: str, declared: str | None) -> Format:
    """`format:` when the spec says, else from the extension (as training reads it)."""
    if declared in ("csv", "parquet"):
        return declared  # type: ignore[return-value]
    suffix = data_url.suffix(location) if data_url.is_url(location) else Path(location).suffix
    return "parquet" if suffix.lower() in (".parquet", ".pq") else "csv"


def read(
    location: str,
    base: Path,
    declared: str | None,
    dtypes: bool = False,
    storage: StorageSettings | None = None,
) -> DataColumns:
    """The columns of the data file at `location` (relative to `base`, or a URL: read with
    `storage`, the object stores' settings the command resolved)."""
    kind = data_format(location, declared)
    with open_data(location, base, storage, kind) as stream:
        return from_stream(stream, kind, data_url.shown(location), dtypes)


def from_stream(stream: IO[bytes], kind: Format, shown: str, dtypes: bool = False) -> DataColumns:
    """The columns of the data in a binary stream; reads its header or footer only. A
    Parquet stream must seek (its schema is at the end); a CSV stream is read from its start
    only."""
    if kind == "parquet":
        try:
            found = parquet_columns(stream)
        except FooterError as err:
            raise ColumnsError(f"cannot read {shown!r} as Parquet: {err}") from None
        columns = tuple(
            Column(c.name, (c.pandas_dtype or c.type) if dtypes else None) for c in found
        )
        how = "the Parquet schema (pandas dtypes where the file records them)"
        return DataColumns(shown, "parquet", columns, how if dtypes else None)
    raw = stream.read(MAX_HEADER_BYTES + 1)
    names = _csv_header(raw, shown)
    if not dtypes:
        return DataColumns(shown, "csv", tuple(Column(n) for n in names), None)
    # The sample starts with the bytes already read: no seek back, so a stream that can only
    # go forward (an https object) works too.
    return _csv_dtypes(io.BufferedReader(_Replay(raw, stream)), shown)


class _Replay(io.RawIOBase):
    """`first`, then the rest of `rest`: a stream read from its start again."""

    def __init__(self, first: bytes, rest: IO[bytes]) -> None:
        self.first = memoryview(first)
        self.rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.first:
            count = min(len(buffer), len(self.first))
            buffer[:count] = self.first[:count]
            self.first = self.first[count:]
            return count
        data = self.rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


@contextmanager
def open_data(
    location: str, base: Path, settings: StorageSettings | None = None, kind: Format = "parquet"
) -> Iterator[IO[bytes]]:
    """The bytes of a data file, for reading its header (`kind` csv: from the start) or its
    footer (parquet: seekable).

    A URL is where remote reading plugs in (a header or a footer, never the whole object);
    `mlops validate` never gets here for a URL (it checks the syntax only).
    """
    if data_url.is_url(location):
        from gitops_mlops.integrations import storage

        if settings is None:
            raise ColumnsError(f"{data_url.display(location)}: no object store settings given")
        opener = storage.from_start if kind == "csv" else storage.random_access
        try:
            with opener(storage.Store.for_url(location, settings)) as handle:
                yield handle
        except storage.StorageError as err:
            raise DataUnreachable(str(err)) from None
        return
    try:
        handle = (base / location).open("rb")
    except FileNotFoundError:
        raise ColumnsError(f"data file {location!r} not found (under {base})") from None
    except OSError as err:
        raise ColumnsError(f"cannot open {location!r}: {err.strerror}") from None
    with handle:
        yield handle


def _csv_header(raw: bytes, shown: str) -> list[str]:
    try:
        # Incremental: a character cut at the end of the chunk is not an error.
        text = codecs.getincrementaldecoder("utf-8-sig")().decode(
            raw, final=len(raw) <= MAX_HEADER_BYTES
        )
    except UnicodeDecodeError as err:
        raise ColumnsError(
            f"cannot read {shown!r} as CSV: byte 0x{raw[err.start]:02x} near the start is not "
            "UTF-8; save the file as UTF-8"
        ) from None
    if len(raw) > MAX_HEADER_BYTES and "\n" not in text:
        raise ColumnsError(f"the header line of {shown!r} is longer than {MAX_HEADER_BYTES} bytes")
    for row in csv.reader(io.StringIO(text)):
        if row:  # pandas skips blank lines before the header
            return _as_pandas_names(row)
    raise ColumnsError(f"{shown!r} is empty: a CSV file starts with a header line of column names")


def _as_pandas_names(row: list[str]) -> list[str]:
    """The names pandas gives these header fields."""
    names: list[str] = []
    counts: dict[str, int] = {}
    for index, field in enumerate(row):
        name = field or f"Unnamed: {index}"
        base, seen = name, counts.get(name, 0)
        while name in counts:
            seen += 1
            name = f"{base}.{seen}"
        counts[base] = seen
        counts.setdefault(name, 0)
        names.append(name)
    return names


def _csv_dtypes(stream: IO[bytes], shown: str) -> DataColumns:
    import pandas as pd

    try:
        sample = pd.read_csv(stream, nrows=CSV_SAMPLE_ROWS)
    except (ValueError, pd.errors.ParserError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ColumnsError(f"cannot read {shown!r} as CSV: {message}") from None
    rows = len(sample)
    columns = tuple(Column(str(n), str(t)) for n, t in sample.dtypes.items())
    how = (
        f"pandas' inference on the first {rows} rows"
        if rows == CSV_SAMPLE_ROWS
        else f"pandas' inference on all {rows} rows"
    )
    return DataColumns(shown, "csv", columns, how)

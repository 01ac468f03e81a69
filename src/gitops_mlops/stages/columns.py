"""`mlops columns`: the columns of the data a spec names, with their dtypes and roles.

Only headers are read (a CSV's header and a bounded sample for dtypes, a Parquet footer, the
built-in registry), so it answers at once for any size of data, and it works on a spec whose
columns are wrong: that is when it is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops_mlops import data_columns
from gitops_mlops.builtin_datasets import TARGET
from gitops_mlops.errors import DataUnavailable, Diagnostic, SpecError
from gitops_mlops.integrations.storage import StorageSettings
from gitops_mlops.spec import document, schema, semantics
from gitops_mlops.spec.schema import display_path


@dataclass(frozen=True)
class Dataset:
    key: str  # data.train, data.test
    columns: data_columns.DataColumns
    roles: dict[str, str]  # column -> target | feature | unused

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.key,
            "source": self.columns.source,
            "format": self.columns.format,
            "dtypes_from": self.columns.dtypes_from,
            "columns": [
                {"name": c.name, "dtype": c.dtype, "role": self.roles[c.name]}
                for c in self.columns.columns
            ],
        }


def columns(spec_path: Path, display: str, storage: StorageSettings) -> list[Dataset]:
    """The train (and test) data's columns; SpecError when the data section is unusable.
    `storage`: the object stores' settings, for data at a URL."""
    try:
        doc = document.load_file(spec_path, display)
    except document.DocumentError as err:
        raise SpecError([Diagnostic(display, err.line, err.column, "", err.message)]) from None
    checked = schema.check_parts(doc)
    spec_dir = spec_path.parent.absolute()
    root = semantics.repository_root(spec_dir)
    problems = [d for d in checked.diagnostics if d.path == "data" or d.path.startswith("data.")]
    problems += semantics.data_path_problems(doc, spec_dir, root, checked.invalid)
    if problems:
        raise SpecError(sorted(problems, key=lambda d: (d.line, d.column)))
    data: dict[str, Any] = doc.data["data"]
    train: dict[str, Any] = data["train"]
    target = train.get("target", TARGET)
    found = []
    for key in ("train", "test"):
        if key in data:
            read = _located(doc, key, data[key], spec_dir, storage)
            roles = {name: _role(name, target, train.get("features")) for name in read.names}
            found.append(Dataset(f"data.{key}", read, roles))
    return found


def _located(
    doc: document.Document,
    key: str,
    dataset: dict[str, Any],
    spec_dir: Path,
    storage: StorageSettings,
) -> data_columns.DataColumns:
    """The dataset's columns; a failure is located at its `path` in the spec, as `mlops run`
    locates it: a store that fails is exit 1 (the spec is not wrong), a file that is missing
    or cannot be parsed is a spec error."""
    try:
        return _read(dataset, spec_dir, storage)
    except data_columns.ColumnsError as err:
        where = ("data", key, "path")
        at = doc.value_location(where)
        found = Diagnostic(doc.file, at.line, at.column, display_path(where), str(err))
        if isinstance(err, data_columns.DataUnreachable):
            raise DataUnavailable(found) from None
        raise SpecError([found]) from None


def _read(
    dataset: dict[str, Any], spec_dir: Path, storage: StorageSettings
) -> data_columns.DataColumns:
    if "builtin" in dataset:
        return data_columns.of_builtin(dataset["builtin"])
    path, declared = dataset["path"], dataset.get("format")
    return data_columns.read(path, spec_dir, declared, dtypes=True, storage=storage)


def _role(name: str, target: str, features: list[str] | None) -> str:
    if name == target:
        return "target"
    if features is None or name in features:
        return "feature"
    return "unused"

"""Checks a JSON Schema cannot express, each reported at the key or value it concerns.

They run in the same pass as the schema, on every part of the document the schema accepted:
the checker reads values through `value`, which treats a part with a schema error (or below
one) as absent, and a check that compares parts (a threshold's slice with the slices) runs
only when every part it compares is usable, so it never blames a line for another's error.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Mapping
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from gitops_mlops import builtin_datasets, data_columns, data_url, globs, metrics
from gitops_mlops.errors import Diagnostic
from gitops_mlops.manifests import UPDATERS
from gitops_mlops.spec import param_constraints
from gitops_mlops.spec.document import Document, PathKey
from gitops_mlops.spec.estimator import EstimatorError, resolve
from gitops_mlops.spec.model import BUILTIN_CLASSES
from gitops_mlops.spec.schema import did_you_mean, display_path

# Unicode categories refused in paths and names: C0/C1 controls (NUL, newline, ESC, DEL),
# format characters (bidirectional overrides that disguise a path) and line separators.
_CONTROL = frozenset({"Cc", "Cf", "Zl", "Zp"})
_KIND_FOR_TASK = {"classification": "classifier", "regression": "regressor"}


_MISSING: Any = object()  # absent, or made unusable by a schema error


class _Checker:
    def __init__(
        self, doc: Document, spec_dir: Path, repo_root: Path, invalid: frozenset[PathKey]
    ) -> None:
        self.doc = doc
        self.spec_dir = spec_dir
        self.repo_root = repo_root
        self.invalid = invalid
        self.found: list[Diagnostic] = []
        self.task: str | None = self.value(("task",), None)
        self.local_data: set[PathKey] = set()  # datasets whose file is in the repository

    # --- reading the parts the schema accepted ----------------------------------------
    def value(self, path: PathKey, default: Any = _MISSING) -> Any:
        """The value at `path` when present and neither it nor a part above it has a schema
        error (errors inside it are the caller's to avoid, with `clean`)."""
        if self.blamed(path):
            return default
        value: Any = self.doc.data
        for part in path:
            value = _child(value, part)
            if value is _MISSING:
                return default
        return value

    def clean(self, path: PathKey) -> bool:
        """Whether nothing at, above or inside `path` has a schema error (absent is clean)."""
        size = len(path)
        return not any(bad[:size] == path or path[: len(bad)] == bad for bad in self.invalid)

    def items(self, path: PathKey) -> list[tuple[int, Any]]:
        """The usable items of a list (with their indexes)."""
        found = self.value(path, [])
        return [(i, self.value((*path, i))) for i in range(len(found)) if self.clean((*path, i))]

    def names(self, path: PathKey) -> list[str] | None:
        """The `name` of every item of a list; None when one of them is unusable, so that a
        check naming them ("not an environment") cannot blame the wrong line."""
        found = self.value(path)
        if found is _MISSING:
            return None if self.blamed(path) else []
        names = [self.value((*path, i, "name"), None) for i in range(len(found))]
        usable = all(self.clean((*path, i, "name")) for i in range(len(found)))
        return names if usable and None not in names else None

    def blamed(self, path: PathKey) -> bool:
        """Whether `path` or a part above it has a schema error."""
        return any(path[:end] in self.invalid for end in range(len(path) + 1))

    def error(self, path: PathKey, message: str, at_key: bool = False) -> None:
        loc = self.doc.key_location(path) if at_key else self.doc.value_location(path)
        self.found.append(
            Diagnostic(self.doc.file, loc.line, loc.column, display_path(path), message)
        )

    # --- metadata ---------------------------------------------------------------------
    def metadata(self) -> None:
        """Limitations are sentences for the model card: none may be blank."""
        for index, text in self.items(("metadata", "limitations")):
            if not text.strip():
                self.error(
                    ("metadata", "limitations", index),
                    "this limitation is blank; say where the model should not be trusted, "
                    "or remove the item",
                )

    # --- data -------------------------------------------------------------------------
    def data(self) -> None:
        builtin = self.value(("data", "train", "builtin"), None)
        if builtin is not None and self.task is not None:
            task = "regression" if BUILTIN_CLASSES[builtin] == 0 else "classification"
            if task != self.task:
                self.error(
                    ("data", "train", "builtin"),
                    f"builtin dataset {builtin!r} is a {task} dataset, but task is {self.task}",
                )
        if self.value(("data", "test")) is not _MISSING and "split" in self.value(("data",), {}):
            self.error(
                ("data", "split"),
                "data.split is not used when data.test is given; remove one of them",
                at_key=True,
            )
        target = self.value(("data", "train", "target"), None)
        for index, feature in self.items(("data", "train", "features")):
            if target is not None and feature == target:
                self.error(
                    ("data", "train", "features", index),
                    f"the target column {target!r} cannot also be a feature",
                )
                break
        for key in ("train", "test"):
            if self.value(("data", key, "path")) is not _MISSING:
                self.data_path(("data", key, "path"))
        if self.value(("container", "smoke_test", "input")) is not _MISSING:
            self.repo_path(("container", "smoke_test", "input"))

    def data_path(self, path: PathKey) -> None:
        """A data URL is checked for syntax only (validation reads nothing remote)."""
        value: str = self.value(path)
        if not self.printable(path):
            return
        if not data_url.is_url(value):
            if self.repo_path(path):
                self.local_data.add(path[:-1])
        elif (problem := data_url.problem(value)) is not None:
            self.error(path, problem)

    def printable(self, path: PathKey) -> bool:
        """Paths and names reach the file system, git and manifests: no control characters."""
        value: str = self.value(path)
        bad = next((c for c in value if unicodedata.category(c) in _CONTROL), None)
        if bad is None:
            return True
        self.error(
            path,
            f"{value!r} contains U+{ord(bad):04X}, a control or invisible character, at "
            f"position {value.index(bad) + 1}; remove it",
        )
        return False

    def repo_path(self, path: PathKey) -> bool:
        """A path in the spec must resolve inside the repository, symlinks included."""
        value: str = self.value(path)
        if not self.printable(path):
            return False
        if _is_absolute(value):
            self.error(path, f"{value!r} is absolute; give a path relative to the spec's folder")
            return False
        joined = Path(os.path.normpath(self.spec_dir.absolute() / value))
        root = self.repo_root.absolute()
        if not _inside(joined, root):
            self.error(path, f"{value!r} leaves the repository (..); keep data inside it")
            return False
        if not _inside(joined.resolve(), root.resolve()):
            self.error(
                path, f"{value!r} is a symlink that leaves the repository; keep data inside it"
            )
            return False
        return True

    def inputs(self) -> None:
        """`inputs:` globs must parse and stay inside the repository."""
        for index, pattern in self.items(("inputs",)):
            reason = globs.problem(pattern)
            if reason is not None:
                self.error(("inputs", index), reason)

    # --- columns ----------------------------------------------------------------------
    def columns(self) -> None:
        """Target, features and slice columns against the data's header (after `data`)."""
        train = self.dataset_columns(("data", "train"))
        target = self.value(("data", "train", "target"), None)
        if target is None and self.value(("data", "train", "builtin"), None) is not None:
            target = builtin_datasets.TARGET
        if train is not None and target is not None and target not in train.names:
            self.missing_column(("data", "train", "target"), "target", target, train)
        for i, name in self.items(("data", "train", "features")):
            if train is not None and name not in train.names:
                self.missing_column(("data", "train", "features", i), "feature", name, train)
        features = self.features(train, target)
        if train is not None and target not in train.names:
            target = None  # reported above; not used again, so it is reported once
        if features is not None and target is not None:
            features = [f for f in features if train is None or f in train.names]
            self.slice_columns([*features, target])
        test = self.dataset_columns(("data", "test"))
        if test is not None and features is not None and target is not None:
            self.test_columns(test, train, [*features, target])

    def dataset_columns(self, path: PathKey) -> data_columns.DataColumns | None:
        """The columns of a dataset, when they can be known without reading rows."""
        builtin = self.value((*path, "builtin"), None)
        if builtin is not None:
            return data_columns.of_builtin(builtin)
        location = self.value((*path, "path"), None)
        if path not in self.local_data or location is None:
            return None  # a URL (syntax only), or a path already reported
        if not (self.spec_dir / location).is_file():
            return None  # training says so; data may be fetched (e.g. `dvc pull`) before it
        try:
            return data_columns.read(location, self.spec_dir, self.value((*path, "format"), None))
        except data_columns.ColumnsError as err:
            self.error((*path, "path"), str(err))
            return None

    def features(
        self, train: data_columns.DataColumns | None, target: str | None
    ) -> list[str] | None:
        """The model's input columns: `features:`, else every column but the target."""
        if self.value(("data", "train", "features")) is not _MISSING:
            if not self.clean(("data", "train", "features")):
                return None
            return list(self.value(("data", "train", "features")))
        if train is None:
            return None
        return [c for c in train.names if c != target]

    def missing_column(
        self, path: PathKey, role: str, name: str, found: data_columns.DataColumns
    ) -> None:
        hint = did_you_mean(name, found.names) or f" (columns: {_some(found.names)})"
        self.error(path, f"{role} column {name!r} is not in {found.source}{hint}")

    def slice_columns(self, available: list[str]) -> None:
        for i, _ in enumerate(self.value(("evaluation", "slices"), [])):
            path: PathKey = ("evaluation", "slices", i, "where", "column")
            column = self.value(path, None)
            if column is None or column in available:
                continue
            hint = did_you_mean(column, available) or f" (columns: {_some(available)})"
            self.error(
                path,
                f"slice column {column!r} is not a feature or the target of the model{hint}",
            )

    def test_columns(
        self,
        test: data_columns.DataColumns,
        train: data_columns.DataColumns | None,
        needed: list[str],
    ) -> None:
        """The rule training applies: the test data has the model's columns and no others."""
        missing = [c for c in needed if c not in test.names]
        extra = [c for c in test.names if train is not None and c not in train.names]
        parts = [f"missing {_some(missing)}"] if missing else []
        parts += [f"not in the training data: {_some(extra)}"] if extra else []
        if parts:
            self.error(
                ("data", "test", "path"),
                f"test data columns differ from the training data ({'; '.join(parts)})",
            )

    # --- model ------------------------------------------------------------------------
    def model(self) -> None:
        model = self.value(("model",), {})
        if "command" in model:
            for key in ("search", "params"):
                if key in model:
                    self.error(
                        ("model", key),
                        f"model.{key} applies to model.estimator; a training command "
                        "gets its settings its own way",
                        at_key=True,
                    )
            return
        path = self.value(("model", "estimator"), None)
        allowed_modules = self.value(("model", "allow_modules"), ())
        if path is None or not self.clean(("model", "allow_modules")):
            return
        try:
            info = resolve(path, tuple(allowed_modules))
        except EstimatorError as err:
            self.error(("model", "estimator"), str(err))
            return
        wanted = _KIND_FOR_TASK.get(self.task or "")
        if wanted is not None and wanted not in info.kinds:
            kind = next((k for k in ("classifier", "regressor") if k in info.kinds), None)
            what = f"a {kind}" if kind else "not a classifier or regressor"
            self.error(
                ("model", "estimator"),
                f"{path} is {what}, but task is {self.task}; choose a {wanted}",
            )
        self.param_values(path)
        if info.params is None:
            return
        allowed = sorted(info.params)
        for where in (("model", "params"), ("model", "search", "space")):
            for key in self.value(where, {}):
                if key not in info.params:
                    self.error(
                        (*where, key),
                        f"{path} has no parameter {key!r}{did_you_mean(key, allowed)}",
                        at_key=True,
                    )

    def param_values(self, estimator: str) -> None:
        """Values scikit-learn's `_parameter_constraints` would refuse when `fit` starts."""
        candidates: list[tuple[PathKey, str, Any]] = [
            (("model", "params", key), key, value)
            for key, value in self.value(("model", "params"), {}).items()
            if self.clean(("model", "params", key))
        ]
        for key, values in self.value(("model", "search", "space"), {}).items():
            if self.clean(("model", "search", "space", key)) and isinstance(values, list):
                candidates += [
                    (("model", "search", "space", key, i), key, v) for i, v in enumerate(values)
                ]
        for where, key, value in candidates:
            rejection = param_constraints.check(estimator, key, value)
            if rejection is None:
                continue
            hint = did_you_mean(value, list(rejection.options)) if isinstance(value, str) else ""
            shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
            self.error(
                where, f"{estimator} parameter {key!r} {rejection.message}, not {shown}{hint}"
            )

    # --- evaluation -------------------------------------------------------------------
    def computed_metrics(self) -> set[str] | None:
        """The metrics evaluation computes; None when that cannot be told."""
        if self.task is None or not self.clean(("evaluation", "metrics")):
            return None
        if not self.clean(("evaluation", "latency")):
            return None
        default = metrics.DEFAULT_METRICS[self.task]  # type: ignore[index]
        names = set(self.value(("evaluation", "metrics"), default))
        if self.value(("evaluation", "latency"), {}) is not False:
            names |= {"latency_p50_ms", "latency_p95_ms"}
        return names

    def metric(self, path: PathKey) -> metrics.Metric | None:
        name: str = self.value(path)
        metric = metrics.get(name)
        task = self.task
        if metric is None:
            listed = f" (metrics for {task}: {', '.join(metrics.names_for(task))})" if task else ""  # type: ignore[arg-type]
            close = metrics.suggestion(name, task)  # type: ignore[arg-type]
            self.error(
                path,
                f"unknown metric {name!r}"
                + (f"; did you mean {close!r}?" if close else "")
                + listed,
            )
            return None
        if task is None:
            return metric
        if task not in metric.tasks:
            self.error(
                path,
                f"metric {name!r} is for {'/'.join(sorted(metric.tasks))}, but task is "
                f"{task}; use one of {', '.join(metrics.names_for(task))}",  # type: ignore[arg-type]
            )
            return None
        classes = BUILTIN_CLASSES.get(self.value(("data", "train", "builtin"), ""), None)
        if classes and metric.classes == "binary" and classes > 2:
            self.error(path, metrics.misfit(metric, classes))
        if classes and metric.classes == "multiclass" and classes == 2:
            self.error(path, metrics.misfit(metric, classes))
        return metric

    def positive_label(self) -> None:
        """evaluation.positive_label: a class of a built-in dataset (0 .. classes - 1)."""
        path: PathKey = ("evaluation", "positive_label")
        label = self.value(path, _MISSING)
        if label is _MISSING or self.task is None:
            return
        if self.task != "classification":
            self.error(path, "positive_label applies to classification; remove it", at_key=True)
            return
        classes = BUILTIN_CLASSES.get(self.value(("data", "train", "builtin"), ""), 0)
        if classes and (isinstance(label, bool) or label not in range(classes)):
            self.error(
                path,
                f"positive_label {label!r} is not a class of this built-in dataset; its "
                f"classes are {', '.join(str(c) for c in range(classes))}",
            )

    def evaluation(self) -> None:
        latency = self.value(("evaluation", "latency"), None)
        for i, name in self.items(("evaluation", "metrics")):
            metric = self.metric(("evaluation", "metrics", i))
            if metric and metric.needs == "latency" and latency is False:
                self.error(
                    ("evaluation", "metrics", i),
                    f"{name!r} is measured by evaluation.latency, which is false",
                )
        seen: dict[str, int] = {}
        for i, _ in enumerate(self.value(("evaluation", "slices"), [])):
            here: PathKey = ("evaluation", "slices", i)
            name = self.value((*here, "name"), None)
            if name in seen:
                self.error(
                    (*here, "name"),
                    f"slice {name!r} is already defined (slices[{seen[name]}]); "
                    "names must be unique",
                )
            if name is not None:
                seen.setdefault(name, i)
            op = self.value((*here, "where", "op"), None)
            value = self.value((*here, "where", "value"), _MISSING)
            if op is None or value is _MISSING:
                continue
            if op == "in" and not isinstance(value, list):
                self.error(
                    (*here, "where", "value"),
                    "op `in` takes a list of values, e.g. [a, b]",
                )
            if op != "in" and isinstance(value, list):
                self.error(
                    (*here, "where", "value"),
                    f"op `{op}` compares with one value; use op `in` for a list",
                )
        self.positive_label()

    # --- gate -------------------------------------------------------------------------
    def gate(self) -> None:
        slices = self.names(("evaluation", "slices"))
        computed = self.computed_metrics()
        environments = self.names(("promotion", "environments"))
        champion = self.value(("gate", "champion"), None)
        if champion is not None and environments is not None and champion not in environments:
            hint = did_you_mean(champion, environments)
            listed = (
                f"environments: {', '.join(environments)}"
                if environments
                else ("promotion.environments defines none")
            )
            self.error(
                ("gate", "champion"),
                f"gate.champion {champion!r} is not an environment{hint} ({listed})",
            )
        confidence = self.value(("evaluation", "confidence"), {})
        intervals = confidence is not False or not self.clean(("evaluation", "confidence"))
        if self.value(("gate", "on"), None) == "bound" and not intervals:
            self.error(
                ("gate", "on"),
                "on: bound needs confidence intervals, and evaluation.confidence is false",
            )
        for i, _ in enumerate(self.value(("gate", "thresholds"), [])):
            self.threshold(("gate", "thresholds", i), slices, computed, intervals)

    def threshold(
        self, here: PathKey, slices: list[str] | None, computed: set[str] | None, intervals: bool
    ) -> None:
        if self.value((*here, "on"), None) == "bound" and not intervals:
            self.error(
                (*here, "on"),
                "on: bound needs confidence intervals, and evaluation.confidence is false",
            )
        metric = None
        if self.value((*here, "metric")) is not _MISSING:
            metric = self.metric((*here, "metric"))
        if metric is not None and computed is not None and metric.name not in computed:
            self.error(
                (*here, "metric"),
                f"{metric.name!r} is not computed; add it to evaluation.metrics"
                if metric.needs != "latency"
                else f"{metric.name!r} needs evaluation.latency, which is false",
            )
        name = self.value((*here, "slice"), None)
        if name is not None and slices is not None and name not in slices:
            hint = did_you_mean(name, slices) or (
                f" (slices: {', '.join(slices)})" if slices else " (no slices are defined)"
            )
            self.error((*here, "slice"), f"unknown slice {name!r}{hint}")
        elif name is not None and metric is not None and metric.needs == "latency":
            self.error((*here, "slice"), "latency is measured on all rows, not per slice")
        low, high = self.value((*here, "min"), None), self.value((*here, "max"), None)
        if low is not None and high is not None and low > high:
            self.error((*here, "max"), f"max ({high}) is below min ({low}); no value can pass")
        has_champion = "champion" in self.value(("gate",), {})
        if self.value((*here, "max_regression")) is not _MISSING and not has_champion:
            self.error(
                (*here, "max_regression"),
                "max_regression compares with the champion: set gate.champion to the "
                "environment whose release is the baseline",
                at_key=True,
            )

    # --- container and promotion ------------------------------------------------------
    def container(self) -> None:
        port = self.value(("container", "port"), None)
        if port is not None and port < 1024:
            self.error(
                ("container", "port"),
                f"port {port} needs root, and the server runs as a non-root user; "
                "use 1024 or above",
            )

    def promotion(self) -> None:
        for name in ("repository", "base"):
            if self.value(("promotion", name)) is not _MISSING:
                self.printable(("promotion", name))
        if self.value(("promotion", "verify", "public_key")) is not _MISSING:
            self.repo_path(("promotion", "verify", "public_key"))
        environments: list[Any] = self.value(("promotion", "environments"), [])
        index: dict[str, int] = {}
        for i, _ in enumerate(environments):
            self.environment(i, index)
        names = self.names(("promotion", "environments"))
        for i, _ in enumerate(environments):
            required = self.value(("promotion", "environments", i, "requires"), None)
            name = self.value(("promotion", "environments", i, "name"), None)
            if required is None or names is None:
                continue
            if required not in index:
                hint = did_you_mean(required, list(index))
                self.error(
                    ("promotion", "environments", i, "requires"),
                    f"requires {required!r}, which is not an environment{hint}",
                )
            elif required == name:
                self.error(
                    ("promotion", "environments", i, "requires"),
                    "an environment cannot require itself",
                )
        if self.clean(("promotion", "environments")):
            self.cycles(tuple(environments), index)

    def environment(self, i: int, index: dict[str, int]) -> None:
        here: PathKey = ("promotion", "environments", i)
        name = self.value((*here, "name"), None)
        if name in index:
            self.error(
                (*here, "name"),
                f"environment {name!r} is already defined; names must be unique",
            )
        if name is not None:
            index.setdefault(name, i)
        for j, target in self.items((*here, "targets")):
            where: PathKey = (*here, "targets", j)
            self.gitops_path((*where, "file"))
            for key in UPDATERS:
                if key in target:
                    self.printable((*where, key))
            self.target_value(where, target)
        if self.value((*here, "release_record")) is not _MISSING:
            self.gitops_path((*here, "release_record"))
        if self.value((*here, "verify", "public_key")) is not _MISSING:
            self.repo_path((*here, "verify", "public_key"))

    def target_value(self, where: PathKey, target: Mapping[str, Any]) -> None:
        kind = next((key for key in target if key in UPDATERS), None)
        if "value" in target and kind is not None and not UPDATERS[kind].takes_value:
            takers = " and ".join(u.key for u in UPDATERS.values() if u.takes_value)
            self.error((*where, "value"), f"value applies to {takers} targets only", True)

    def cycles(self, environments: tuple[Mapping[str, Any], ...], index: dict[str, int]) -> None:
        requires = {e["name"]: e.get("requires") for e in environments}
        reported: set[str] = set()
        for start in requires:
            chain = [start]
            node = requires[start]
            while node in requires and node not in chain:
                chain.append(node)
                node = requires[node]
            if node == start and len(chain) > 1 and not reported & set(chain):
                reported |= set(chain)
                self.error(
                    ("promotion", "environments", index[start], "requires"),
                    f"requires forms a cycle: {' -> '.join([*chain, start])}; break it",
                )

    def gitops_path(self, path: PathKey) -> None:
        value: str = self.value(path)
        if not self.printable(path):
            return
        if _is_absolute(value):
            self.error(path, f"{value!r} is absolute; give a path inside the GitOps repository")
        elif ".." in PurePosixPath(value.replace("\\", "/")).parts:
            self.error(path, f"{value!r} contains '..'; give a path inside the GitOps repository")


def check(
    doc: Document, spec_dir: Path, repo_root: Path, invalid: frozenset[PathKey] = frozenset()
) -> list[Diagnostic]:
    """Every semantic problem in the parts of `doc` that have no schema error (`invalid`)."""
    checker = _Checker(doc, spec_dir, repo_root, invalid)
    checker.metadata()
    checker.data()
    checker.columns()
    checker.inputs()
    checker.model()
    checker.evaluation()
    checker.gate()
    checker.container()
    checker.promotion()
    return checker.found


def data_path_problems(
    doc: Document, spec_dir: Path, repo_root: Path, invalid: frozenset[PathKey]
) -> list[Diagnostic]:
    """The checks of `data.train.path` and `data.test.path` alone (what reading them needs)."""
    checker = _Checker(doc, spec_dir, repo_root, invalid)
    for key in ("train", "test"):
        if checker.value(("data", key, "path")) is not _MISSING:
            checker.data_path(("data", key, "path"))
    return checker.found


def repository_root(spec_dir: Path) -> Path:
    """The enclosing git work tree, or the spec's folder when it is not in one."""
    for folder in (spec_dir, *spec_dir.parents):
        if (folder / ".git").exists():
            return folder
    return spec_dir


def _some(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", … ({len(names)} in all)" if len(names) > limit else "")


def _child(value: Any, part: str | int) -> Any:
    if isinstance(value, dict) and isinstance(part, str):
        return value.get(part, _MISSING)
    if isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value):
        return value[part]
    return _MISSING


def _is_absolute(value: str) -> bool:
    return (
        PurePosixPath(value).is_absolute()
        or PureWindowsPath(value).is_absolute()
        or (value.startswith("~"))
    )


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True

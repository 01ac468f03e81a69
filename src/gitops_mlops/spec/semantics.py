"""Checks a JSON Schema cannot express, each reported at the key or value it concerns.

They run on a document that already passed the schema, so shapes and types are known.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Mapping
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from gitops_mlops import data_url, globs, metrics
from gitops_mlops.errors import Diagnostic
from gitops_mlops.spec.document import Document, PathKey
from gitops_mlops.spec.estimator import EstimatorError, resolve
from gitops_mlops.spec.model import BUILTIN_CLASSES
from gitops_mlops.spec.schema import did_you_mean, display_path

# Unicode categories refused in paths and names: C0/C1 controls (NUL, newline, ESC, DEL),
# format characters (bidirectional overrides that disguise a path) and line separators.
_CONTROL = frozenset({"Cc", "Cf", "Zl", "Zp"})
_KIND_FOR_TASK = {"classification": "classifier", "regression": "regressor"}


class _Checker:
    def __init__(self, doc: Document, spec_dir: Path, repo_root: Path) -> None:
        self.doc = doc
        self.spec_dir = spec_dir
        self.repo_root = repo_root
        self.found: list[Diagnostic] = []
        self.task: str = doc.data["task"]

    def error(self, path: PathKey, message: str, at_key: bool = False) -> None:
        loc = self.doc.key_location(path) if at_key else self.doc.value_location(path)
        self.found.append(
            Diagnostic(self.doc.file, loc.line, loc.column, display_path(path), message)
        )

    # --- data -------------------------------------------------------------------------
    def data(self) -> None:
        data = self.doc.data["data"]
        train = data["train"]
        builtin = train.get("builtin")
        if builtin is not None:
            task = "regression" if BUILTIN_CLASSES[builtin] == 0 else "classification"
            if task != self.task:
                self.error(
                    ("data", "train", "builtin"),
                    f"builtin dataset {builtin!r} is a {task} dataset, but task is {self.task}",
                )
        if "test" in data and "split" in data:
            self.error(
                ("data", "split"),
                "data.split is not used when data.test is given; remove one of them",
                at_key=True,
            )
        features = train.get("features") or []
        if train.get("target") in features:
            index = features.index(train["target"])
            self.error(
                ("data", "train", "features", index),
                f"the target column {train['target']!r} cannot also be a feature",
            )
        for key in ("train", "test"):
            if "path" in data.get(key, {}):
                self.data_path(("data", key, "path"))
        smoke = self.doc.data.get("container", {}).get("smoke_test", {})
        if "input" in smoke:
            self.repo_path(("container", "smoke_test", "input"))

    def data_path(self, path: PathKey) -> None:
        """A data URL is checked for syntax only (validation reads nothing remote)."""
        value: str = _get(self.doc.data, path)
        if not self.printable(path):
            return
        if not data_url.is_url(value):
            self.repo_path(path)
        elif (problem := data_url.problem(value)) is not None:
            self.error(path, problem)

    def printable(self, path: PathKey) -> bool:
        """Paths and names reach the file system, git and manifests: no control characters."""
        value: str = _get(self.doc.data, path)
        bad = next((c for c in value if unicodedata.category(c) in _CONTROL), None)
        if bad is None:
            return True
        self.error(
            path,
            f"{value!r} contains U+{ord(bad):04X}, a control or invisible character, at "
            f"position {value.index(bad) + 1}; remove it",
        )
        return False

    def repo_path(self, path: PathKey) -> None:
        """A path in the spec must resolve inside the repository, symlinks included."""
        value: str = _get(self.doc.data, path)
        if not self.printable(path):
            return
        if _is_absolute(value):
            self.error(path, f"{value!r} is absolute; give a path relative to the spec's folder")
            return
        joined = Path(os.path.normpath(self.spec_dir.absolute() / value))
        root = self.repo_root.absolute()
        if not _inside(joined, root):
            self.error(path, f"{value!r} leaves the repository (..); keep data inside it")
        elif not _inside(joined.resolve(), root.resolve()):
            self.error(
                path, f"{value!r} is a symlink that leaves the repository; keep data inside it"
            )

    def inputs(self) -> None:
        """`inputs:` globs must parse and stay inside the repository."""
        for index, pattern in enumerate(self.doc.data.get("inputs", ())):
            reason = globs.problem(pattern)
            if reason is not None:
                self.error(("inputs", index), reason)

    # --- model ------------------------------------------------------------------------
    def model(self) -> None:
        model = self.doc.data["model"]
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
        path = model["estimator"]
        try:
            info = resolve(path, tuple(model.get("allow_modules", ())))
        except EstimatorError as err:
            self.error(("model", "estimator"), str(err))
            return
        wanted = _KIND_FOR_TASK[self.task]
        if wanted not in info.kinds:
            kind = next((k for k in ("classifier", "regressor") if k in info.kinds), None)
            what = f"a {kind}" if kind else "not a classifier or regressor"
            self.error(
                ("model", "estimator"),
                f"{path} is {what}, but task is {self.task}; choose a {wanted}",
            )
        if info.params is None:
            return
        allowed = sorted(info.params)
        for key in model.get("params", {}):
            if key not in info.params:
                self.error(
                    ("model", "params", key),
                    f"{path} has no parameter {key!r}{did_you_mean(key, allowed)}",
                    at_key=True,
                )
        for key in model.get("search", {}).get("space", {}):
            if key not in info.params:
                self.error(
                    ("model", "search", "space", key),
                    f"{path} has no parameter {key!r}{did_you_mean(key, allowed)}",
                    at_key=True,
                )

    # --- evaluation -------------------------------------------------------------------
    def computed_metrics(self) -> set[str]:
        evaluation = self.doc.data.get("evaluation", {})
        names = set(evaluation.get("metrics", metrics.DEFAULT_METRICS[self.task]))  # type: ignore[index]
        if evaluation.get("latency", {}) is not False:
            names |= {"latency_p50_ms", "latency_p95_ms"}
        return names

    def metric(self, path: PathKey) -> metrics.Metric | None:
        name: str = _get(self.doc.data, path)
        metric = metrics.get(name)
        if metric is None:
            self.error(
                path,
                f"unknown metric {name!r}{did_you_mean(name, list(metrics.METRICS))}"
                f" (metrics for {self.task}: {', '.join(metrics.names_for(self.task))})",  # type: ignore[arg-type]
            )
            return None
        if self.task not in metric.tasks:
            self.error(
                path,
                f"metric {name!r} is for {'/'.join(sorted(metric.tasks))}, but task is "
                f"{self.task}; use one of {', '.join(metrics.names_for(self.task))}",  # type: ignore[arg-type]
            )
            return None
        classes = BUILTIN_CLASSES.get(self.doc.data["data"]["train"].get("builtin", ""), None)
        if classes and metric.classes == "binary" and classes > 2:
            self.error(path, f"{name!r} needs two classes, the data has {classes}; use roc_auc_ovr")
        if classes and metric.classes == "multiclass" and classes == 2:
            self.error(path, f"{name!r} needs three or more classes, the data has 2; use roc_auc")
        return metric

    def evaluation(self) -> None:
        evaluation = self.doc.data.get("evaluation", {})
        for i, name in enumerate(evaluation.get("metrics", ())):
            metric = self.metric(("evaluation", "metrics", i))
            if metric and metric.needs == "latency" and evaluation.get("latency") is False:
                self.error(
                    ("evaluation", "metrics", i),
                    f"{name!r} is measured by evaluation.latency, which is false",
                )
        seen: dict[str, int] = {}
        for i, item in enumerate(evaluation.get("slices", ())):
            name, where = item["name"], item["where"]
            if name in seen:
                self.error(
                    ("evaluation", "slices", i, "name"),
                    f"slice {name!r} is already defined (slices[{seen[name]}]); "
                    "names must be unique",
                )
            seen.setdefault(name, i)
            value = where["value"]
            if where["op"] == "in" and not isinstance(value, list):
                self.error(
                    ("evaluation", "slices", i, "where", "value"),
                    "op `in` takes a list of values, e.g. [a, b]",
                )
            if where["op"] != "in" and isinstance(value, list):
                self.error(
                    ("evaluation", "slices", i, "where", "value"),
                    f"op `{where['op']}` compares with one value; use op `in` for a list",
                )

    # --- gate -------------------------------------------------------------------------
    def gate(self) -> None:
        gate = self.doc.data.get("gate", {})
        slices = [s["name"] for s in self.doc.data.get("evaluation", {}).get("slices", ())]
        computed = self.computed_metrics()
        environments = [
            e["name"] for e in self.doc.data.get("promotion", {}).get("environments", ())
        ]
        if "champion" in gate and gate["champion"] not in environments:
            hint = did_you_mean(gate["champion"], environments)
            listed = (
                f"environments: {', '.join(environments)}"
                if environments
                else ("promotion.environments defines none")
            )
            self.error(
                ("gate", "champion"),
                f"gate.champion {gate['champion']!r} is not an environment{hint} ({listed})",
            )
        intervals = self.doc.data.get("evaluation", {}).get("confidence", {}) is not False
        if gate.get("on") == "bound" and not intervals:
            self.error(
                ("gate", "on"),
                "on: bound needs confidence intervals, and evaluation.confidence is false",
            )
        for i, threshold in enumerate(gate.get("thresholds", ())):
            here: PathKey = ("gate", "thresholds", i)
            if threshold.get("on") == "bound" and not intervals:
                self.error(
                    (*here, "on"),
                    "on: bound needs confidence intervals, and evaluation.confidence is false",
                )
            metric = self.metric((*here, "metric"))
            if metric is not None and metric.name not in computed:
                self.error(
                    (*here, "metric"),
                    f"{metric.name!r} is not computed; add it to evaluation.metrics"
                    if metric.needs != "latency"
                    else f"{metric.name!r} needs evaluation.latency, which is false",
                )
            if "slice" in threshold:
                if threshold["slice"] not in slices:
                    hint = did_you_mean(threshold["slice"], slices) or (
                        f" (slices: {', '.join(slices)})" if slices else " (no slices are defined)"
                    )
                    self.error((*here, "slice"), f"unknown slice {threshold['slice']!r}{hint}")
                elif metric is not None and metric.needs == "latency":
                    self.error((*here, "slice"), "latency is measured on all rows, not per slice")
            low, high = threshold.get("min"), threshold.get("max")
            if low is not None and high is not None and low > high:
                self.error((*here, "max"), f"max ({high}) is below min ({low}); no value can pass")
            if "max_regression" in threshold and "champion" not in gate:
                self.error(
                    (*here, "max_regression"),
                    "max_regression compares with the champion: set gate.champion to the "
                    "environment whose release is the baseline",
                    at_key=True,
                )

    # --- container and promotion ------------------------------------------------------
    def container(self) -> None:
        port = self.doc.data.get("container", {}).get("port")
        if port is not None and port < 1024:
            self.error(
                ("container", "port"),
                f"port {port} needs root, and the server runs as a non-root user; "
                "use 1024 or above",
            )

    def promotion(self) -> None:
        promotion = self.doc.data.get("promotion", {})
        for name in ("repository", "base"):
            if name in promotion:
                self.printable(("promotion", name))
        environments = promotion.get("environments", ())
        index: dict[str, int] = {}
        for i, env in enumerate(environments):
            if env["name"] in index:
                self.error(
                    ("promotion", "environments", i, "name"),
                    f"environment {env['name']!r} is already defined; names must be unique",
                )
            index.setdefault(env["name"], i)
            for j, target in enumerate(env.get("targets", ())):
                where: PathKey = ("promotion", "environments", i, "targets", j)
                self.gitops_path((*where, "file"))
                for name in ("yaml_path", "kustomize_image", "container"):
                    if name in target:
                        self.printable((*where, name))
                if "value" in target and "yaml_path" not in target:
                    self.error((*where, "value"), "value applies to yaml_path targets only", True)
            if "release_record" in env:
                self.gitops_path(("promotion", "environments", i, "release_record"))
        for i, env in enumerate(environments):
            required = env.get("requires")
            if required is None:
                continue
            if required not in index:
                hint = did_you_mean(required, list(index))
                self.error(
                    ("promotion", "environments", i, "requires"),
                    f"requires {required!r}, which is not an environment{hint}",
                )
            elif required == env["name"]:
                self.error(
                    ("promotion", "environments", i, "requires"),
                    "an environment cannot require itself",
                )
        self.cycles(environments, index)

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
        value: str = _get(self.doc.data, path)
        if not self.printable(path):
            return
        if _is_absolute(value):
            self.error(path, f"{value!r} is absolute; give a path inside the GitOps repository")
        elif ".." in PurePosixPath(value.replace("\\", "/")).parts:
            self.error(path, f"{value!r} contains '..'; give a path inside the GitOps repository")


def check(doc: Document, spec_dir: Path, repo_root: Path) -> list[Diagnostic]:
    checker = _Checker(doc, spec_dir, repo_root)
    checker.data()
    checker.inputs()
    checker.model()
    checker.evaluation()
    checker.gate()
    checker.container()
    checker.promotion()
    return checker.found


def repository_root(spec_dir: Path) -> Path:
    """The enclosing git work tree, or the spec's folder when it is not in one."""
    for folder in (spec_dir, *spec_dir.parents):
        if (folder / ".git").exists():
            return folder
    return spec_dir


def _get(data: Mapping[str, Any], path: PathKey) -> Any:
    value: Any = data
    for part in path:
        value = value[part]
    return value


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

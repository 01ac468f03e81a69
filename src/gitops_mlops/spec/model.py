"""The typed, frozen spec. `build` is the one place where defaults are applied."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any, Literal

from gitops_mlops import metrics
from gitops_mlops.builtin_datasets import BUILTINS
from gitops_mlops.errors import Diagnostic, SpecError
from gitops_mlops.metrics import Task

_LAST_PART = re.compile(r"(\.[^.\[]+|\[\d+\])$")
Builtin = Literal["iris", "wine", "breast_cancer", "diabetes", "digits"]
# Classes per builtin dataset (0: regression); lets validation reject e.g. roc_auc on iris.
BUILTIN_CLASSES: dict[str, int] = {name: len(d.classes) for name, d in BUILTINS.items()}


@dataclass(frozen=True)
class Metadata:
    name: str
    description: str = ""
    owners: tuple[str, ...] = ()
    limitations: tuple[str, ...] = ()  # the model card's


@dataclass(frozen=True)
class Dataset:
    builtin: str | None = None
    path: str | None = None
    format: str | None = None
    target: str | None = None
    features: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Split:
    test_size: float = 0.2
    seed: int = 42
    stratify: bool = True


@dataclass(frozen=True)
class Data:
    train: Dataset
    test: Dataset | None
    split: Split


@dataclass(frozen=True)
class Search:
    space: Mapping[str, tuple[Any, ...]]
    method: Literal["grid", "random"] = "grid"
    cv: int = 5
    scoring: str | None = None
    n_iter: int = 10
    n_jobs: int = 1
    seed: int = 0
    backend: Literal["local", "dask"] = "local"
    scheduler: str | None = None  # default: MLOPS_DASK_SCHEDULER


@dataclass(frozen=True)
class Model:
    estimator: str | None
    command: tuple[str, ...] | None
    params: Mapping[str, Any]
    preprocess: Literal["auto", "none"] = "auto"
    search: Search | None = None
    timeout_seconds: int = 3600
    seed: int = 0
    allow_modules: tuple[str, ...] = ()


@dataclass(frozen=True)
class Confidence:
    level: float = 0.95
    resamples: int = 1000
    seed: int = 0


@dataclass(frozen=True)
class Slice:
    name: str
    column: str
    op: str
    value: Any


@dataclass(frozen=True)
class Latency:
    batch_size: int = 1
    repeats: int = 200


@dataclass(frozen=True)
class Evaluation:
    metrics: tuple[str, ...]
    confidence: Confidence | None
    slices: tuple[Slice, ...]
    latency: Latency | None
    positive_label: str | int | float | bool | None = None  # None: the greatest label


@dataclass(frozen=True)
class Threshold:
    metric: str
    on: Literal["estimate", "bound"]
    slice: str | None = None
    min: float | None = None
    max: float | None = None
    max_regression: float | None = None
    relative: bool = False


@dataclass(frozen=True)
class Gate:
    champion: str | None
    thresholds: tuple[Threshold, ...]
    no_champion: Literal["pass", "fail"] = "pass"
    missing_metric: Literal["pass", "fail"] = "fail"


@dataclass(frozen=True)
class Container:
    image: str
    base_image: str = "python:3.11-slim"
    port: int = 8080
    smoke_test_input: str | None = None
    size_budget_mb: float = 500
    runtime: Literal["auto", "sklearn", "onnx"] = "auto"


Value = Literal["reference", "digest", "tag", "repository"]


@dataclass(frozen=True)
class Target:
    """A value to pin in a GitOps file; `kind` is a key of `manifests.UPDATERS`."""

    file: str
    kind: str  # kustomize_image, yaml_path, container, ...
    selector: str  # that key's value: which entry, path or container
    value: Value | None = None  # what is written (yaml_path), None: guessed from the path


@dataclass(frozen=True)
class Verify:
    """Attestations an image must carry to be promoted: signed with this key's private half."""

    public_key: str  # relative to the spec's folder


@dataclass(frozen=True)
class Environment:
    name: str
    on: Literal["push", "dispatch"]
    requires: str | None
    reviewers: tuple[str, ...]
    targets: tuple[Target, ...]
    release_record: str
    verify: Verify | None = None  # replaces promotion.verify for this environment


@dataclass(frozen=True)
class Promotion:
    repository: str | None
    base: str
    labels: tuple[str, ...]
    draft: bool
    auto_merge: Literal[False, "merge", "squash", "rebase"]
    environments: tuple[Environment, ...]
    verify: Verify | None = None

    def verify_for(self, environment: Environment) -> Verify | None:
        """What promoting to `environment` must verify: its own setting, else the global."""
        return environment.verify or self.verify


@dataclass(frozen=True)
class Tracking:
    """MLflow tracking; the server is MLFLOW_TRACKING_URI from the environment."""

    experiment: str
    required: bool = False


@dataclass(frozen=True)
class Spec:
    file: Path  # the spec file; relative paths in it are relative to its directory
    metadata: Metadata
    task: Task
    data: Data
    model: Model
    evaluation: Evaluation
    gate: Gate
    container: Container | None
    promotion: Promotion | None
    # "data.train.path" -> (line, column): lets later stages point problems at the spec.
    locations: Mapping[str, tuple[int, int]] = field(default_factory=dict, compare=False)
    digest: str = ""  # sha256 of the spec file's bytes
    tracking: Tracking | None = None
    # Repository-relative globs of shared files the model depends on (planning, run cache).
    inputs: tuple[str, ...] = ()

    @property
    def root(self) -> Path:
        return self.file.parent

    def problem(self, path: str, message: str) -> SpecError:
        """A SpecError located at `path` in the spec (or its nearest located ancestor)."""
        key = path
        while key and key not in self.locations:
            key = _LAST_PART.sub("", key)
        line, column = self.locations.get(key, (1, 1))
        return SpecError([Diagnostic(str(self.file), line, column, path, message)])


def build(
    data: Mapping[str, Any],
    file: Path,
    locations: Mapping[str, tuple[int, int]] | None = None,
    digest: str = "",
) -> Spec:
    """Turn a schema-valid document into a Spec with every default filled in."""
    task: Task = data["task"]
    return Spec(
        locations=MappingProxyType(dict(locations or {})),
        digest=digest,
        file=file,
        metadata=_metadata(data["metadata"]),
        task=task,
        data=_data(data["data"], task),
        model=_model(data["model"]),
        evaluation=_evaluation(data.get("evaluation", {}), task),
        gate=_gate(data.get("gate", {})),
        container=_container(data["container"]) if "container" in data else None,
        promotion=_promotion(data["promotion"]) if "promotion" in data else None,
        tracking=_tracking(data["tracking"]) if "tracking" in data else None,
        inputs=tuple(data.get("inputs", ())),
    )


def _metadata(raw: Mapping[str, Any]) -> Metadata:
    return Metadata(
        raw["name"],
        raw.get("description", ""),
        tuple(raw.get("owners", ())),
        tuple(raw.get("limitations", ())),
    )


def _dataset(raw: Mapping[str, Any]) -> Dataset:
    features = raw.get("features")
    return Dataset(
        builtin=raw.get("builtin"),
        path=raw.get("path"),
        format=raw.get("format"),
        target=raw.get("target"),
        features=tuple(features) if features is not None else None,
    )


def _data(raw: Mapping[str, Any], task: Task) -> Data:
    split = raw.get("split", {})
    return Data(
        train=_dataset(raw["train"]),
        test=_dataset(raw["test"]) if "test" in raw else None,
        split=Split(
            test_size=split.get("test_size", 0.2),
            seed=split.get("seed", 42),
            # Stratifying needs classes: on by default for classification only.
            stratify=split.get("stratify", task == "classification") and task == "classification",
        ),
    )


def _frozen(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(raw))


def _model(raw: Mapping[str, Any]) -> Model:
    search = raw.get("search")
    command = raw.get("command")
    return Model(
        estimator=raw.get("estimator"),
        command=tuple(command) if command is not None else None,
        params=_frozen(raw.get("params", {})),
        preprocess=raw.get("preprocess", "auto"),
        search=_search(search) if search is not None else None,
        timeout_seconds=raw.get("timeout_seconds", 3600),
        seed=raw.get("seed", 0),
        allow_modules=tuple(raw.get("allow_modules", ())),
    )


def _search(raw: Mapping[str, Any]) -> Search:
    return Search(
        space=MappingProxyType({k: tuple(v) for k, v in raw["space"].items()}),
        method=raw.get("method", "grid"),
        cv=raw.get("cv", 5),
        scoring=raw.get("scoring"),
        n_iter=raw.get("n_iter", 10),
        n_jobs=raw.get("n_jobs", 1),
        seed=raw.get("seed", 0),
        backend=raw.get("backend", "local"),
        scheduler=raw.get("scheduler"),
    )


def _tracking(raw: Mapping[str, Any]) -> Tracking:
    return Tracking(raw["mlflow"]["experiment"], raw.get("required", False))


def _evaluation(raw: Mapping[str, Any], task: Task) -> Evaluation:
    confidence = raw.get("confidence", {})
    latency = raw.get("latency", {})
    return Evaluation(
        metrics=tuple(raw.get("metrics", metrics.DEFAULT_METRICS[task])),
        confidence=Confidence(**confidence) if confidence is not False else None,
        slices=tuple(
            Slice(s["name"], s["where"]["column"], s["where"]["op"], s["where"]["value"])
            for s in raw.get("slices", ())
        ),
        latency=Latency(**latency) if latency is not False else None,
        positive_label=raw.get("positive_label"),
    )


def _gate(raw: Mapping[str, Any]) -> Gate:
    default_on = raw.get("on", "estimate")
    return Gate(
        champion=raw.get("champion"),
        thresholds=tuple(
            Threshold(
                metric=t["metric"],
                on=t.get("on", default_on),
                slice=t.get("slice"),
                min=t.get("min"),
                max=t.get("max"),
                max_regression=t.get("max_regression"),
                relative=t.get("relative", False),
            )
            for t in raw.get("thresholds", ())
        ),
        no_champion=raw.get("no_champion", "pass"),
        missing_metric=raw.get("missing_metric", "fail"),
    )


def _container(raw: Mapping[str, Any]) -> Container:
    return Container(
        image=raw["image"],
        base_image=raw.get("base_image", "python:3.11-slim"),
        port=raw.get("port", 8080),
        smoke_test_input=raw.get("smoke_test", {}).get("input"),
        size_budget_mb=raw.get("size_budget_mb", 500),
        runtime=raw.get("runtime", "auto"),
    )


def default_release_record(environment: str, targets: tuple[Target, ...]) -> str:
    if targets:
        parent = str(PurePosixPath(targets[0].file).parent)
        return "model-release.yaml" if parent == "." else f"{parent}/model-release.yaml"
    return f"releases/{environment}/model-release.yaml"


def _target(raw: Mapping[str, Any]) -> Target:
    # The schema allows exactly one key besides `file` and `value`: the updater's.
    kind = next(key for key in raw if key not in ("file", "value"))
    return Target(file=raw["file"], kind=kind, selector=raw[kind], value=raw.get("value"))


def _environment(raw: Mapping[str, Any]) -> Environment:
    targets = tuple(_target(t) for t in raw.get("targets", ()))
    return Environment(
        name=raw["name"],
        on=raw.get("on", "dispatch"),
        requires=raw.get("requires"),
        reviewers=tuple(raw.get("reviewers", ())),
        targets=targets,
        release_record=raw.get("release_record") or default_release_record(raw["name"], targets),
        verify=_verify(raw.get("verify")),
    )


def _verify(raw: Mapping[str, Any] | None) -> Verify | None:
    return Verify(public_key=raw["public_key"]) if raw else None


def _promotion(raw: Mapping[str, Any]) -> Promotion:
    pull_request = raw.get("pull_request", {})
    return Promotion(
        repository=raw.get("repository"),
        base=raw.get("base", "main"),
        labels=tuple(pull_request.get("labels", ())),
        draft=pull_request.get("draft", False),
        auto_merge=pull_request.get("auto_merge", False),
        environments=tuple(_environment(e) for e in raw["environments"]),
        verify=_verify(raw.get("verify")),
    )

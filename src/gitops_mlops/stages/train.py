"""Stage 2: fit the model the spec describes and write the model bundle.

Two trainers: an estimator named in the spec (optionally inside a preprocessing pipeline and
a hyper-parameter search), or the user's own command (see `command_trainer`).
"""

from __future__ import annotations

import importlib
import inspect
import platform
from collections.abc import Mapping
from dataclasses import dataclass, replace
from importlib import metadata
from typing import Any

from gitops_mlops import bundle, datasets
from gitops_mlops.errors import MlopsError
from gitops_mlops.integrations import dask, git, storage
from gitops_mlops.records.run import RunInfo
from gitops_mlops.rundir import RunDir
from gitops_mlops.spec.model import Spec
from gitops_mlops.stages import command_trainer

# Versions the serving image pins so the model is loaded by the code that trained it.
RUNTIME_PACKAGES = ("scikit-learn", "numpy", "scipy", "pandas", "skops")


@dataclass(frozen=True)
class TrainContext:
    spec: Spec
    run: RunDir
    env: Mapping[str, str]
    data: datasets.Data | None = None  # already loaded by an earlier step, else loaded here
    writer: bundle.ModelWriter | None = None  # started by the caller, else started here


@dataclass(frozen=True)
class TrainResult:
    model: Any
    version: str
    manifest: dict[str, Any]
    data: datasets.Data


def train(ctx: TrainContext) -> TrainResult:
    if ctx.writer is None:
        with bundle.ModelWriter() as writer:
            return train(replace(ctx, writer=writer))
    spec, run = ctx.spec, ctx.run
    data = ctx.data or datasets.load(spec, storage.StorageSettings.from_env(ctx.env))
    run.model_dir.mkdir(parents=True, exist_ok=True)
    details: dict[str, Any]
    if spec.model.command is not None:
        model, details = command_trainer.run(spec, run, data, ctx.env)
    else:
        model, details = _fit_estimator(spec, data, _search_cluster(spec, ctx.env))
    digest = ctx.writer.save(model, run.model_file)
    version = bundle.model_version(digest)
    manifest = bundle.write_manifest(
        run.model_dir, _manifest_fields(spec, data, model, version, digest, details)
    )
    if manifest["files"].get(bundle.MODEL_FILE) != digest:
        raise MlopsError(
            f"{run.model_file} changed while it was written (its sha256 is not the one of the "
            "model just saved); train again"
        )
    run.write_run_info(RunInfo(spec.file.resolve(), spec.digest))
    return TrainResult(model, version, manifest, data)


def build_estimator(spec: Spec, data: datasets.Data) -> Any:
    """The estimator, inside a preprocessing pipeline when `preprocess: auto`."""
    assert spec.model.estimator is not None
    module, _, name = spec.model.estimator.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    params = dict(spec.model.params)
    if "random_state" in inspect.signature(cls).parameters and "random_state" not in params:
        params["random_state"] = spec.model.seed  # deterministic unless the spec says otherwise
    try:
        estimator = cls(**params)
    except TypeError as err:
        raise spec.problem(
            "model.params", f"{spec.model.estimator} rejects the params: {err}"
        ) from None
    if spec.model.preprocess == "none":
        return estimator
    return _with_preprocessing(estimator, data)


def _with_preprocessing(estimator: Any, data: datasets.Data) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = data.x_train
    numeric = [c for c in frame.columns if _is_numeric(frame[c])]
    categorical = [c for c in frame.columns if c not in numeric]
    steps = []
    if numeric:
        numbers = Pipeline(
            [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
        )
        steps.append(("numeric", numbers, numeric))
    if categorical:
        categories = Pipeline(
            [
                ("impute", SimpleImputer(strategy="most_frequent")),
                ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
            ]
        )
        steps.append(("categorical", categories, categorical))
    columns = ColumnTransformer(steps, remainder="drop", verbose_feature_names_out=False)
    return Pipeline([("preprocess", columns), ("model", estimator)])


def _is_numeric(column: Any) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column))


def _search_cluster(spec: Spec, env: Mapping[str, str]) -> dask.DaskSettings | None:
    """Where the search runs: None for this machine, else the Dask cluster's settings."""
    search = spec.model.search
    if search is None or search.backend != "dask":
        return None
    # Errors about the spec's address point at it (exit 1 all the same: the spec is valid).
    where = spec.problem("model.search.scheduler", "").diagnostics[0]
    return dask.settings(search.scheduler, env, f"{where.file}:{where.line}:{where.column}")


def _fit_estimator(
    spec: Spec, data: datasets.Data, cluster: dask.DaskSettings | None = None
) -> tuple[Any, dict[str, Any]]:
    estimator = build_estimator(spec, data)
    search = spec.model.search
    details: dict[str, Any] = {"trainer": "estimator", "estimator": spec.model.estimator}
    if search is not None:
        from sklearn.model_selection import GridSearchCV, RandomizedSearchCV

        prefix = "model__" if spec.model.preprocess == "auto" else ""
        space = {prefix + k: list(v) for k, v in search.space.items()}
        common: dict[str, Any] = {
            "cv": search.cv,
            "scoring": search.scoring,
            # On a cluster, as many fits at once as it has threads.
            "n_jobs": search.n_jobs if cluster is None else -1,
        }
        if search.method == "grid":
            estimator = GridSearchCV(estimator, space, **common)
        else:
            estimator = RandomizedSearchCV(
                estimator, space, n_iter=search.n_iter, random_state=search.seed, **common
            )
    try:
        if cluster is not None and search is not None:
            estimator = _search_on_cluster(spec, estimator, data, cluster)
        else:
            estimator.fit(data.x_train, data.y_train)
    except (ValueError, TypeError) as err:
        hint = "" if spec.model.preprocess == "auto" else " (preprocess: auto encodes text columns)"
        raise spec.problem(
            "model.estimator", f"training failed: {str(err).splitlines()[0]}{hint}"
        ) from None
    if search is not None:
        best = {k.removeprefix("model__"): v for k, v in estimator.best_params_.items()}
        details |= {"best_params": best, "cv_best_score": float(estimator.best_score_)}
        estimator = estimator.best_estimator_
    return estimator, details


def _search_on_cluster(
    spec: Spec, search: Any, data: datasets.Data, cluster: dask.DaskSettings
) -> Any:
    """The search's fits on the cluster, then the refit with the best parameters here.

    The refit is scikit-learn's own (a clone of the estimator with the best parameters),
    done outside the Dask backend: under it, the forest's own parallel loop would send one
    task per tree to the cluster. So the model is the one a local search gives.
    """
    from sklearn.base import clone

    search.set_params(refit=False)
    rows = (data.x_train, data.y_train)
    with dask.search_on_cluster(cluster, _unpickled_modules(search, rows)):
        search.fit(*rows)
    best = clone(search.estimator).set_params(**clone(search.best_params_, safe=False))
    best.fit(data.x_train, data.y_train)
    search.best_estimator_ = best
    return search


def _unpickled_modules(search: Any, rows: tuple[Any, ...]) -> list[str]:
    """The modules a worker imports to run one of the search's fits: the fit function's,
    the estimator's and each of its steps', and the training rows' (pandas)."""
    from sklearn.model_selection import _validation

    parts = [search.estimator, *search.estimator.get_params(deep=True).values()]
    # (a param may be an estimator class rather than an instance: not unpickled as one)
    found = {
        type(p).__module__ for p in parts if hasattr(p, "get_params") and not isinstance(p, type)
    }
    found |= {type(r).__module__ for r in rows}
    return [_validation.__name__, *sorted(found)]


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in (*RUNTIME_PACKAGES, "gitops-mlops"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:  # pragma: no cover - all are dependencies
            continue
    return found


def _manifest_fields(
    spec: Spec,
    data: datasets.Data,
    model: Any,
    version: str,
    digest: str,
    details: dict[str, Any],
) -> dict[str, Any]:
    classes = getattr(model, "classes_", None)
    return {
        "name": spec.metadata.name,
        "model_version": version,
        "model_digest": f"sha256:{digest}",
        "spec_digest": f"sha256:{spec.digest}",
        "data_digest": f"sha256:{data.digest}",
        "git_commit": git.head_commit(spec.root),
        "seed": spec.model.seed,
        "task": spec.task,
        "params": _jsonable(dict(spec.model.params)),
        # The server trusts the classes of these modules (see serving.trust).
        "allow_modules": list(spec.model.allow_modules),
        **_jsonable(details),
        "versions": _versions(),
        "target": data.target,
        "features": [{"name": c, "dtype": str(data.x_train[c].dtype)} for c in data.features],
        "classes": _jsonable(list(classes)) if classes is not None else None,
        "input_example": datasets.sample_rows(data.x_test),
        "n_train": len(data.x_train),
        "n_test": len(data.x_test),
    }


def _jsonable(value: Any) -> Any:
    """Plain JSON types (numpy scalars and arrays become Python numbers and lists)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value

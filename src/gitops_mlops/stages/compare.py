"""Between evaluate and gate: the candidate against the champion on the same rows.

The champion's model (`champion_model`: from its image in the registry, by the digest its
release record pins; or a local run directory or bundle) predicts the candidate's test
rows, and every metric, overall and per slice, gets the paired difference
Δ = candidate - champion with an interval from resampling those rows once for both models
(`estimates.difference`), and a verdict: better, worse, or no detectable difference at
the spec's confidence level. The gate's `max_regression` rows read Δ from the result.

When the champion's model cannot be had or cannot score these rows (other features, other
task, an error while predicting), the champion's recorded metrics are the baseline, as
they were measured on its own test rows, and the result says why (`mode: recorded`). A
champion whose file does not match its digest is an error, never a fallback.

The pure half, also used by `mlops diff`, is `comparisons.pair`: two prediction sets in,
a `Comparison` out.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gitops_mlops import champion_model, datasets, metrics
from gitops_mlops.champion_model import ChampionModel, ChampionUnavailable
from gitops_mlops.integrations.storage import StorageSettings
from gitops_mlops.records.comparison import Comparison, Delta
from gitops_mlops.records.metrics import Metrics
from gitops_mlops.release import Champion
from gitops_mlops.rundir import RunDir
from gitops_mlops.spec.model import Spec

# numpy only when there is a champion to compare with: a gate without one (a first release)
# starts in a fraction of the time, which a run-cache hit notices.
if TYPE_CHECKING:
    from gitops_mlops.records.predictions import PredictionSet


@dataclass(frozen=True)
class CompareContext:
    spec: Spec
    run: RunDir
    champion: Champion | None
    env: Mapping[str, str]
    metrics: Metrics | None = None  # the candidate's, in memory after evaluate, else read
    predictions: PredictionSet | None = None  # the candidate's, in memory after evaluate
    data: datasets.Data | None = None  # the test rows, in memory after train


def compare(ctx: CompareContext) -> Comparison:
    """The comparison, written to comparison.json with the champion's curves on the same
    rows (what the report draws), and the champion's predictions of those rows to
    champion-predictions.npz (kept for a closer look; the report does not read them)."""
    result, theirs = _compare(ctx)
    ctx.run.write_comparison(result)
    ctx.run.write_champion_predictions(theirs)
    return result


def _compare(ctx: CompareContext) -> tuple[Comparison, PredictionSet | None]:
    champion = ctx.champion
    if champion is None:
        return Comparison("none", note="no champion release to compare with"), None
    from gitops_mlops import comparisons, curves

    who = f"{champion.record.environment} {champion.record.version}".strip()
    try:
        candidate = ctx.predictions or _candidate(ctx.run)
        fetched = _fetch(ctx, champion)
        started = time.perf_counter()
        # The candidate's test rows again (mlops gate RUN_DIR): the same data it was
        # measured on, or the comparison would not be paired.
        storage = StorageSettings.from_env(ctx.env)
        data = ctx.data or datasets.load_as_trained(ctx.spec, ctx.run, storage)
        theirs = _predict(fetched, data, candidate)
        predicted = time.perf_counter() - started
    except ChampionUnavailable as err:
        measured = ctx.metrics if ctx.metrics is not None else ctx.run.read_metrics()
        return recorded(ctx.spec, champion, measured, str(err)), None
    started = time.perf_counter()
    compared = comparisons.pair(candidate, theirs, _names(ctx.spec), ctx.spec.evaluation.confidence)
    timings = {
        "fetch": round(fetched.seconds, 4),
        "predict": round(predicted, 4),
        "compare": round(time.perf_counter() - started, 4),
    }
    result = Comparison(
        compared.mode,
        champion=who,
        source=fetched.source,
        note=f"the champion's model ({fetched.digest[:19]}…) re-evaluated on the same "
        f"{candidate.predictions.n} test rows",
        level=compared.level,
        n_rows=compared.n_rows,
        rows=compared.rows,
        timings=timings,
        cached=fetched.cached,
        curves=curves.summarise(theirs.predictions, ctx.spec.task),
    )
    return result, theirs


def recorded(spec: Spec, champion: Champion, measured: Metrics, why: str) -> Comparison:
    """The fallback: the champion's recorded metrics (measured on its own test rows) against
    the candidate's; Δ is the difference of the point estimates, with no interval."""
    record = champion.record
    rows = []
    for slice_name in (None, *(s.name for s in spec.evaluation.slices)):
        for name in spec.evaluation.metrics:
            ours, theirs = measured.estimate(name, slice_name), champion.estimate(name, slice_name)
            a = ours.value if ours is not None else None
            b = theirs.value if theirs is not None else None
            delta = None if a is None or b is None else a - b
            reason = "the champion's recorded value" if b is not None else "no recorded value"
            rows.append(Delta(name, slice_name, a, b, delta, reason=reason))
    return Comparison(
        "recorded",
        champion=f"{record.environment} {record.version}".strip(),
        source=champion.source,
        note=f"{why}; compared with the champion's recorded metrics (measured on its own "
        "test rows, so not paired)",
        rows=tuple(rows),
    )


def _names(spec: Spec) -> list[str]:
    """The metrics both models can be measured on here (latency is the evaluator's)."""
    return [n for n in spec.evaluation.metrics if metrics.METRICS[n].rule is not None]


def _candidate(run: RunDir) -> PredictionSet:
    found = run.find_predictions()
    if found is None:
        raise ChampionUnavailable(
            f"{run.predictions} is missing (the run was evaluated by an older version); "
            "evaluate it again to compare on the same rows"
        )
    return found


def _fetch(ctx: CompareContext, champion: Champion) -> ChampionModel:
    allow = ctx.spec.model.allow_modules
    if champion.model_dir is not None:
        return champion_model.from_folder(champion.model_dir, allow)
    return champion_model.from_release(champion.record, allow, ctx.env)


def _predict(
    fetched: ChampionModel, data: datasets.Data, candidate: PredictionSet
) -> PredictionSet:
    """The champion's predictions of the candidate's test rows, in the candidate's slices."""
    import numpy as np

    from gitops_mlops.predictions import Predictions, labels_of
    from gitops_mlops.records.predictions import PredictionSet

    model, task = fetched.model, candidate.task
    theirs = _task_of(fetched)
    if theirs is not None and theirs != task:
        raise ChampionUnavailable(
            f"the champion is a {theirs} model and this spec's task is {task}"
        )
    columns = _features(fetched, data)
    try:
        rows = data.x_test[columns]
        y_pred = np.asarray(model.predict(rows))
        proba = None
        if task == "classification" and hasattr(model, "predict_proba"):
            proba = np.asarray(model.predict_proba(rows), dtype=np.float64)
    except Exception as err:  # whatever the champion's own code raises on these rows
        raise ChampionUnavailable(
            f"the champion cannot predict the candidate's test rows ({type(err).__name__}: "
            f"{str(err)[:300]})"
        ) from None
    if y_pred.shape != (len(rows),):
        raise ChampionUnavailable("the champion predicts something other than one value per row")
    y_true = candidate.predictions.y_true
    if task == "regression":
        predicted = Predictions.regression(y_true, y_pred)
    else:
        classes = list(getattr(model, "classes_", []))
        labels = labels_of(y_true, y_pred, classes)
        wanted = candidate.predictions.positive_label
        positive = next((i for i, label in enumerate(labels) if label == wanted), None)
        predicted = Predictions.classification(y_true, y_pred, proba, classes, positive)
    return PredictionSet(task, predicted, candidate.slices, candidate.rows_digest)


def _task_of(fetched: ChampionModel) -> str | None:
    task = fetched.manifest.get("task")
    if task in ("classification", "regression"):
        return str(task)
    from sklearn.base import is_classifier, is_regressor

    if is_classifier(fetched.model):
        return "classification"
    return "regression" if is_regressor(fetched.model) else None


def _features(fetched: ChampionModel, data: datasets.Data) -> list[str]:
    """The columns the champion reads, all of which the candidate's test rows must hold."""
    listed = fetched.manifest.get("features")
    names = (
        [str(f["name"]) for f in listed if isinstance(f, dict) and "name" in f]
        if isinstance(listed, list)
        else []
    )
    if not names:
        names = [str(c) for c in getattr(fetched.model, "feature_names_in_", [])]
    if not names:
        return [str(c) for c in data.x_test.columns]
    missing = [n for n in names if n not in data.x_test.columns]
    if missing:
        shown = ", ".join(missing[:8]) + (f", … ({len(missing)})" if len(missing) > 8 else "")
        raise ChampionUnavailable(
            f"the champion reads columns the candidate's test rows do not hold ({shown})"
        )
    return names

"""The metric registry: one entry per metric, and everything about that metric is in it.

An entry says the metric's name, task, direction and what it needs (labels, probabilities or
timings); its score function (scikit-learn's, the reference for the point estimate); its
resampling rule (how its bootstrap draws are computed fast, and whether it is a proportion,
whose interval is then Wilson's score interval); when it has no value on a set of rows and
why; and other names users try for it. Validation, evaluation, the paired comparison and the
gate all read this one table: adding a metric is adding one entry (tests walk every entry).

There are three kinds of resampling rule, one per fast path in `bootstrap`:
- `FromConfusion`: a function of the confusion table. Resampling rows draws that table from
  a multinomial over its cells, whatever the number of rows.
- `FromRowSums`: a function of sums over rows of per-row terms (mean errors, log loss).
  Resampling draws row indices and sums the terms they pick.
- `FromWeights`: needs every row at once (rankings: ROC AUC, average precision). A resample
  is a vector of row weights, how often each row is drawn.

Importing this module must stay cheap (no numpy, no scikit-learn): validation reads it for a
spec that trains with its own command. Score functions and rules import what they need when
called; the arrays they get come from `gitops_mlops.predictions` and `gitops_mlops.bootstrap`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from gitops_mlops.bootstrap import FloatArray, Table
    from gitops_mlops.predictions import Predictions, Rows

Direction = Literal["higher", "lower"]
Task = Literal["classification", "regression"]
Needs = Literal["labels", "scores", "latency"]
Classes = Literal["any", "binary", "multiclass"]

CLASSIFICATION: frozenset[Task] = frozenset({"classification"})
REGRESSION: frozenset[Task] = frozenset({"regression"})
ANY_TASK: frozenset[Task] = CLASSIFICATION | REGRESSION


@dataclass(frozen=True)
class FromConfusion:
    """A label metric computed from a stack of confusion tables (one per resample)."""

    formula: Callable[[Table], FloatArray]
    # For a proportion (successes out of trials, both counted in the table): the pair. Its
    # interval is then Wilson's score interval, which keeps its coverage at 0 % and 100 %,
    # where a percentile bootstrap collapses to a single point.
    proportion: Callable[[Table], tuple[FloatArray, FloatArray]] | None = None


@dataclass(frozen=True)
class FromRowSums:
    """A metric of sums over rows: `combine(sums of each term, n)` for each resample."""

    terms: Callable[[Predictions], list[FloatArray]]
    combine: Callable[[list[FloatArray], int], FloatArray]


@dataclass(frozen=True)
class FromWeights:
    """A metric of all rows at once: `estimate(predictions, rows, weights)`.

    `weights` holds one row per resample: how often each of `rows` is drawn (`rows` None:
    every row).
    """

    estimate: Callable[[Predictions, Rows | None, FloatArray], FloatArray]


Rule = FromConfusion | FromRowSums | FromWeights


@dataclass(frozen=True)
class Metric:
    name: str
    tasks: frozenset[Task]
    direction: Direction
    needs: Needs  # labels: predictions; scores: predict_proba; latency: timed by the evaluator
    description: str
    score: Callable[[Predictions], float] | None  # None: measured by the evaluator (latency)
    rule: Rule | None
    classes: Classes = "any"
    # Why the metric has no value on these rows (None: it has one), e.g. one class for ROC AUC.
    undefined: Callable[[Predictions], str | None] | None = None
    aliases: tuple[str, ...] = ()  # other names users type for it, for "did you mean"
    instead: str | None = None  # the metric to use for the other number of classes

    def better(self, candidate: float, baseline: float) -> bool:
        """True when `candidate` is strictly better than `baseline` for this metric."""
        return candidate > baseline if self.direction == "higher" else candidate < baseline

    @property
    def positive_class(self) -> bool:
        """Measured for the positive class (evaluation.positive_label)."""
        return self.classes == "binary"


# --- score functions: scikit-learn's, on what each metric needs ------------------------------


def _sklearn(function: str, on: str = "labels", **kwargs: Any) -> Callable[[Predictions], float]:
    """scikit-learn's `function` on the true labels and `on`: labels, positive class scores or
    every class's probabilities."""

    def score(p: Predictions) -> float:
        from sklearn import metrics as skm

        compute: Callable[..., float] = getattr(skm, function)
        if on == "labels":
            return float(compute(p.y_true, p.y_pred, **kwargs))
        if on == "positive labels":
            return float(compute(p.y_true, p.y_pred, pos_label=p.positive_label, **kwargs))
        if on == "positive scores":
            return float(compute(p.is_positive, p.positive_scores, **kwargs))
        # scikit-learn takes the probability columns in the sorted order of the labels.
        order = sorted(range(len(p.model_classes)), key=lambda i: p.model_classes[i])
        assert p.proba is not None
        labels = [p.model_classes[i] for i in order]
        return float(compute(p.y_true, p.proba[:, order], labels=labels, **kwargs))

    return score


# --- when a metric has no value ------------------------------------------------------------


def _shown(values: Sequence[Any]) -> str:
    return ", ".join(repr(v.item() if hasattr(v, "item") else v) for v in values)


def _both_classes(p: Predictions) -> str | None:
    held = p.classes_present
    if len(held) < 2:
        return f"the rows hold one class ({_shown(held)}); it needs both classes"
    return None


def _every_model_class(p: Predictions) -> str | None:
    missing = [c for c in p.model_classes if c not in set(p.classes_present)]
    if missing:
        return f"the rows hold no {_shown(missing)}; one-vs-rest AUC needs every class"
    return None


def _model_knows_every_class(p: Predictions) -> str | None:
    unseen = [c for c in p.classes_present if c not in set(p.model_classes)]
    if unseen:
        return (
            f"the rows hold class(es) the model was not trained on ({_shown(unseen)}); "
            "it has no probability for them"
        )
    return None


def _two_targets(p: Predictions) -> str | None:
    if p.n < 2 or len(set(p.y_true.tolist())) < 2:
        return "it needs at least two rows with different targets"
    return None


# --- rules -------------------------------------------------------------------------------


def _accuracy(t: Table) -> FloatArray:
    return t.correct / t.n


def _correct(t: Table) -> tuple[FloatArray, FloatArray]:
    return t.correct, t.n


def _auc(p: Predictions, rows: Rows | None, weights: FloatArray) -> FloatArray:
    from gitops_mlops import bootstrap

    return bootstrap.weighted_auc(
        p.take(p.is_positive, rows), p.take(p.positive_scores, rows), weights
    )


def _auc_ovr(p: Predictions, rows: Rows | None, weights: FloatArray) -> FloatArray:
    """The macro average of one-vs-rest AUCs over the model's classes, as scikit-learn's."""
    from gitops_mlops import bootstrap

    assert p.proba is not None
    true = p.take(p.true_index, rows)
    proba = p.take(p.proba, rows)
    per_class = [
        bootstrap.weighted_auc(true == k, proba[:, k], weights) for k in range(proba.shape[1])
    ]
    result: FloatArray = sum(per_class[1:], per_class[0]) / len(per_class)
    return result


def _average_precision(p: Predictions, rows: Rows | None, weights: FloatArray) -> FloatArray:
    from gitops_mlops import bootstrap

    return bootstrap.weighted_average_precision(
        p.take(p.is_positive, rows), p.take(p.positive_scores, rows), weights
    )


def _log_losses(p: Predictions) -> list[FloatArray]:
    """Each row's cross-entropy, clipped as scikit-learn clips it."""
    import numpy as np

    assert p.proba is not None
    eps = np.finfo(p.proba.dtype).eps
    clipped = np.clip(p.proba, eps, 1 - eps)
    clipped = clipped / clipped.sum(axis=1, keepdims=True)
    losses: FloatArray = -np.log(clipped[np.arange(p.n), p.true_index])
    return [losses]


def _mean(sums: list[FloatArray], n: int) -> FloatArray:
    return sums[0] / n


def _root_mean(sums: list[FloatArray], n: int) -> FloatArray:
    return (sums[0] / n) ** 0.5


def _r2(sums: list[FloatArray], n: int) -> FloatArray:
    import numpy as np

    residual, total, squares = sums
    spread = squares - total**2 / n
    result: FloatArray = np.full(residual.shape, np.nan)
    np.divide(residual, spread, out=result, where=spread > 0)
    return 1 - result


def _errors(p: Predictions) -> FloatArray:
    errors: FloatArray = p.y_pred.astype(float) - p.y_true.astype(float)
    return errors


def _percentage_errors(p: Predictions) -> list[FloatArray]:
    import numpy as np

    eps = np.finfo(np.float64).eps  # as scikit-learn: a zero target divides by eps
    return [np.abs(_errors(p)) / np.maximum(np.abs(p.y_true.astype(float)), eps)]


def _latency(name: str, description: str) -> Metric:
    return Metric(name, ANY_TASK, "lower", "latency", description, None, None)


_C, _R = CLASSIFICATION, REGRESSION
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            "accuracy",
            _C,
            "higher",
            "labels",
            "Share of correct predictions.",
            _sklearn("accuracy_score"),
            FromConfusion(_accuracy, proportion=_correct),
            aliases=("accuracy_score", "acc"),
        ),
        Metric(
            "balanced_accuracy",
            _C,
            "higher",
            "labels",
            "Mean recall over classes.",
            _sklearn("balanced_accuracy_score"),
            FromConfusion(lambda t: t.macro(t.recall, over=t.support > 0)),
            aliases=("balanced_accuracy_score",),
        ),
        Metric(
            "precision",
            _C,
            "higher",
            "labels",
            "Share of predicted positives that are positive (evaluation.positive_label).",
            _sklearn("precision_score", on="positive labels", zero_division=0),
            FromConfusion(
                lambda t: t.at_positive(t.precision),
                proportion=lambda t: (t.at_positive(t.tp), t.at_positive(t.predicted)),
            ),
            classes="binary",
            aliases=("precision_score", "ppv", "positive_predictive_value"),
            instead="precision_macro",
        ),
        Metric(
            "recall",
            _C,
            "higher",
            "labels",
            "Share of positives predicted positive (evaluation.positive_label).",
            _sklearn("recall_score", on="positive labels", zero_division=0),
            FromConfusion(
                lambda t: t.at_positive(t.recall),
                proportion=lambda t: (t.at_positive(t.tp), t.at_positive(t.support)),
            ),
            classes="binary",
            aliases=("recall_score", "sensitivity", "tpr", "true_positive_rate"),
            instead="recall_macro",
        ),
        Metric(
            "f1",
            _C,
            "higher",
            "labels",
            "F1 of the positive class (evaluation.positive_label).",
            _sklearn("f1_score", on="positive labels", zero_division=0),
            FromConfusion(lambda t: t.at_positive(t.f1)),
            classes="binary",
            aliases=("f1_score", "f1_binary", "f_score", "fscore"),
            instead="f1_macro",
        ),
        Metric(
            "average_precision",
            _C,
            "higher",
            "scores",
            "Precision-recall curve area, as a step sum (evaluation.positive_label).",
            _sklearn("average_precision_score", on="positive scores"),
            FromWeights(_average_precision),
            classes="binary",
            undefined=_both_classes,
            aliases=("average_precision_score", "ap", "pr_auc", "auprc", "auc_pr"),
        ),
        Metric(
            "precision_macro",
            _C,
            "higher",
            "labels",
            "Precision averaged over classes.",
            _sklearn("precision_score", average="macro", zero_division=0),
            FromConfusion(lambda t: t.macro(t.precision)),
            aliases=("macro_precision",),
        ),
        Metric(
            "recall_macro",
            _C,
            "higher",
            "labels",
            "Recall averaged over classes.",
            _sklearn("recall_score", average="macro", zero_division=0),
            FromConfusion(lambda t: t.macro(t.recall)),
            aliases=("macro_recall",),
        ),
        Metric(
            "f1_macro",
            _C,
            "higher",
            "labels",
            "F1 averaged over classes.",
            _sklearn("f1_score", average="macro", zero_division=0),
            FromConfusion(lambda t: t.macro(t.f1)),
            aliases=("macro_f1",),
        ),
        Metric(
            "precision_weighted",
            _C,
            "higher",
            "labels",
            "Precision averaged over classes, weighted by support.",
            _sklearn("precision_score", average="weighted", zero_division=0),
            FromConfusion(lambda t: t.weighted(t.precision)),
            aliases=("weighted_precision",),
        ),
        Metric(
            "recall_weighted",
            _C,
            "higher",
            "labels",
            "Recall averaged over classes, weighted by support (equals accuracy).",
            _sklearn("recall_score", average="weighted", zero_division=0),
            # sum of support/n x tp/support = sum of tp / n: the share of right rows, a proportion
            FromConfusion(lambda t: t.weighted(t.recall), proportion=_correct),
            aliases=("weighted_recall",),
        ),
        Metric(
            "f1_weighted",
            _C,
            "higher",
            "labels",
            "F1 averaged over classes, weighted by support.",
            _sklearn("f1_score", average="weighted", zero_division=0),
            FromConfusion(lambda t: t.weighted(t.f1)),
            aliases=("weighted_f1",),
        ),
        Metric(
            "roc_auc",
            _C,
            "higher",
            "scores",
            "Area under the ROC curve (binary classification).",
            _sklearn("roc_auc_score", on="positive scores"),
            FromWeights(_auc),
            classes="binary",
            undefined=_both_classes,
            aliases=("roc_auc_score", "auc", "auroc", "roc"),
            instead="roc_auc_ovr",
        ),
        Metric(
            "roc_auc_ovr",
            _C,
            "higher",
            "scores",
            "One-vs-rest ROC AUC (multiclass classification).",
            _sklearn("roc_auc_score", on="proba", multi_class="ovr"),
            FromWeights(_auc_ovr),
            classes="multiclass",
            undefined=_every_model_class,
            aliases=("roc_auc_ovr_weighted", "auc_ovr", "ovr_auc"),
            instead="roc_auc",
        ),
        Metric(
            "log_loss",
            _C,
            "lower",
            "scores",
            "Cross-entropy of predicted probabilities.",
            _sklearn("log_loss", on="proba"),
            FromRowSums(_log_losses, _mean),
            undefined=_model_knows_every_class,
            aliases=("neg_log_loss", "cross_entropy", "logloss"),
        ),
        Metric(
            "r2",
            _R,
            "higher",
            "labels",
            "Coefficient of determination.",
            _sklearn("r2_score"),
            FromRowSums(lambda p: [_errors(p) ** 2, p.y_true, p.y_true**2], _r2),
            undefined=_two_targets,
            aliases=("r2_score", "r_squared", "rsquared"),
        ),
        Metric(
            "mae",
            _R,
            "lower",
            "labels",
            "Mean absolute error.",
            _sklearn("mean_absolute_error"),
            FromRowSums(lambda p: [abs(_errors(p))], _mean),
            aliases=("mean_absolute_error", "neg_mean_absolute_error"),
        ),
        Metric(
            "rmse",
            _R,
            "lower",
            "labels",
            "Root mean squared error.",
            _sklearn("root_mean_squared_error"),
            FromRowSums(lambda p: [_errors(p) ** 2], _root_mean),
            aliases=(
                "root_mean_squared_error",
                "neg_root_mean_squared_error",
                "mse",
                "mean_squared_error",
            ),
        ),
        Metric(
            "mape",
            _R,
            "lower",
            "labels",
            "Mean absolute percentage error (as a fraction).",
            _sklearn("mean_absolute_percentage_error"),
            FromRowSums(_percentage_errors, _mean),
            aliases=("mean_absolute_percentage_error", "neg_mean_absolute_percentage_error"),
        ),
        _latency("latency_p50_ms", "Median predict latency in milliseconds (evaluation.latency)."),
        _latency(
            "latency_p95_ms",
            "95th percentile predict latency in milliseconds (evaluation.latency).",
        ),
    )
}

DEFAULT_METRICS: dict[Task, tuple[str, ...]] = {
    "classification": ("accuracy", "f1_macro"),
    "regression": ("r2", "rmse", "mae"),
}


def misfit(metric: Metric, classes: int) -> str:
    """Why `metric` does not fit data with this many classes, and what to use instead."""
    need = "two classes" if metric.classes == "binary" else "three or more classes"
    instead = f"; use {metric.instead}" if metric.instead else "; drop it"
    return f"{metric.name!r} needs {need}, the data has {classes}{instead}"


def get(name: str) -> Metric | None:
    return METRICS.get(name)


def names_for(task: Task) -> list[str]:
    return [m.name for m in METRICS.values() if task in m.tasks]


def suggestion(name: str, task: Task | None = None) -> str | None:
    """The registry name closest to `name`: an alias, a different case, or a near spelling.

    The task's own metrics are tried first: `f1_score` in a classification spec means `f1`.
    """
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    ours = [m for m in METRICS.values() if task is None or task in m.tasks]
    for group in (ours, list(METRICS.values())):
        spellings = {s: m.name for m in group for s in (m.name, *m.aliases)}
        if key in spellings:
            return spellings[key]
        close = difflib.get_close_matches(key, list(spellings), n=1, cutoff=0.6)
        if close:
            return spellings[close[0]]
    return None

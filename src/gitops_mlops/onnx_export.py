"""The trained model as ONNX, and the proof that it predicts what the model predicts.

Conversion (skl2onnx) is exact only when the ONNX graph computes what scikit-learn computes,
so it mirrors scikit-learn's arithmetic rather than the converter's defaults:

- every numeric feature enters as float64 (DOUBLE), as scikit-learn's preprocessing sees it;
- missing values are imputed with standard operators (IsNaN/Equal + Where) in float64; the
  converter's own Imputer operator exists only for float32;
- trees (decision trees, random forests, extra trees, gradient boosting) see the features
  cast to float32 first, because scikit-learn's trees do exactly that; the converter then
  picks float thresholds that split as scikit-learn's do. Without the cast, the iris forest's
  probabilities differed by 0.06 on some rows (labels happened to agree);
- a missing text value is the string MISSING_TEXT, which the imputer replaces.

The proof runs both models on the whole test set, and again with each feature missing in
turn (on up to PROBE_ROWS rows), and accepts the ONNX model only when classifiers give the
same label on every row and probabilities within PROBABILITY_TOLERANCE, and regressors agree
within REGRESSION_TOLERANCE (relative). Where scikit-learn refuses a missing value (a model
without an imputer), the ONNX runtime is told to refuse it too, so clients get the same 422.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gitops_mlops.serving.onnx_runtime import MISSING_TEXT, Predictor

PROBABILITY_TOLERANCE = 1e-5  # absolute: ONNX Runtime sums a forest's votes in float32
REGRESSION_TOLERANCE = 1e-5  # relative to max(1, |prediction|): float32 outputs
PROBE_ROWS = 50


class Unsupported(Exception):
    """The model cannot be converted, or its ONNX form does not predict the same."""


@dataclass(frozen=True)
class Comparison:
    """Both models on the same rows: the numbers that let the ONNX model ship (or not)."""

    rows: int  # test rows, each predicted by both
    probe_rows: int  # rows with one feature missing, each predicted by both
    label_agreement: float | None  # classifiers: share of rows with the same label
    max_abs_difference: float | None  # probabilities (classifiers) or predictions (regressors)
    max_relative_difference: float | None  # regressors
    tolerance: float
    refuses_missing: tuple[str, ...]  # features scikit-learn refuses missing values in
    passed: bool
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "probe_rows": self.probe_rows,
            "label_agreement": self.label_agreement,
            "max_abs_difference": self.max_abs_difference,
            "max_relative_difference": self.max_relative_difference,
            "tolerance": self.tolerance,
            "refuses_missing": list(self.refuses_missing),
            "passed": self.passed,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Exported:
    onnx: bytes
    inputs: list[dict[str, Any]]  # {"input", "kind": number | text | matrix, "features"}
    outputs: dict[str, str]  # V2 output name -> ONNX output name
    comparison: Comparison

    def record(self, model_file: str) -> dict[str, Any]:
        """runtime.json: what the server needs to run it, and why it was accepted."""
        return {
            "runtime": "onnx",
            "model": model_file,
            "sha256": hashlib.sha256(self.onnx).hexdigest(),
            "inputs": self.inputs,
            "outputs": self.outputs,
            "refuses_missing": list(self.comparison.refuses_missing),
            "comparison": self.comparison.to_json(),
        }


def export(model: Any, features: Sequence[Mapping[str, str]], test: Any) -> Exported:
    """Convert `model` (features: the manifest's name/dtype list) and prove it on `test`."""
    try:
        import skl2onnx  # noqa: F401 - here only to say so when it is missing

        from gitops_mlops.serving.onnx_runtime import prepare

        onnxruntime = prepare()
    except ImportError as err:
        missing = f"{err.name} is not installed (pip install skl2onnx onnxruntime)"
        raise Unsupported(missing) from None
    onnx, inputs, outputs = _convert(model, features)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    try:
        session = onnxruntime.InferenceSession(onnx, options, providers=["CPUExecutionProvider"])
    except Exception as err:  # an operator ONNX Runtime lacks, say: not for us to fix
        raise Unsupported(f"ONNX Runtime cannot run the converted model: {_short(err)}") from None
    record = {"inputs": inputs, "outputs": outputs}
    return Exported(onnx, inputs, outputs, compare(model, Predictor(session, record), test))


def _short(err: BaseException, limit: int = 300) -> str:
    text = f"{type(err).__name__}: {err}".replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "…"


def _convert(
    model: Any, features: Sequence[Mapping[str, str]]
) -> tuple[bytes, list[dict[str, Any]], dict[str, str]]:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, StringTensorType
    from sklearn.impute import SimpleImputer

    names = [f["name"] for f in features]
    kinds = [_kind(f["name"], f["dtype"]) for f in features]
    if _takes_columns(model):  # a ColumnTransformer picks each column by name
        groups = [[name] for name in names]
        types: list[tuple[str, Any]] = [
            (n, DoubleTensorType([None, 1]) if k == "number" else StringTensorType([None, 1]))
            for n, k in zip(names, kinds, strict=True)
        ]
    elif "text" in kinds:
        raise Unsupported("text features without a ColumnTransformer (preprocess: auto)")
    else:  # the estimator takes one matrix, in feature order
        groups, kinds = [names], ["matrix"]
        types = [("X", DoubleTensorType([None, len(names)]))]
    classifier = hasattr(model, "classes_")
    try:
        onnx = convert_sklearn(
            _as_sklearn_computes(model),
            initial_types=types,
            options={"zipmap": False} if classifier else None,
            custom_conversion_functions={SimpleImputer: _imputer},
        )
    except Exception as err:  # skl2onnx raises many kinds for what it cannot convert
        raise Unsupported(f"skl2onnx cannot convert it: {_short(err)}") from None
    graph_inputs = [i.name for i in onnx.graph.input]
    graph_outputs = [o.name for o in onnx.graph.output]
    inputs = [
        {"input": name, "kind": kind, "features": group}
        for name, kind, group in zip(graph_inputs, kinds, groups, strict=True)
    ]
    outputs = {"predict": graph_outputs[0]}
    if classifier:
        if len(graph_outputs) < 2:
            raise Unsupported("the converted classifier gives no probabilities")
        outputs["predict_proba"] = graph_outputs[1]
    return onnx.SerializeToString(), inputs, outputs


def _kind(name: str, dtype: str) -> str:
    if dtype == "bool" or dtype.startswith(("datetime", "timedelta", "complex")):
        raise Unsupported(f"feature {name!r} is {dtype}: no ONNX input for it")
    return "number" if dtype.startswith(("float", "int", "uint")) else "text"


def _takes_columns(model: Any) -> bool:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    return isinstance(model, Pipeline) and isinstance(model.steps[0][1], ColumnTransformer)


def _as_sklearn_computes(model: Any) -> Any:
    """The model with a float32 cast before a tree estimator, as scikit-learn's trees do."""
    from skl2onnx.sklapi import CastTransformer
    from sklearn.pipeline import Pipeline

    steps = list(model.steps) if isinstance(model, Pipeline) else [("model", model)]
    if not _float32_trees(steps[-1][1]):
        return model
    cast = CastTransformer(dtype=np.float32).fit(np.zeros((1, 1)))
    return Pipeline([*steps[:-1], ("float32", cast), steps[-1]])


def _float32_trees(estimator: Any) -> bool:
    try:
        from sklearn.ensemble._forest import BaseForest
        from sklearn.ensemble._gb import BaseGradientBoosting
        from sklearn.tree import BaseDecisionTree
    except ImportError:  # a scikit-learn that moved them: no cast, and the proof decides
        return False
    return isinstance(estimator, BaseDecisionTree | BaseForest | BaseGradientBoosting)


def _imputer(scope: Any, operator: Any, container: Any) -> None:
    """SimpleImputer for NaN, in the input's own type (float64 or strings)."""
    from skl2onnx.algebra.onnx_ops import OnnxEqual, OnnxIsNaN, OnnxWhere
    from skl2onnx.common.data_types import StringTensorType
    from skl2onnx.operator_converters.common import concatenate_variables
    from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer

    imputer = operator.raw_operator
    missing = imputer.missing_values
    if not (isinstance(missing, float) and np.isnan(missing)):
        convert_sklearn_imputer(scope, operator, container)  # other markers: the stock converter
        return
    values = concatenate_variables(scope, operator.inputs, container)
    version = container.target_opset
    if isinstance(operator.inputs[0].type, StringTensorType):
        fill = np.array([[str(v) for v in imputer.statistics_]], dtype=object)
        marker = np.array([MISSING_TEXT], dtype=object)
        where_missing = OnnxEqual(values, marker, op_version=version)
    else:
        fill = imputer.statistics_.astype(np.float64).reshape(1, -1)
        where_missing = OnnxIsNaN(values, op_version=version)
    OnnxWhere(
        where_missing,
        fill,
        values,
        op_version=version,
        output_names=[operator.outputs[0].full_name],
    ).add_to(scope, container)


def compare(model: Any, onnx: Predictor, test: Any) -> Comparison:
    """scikit-learn and ONNX on the whole test set, then with each feature missing in turn."""
    classifier = hasattr(model, "classes_")
    outputs = ("predict", "predict_proba") if classifier else ("predict",)
    frames = [test]
    probe = test.head(PROBE_ROWS)
    refuses = []
    for column in test.columns:
        missing = probe.copy()
        missing[column] = np.nan  # how the server hands a model a null, text or number
        try:
            model.predict(missing)
        except (ValueError, TypeError):
            refuses.append(str(column))  # scikit-learn refuses it: so will the ONNX runtime
            continue
        frames.append(missing)
    labels_same = labels_total = 0
    worst_abs = worst_rel = 0.0
    for frame in frames:
        columns = {str(c): frame[c].to_numpy() for c in frame.columns}
        try:
            got = onnx(columns, outputs)
        except Exception as err:  # where scikit-learn answered, ONNX must too
            reason = f"ONNX Runtime failed where scikit-learn did not: {_short(err)}"
            return _failed(test, frames, refuses, classifier, reason)
        if classifier:
            labels_same += int(np.sum(got["predict"] == np.asarray(model.predict(frame))))
            labels_total += len(frame)
            diff = np.abs(got["predict_proba"] - np.asarray(model.predict_proba(frame)))
            worst_abs = max(worst_abs, float(diff.max(initial=0.0)))
        else:
            expected = np.asarray(model.predict(frame), dtype=np.float64)
            diff = np.abs(got["predict"] - expected)
            worst_abs = max(worst_abs, float(diff.max(initial=0.0)))
            relative = diff / np.maximum(1.0, np.abs(expected))
            worst_rel = max(worst_rel, float(relative.max(initial=0.0)))
    agreement = labels_same / labels_total if classifier and labels_total else None
    tolerance = PROBABILITY_TOLERANCE if classifier else REGRESSION_TOLERANCE
    reason = ""
    if classifier and labels_same != labels_total:
        reason = f"{labels_total - labels_same} of {labels_total} labels differ"
    elif (worst_abs if classifier else worst_rel) > tolerance:
        what = "probabilities differ" if classifier else "predictions differ (relative)"
        measured = worst_abs if classifier else worst_rel
        reason = f"{what} by up to {measured:.3g}, over the tolerance {tolerance:g}"
    return Comparison(
        rows=len(test),
        probe_rows=sum(len(f) for f in frames[1:]),
        label_agreement=agreement,
        max_abs_difference=worst_abs,
        max_relative_difference=None if classifier else worst_rel,
        tolerance=tolerance,
        refuses_missing=tuple(refuses),
        passed=not reason,
        reason=reason,
    )


def _failed(
    test: Any, frames: list[Any], refuses: list[str], classifier: bool, reason: str
) -> Comparison:
    return Comparison(
        rows=len(test),
        probe_rows=sum(len(f) for f in frames[1:]),
        label_agreement=None,
        max_abs_difference=None,
        max_relative_difference=None,
        tolerance=PROBABILITY_TOLERANCE if classifier else REGRESSION_TOLERANCE,
        refuses_missing=tuple(refuses),
        passed=False,
        reason=reason,
    )

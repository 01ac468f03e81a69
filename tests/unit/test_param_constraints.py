"""Parameter constraints read from scikit-learn's source, against scikit-learn's own checks.

For every estimator scikit-learn ships, the constraints read by `ast` must accept exactly the
values scikit-learn's `_parameter_constraints` accept, for a bank of YAML-like values, and
read the same parameter names; a constraint form we do not understand must be "unknown"
(never an error).
"""

from __future__ import annotations

import ast
import math
from typing import Any

import pytest
from sklearn.utils._param_validation import Options, make_constraint
from sklearn.utils.discovery import all_estimators

from gitops_mlops.spec import param_constraints
from gitops_mlops.spec.param_constraints import _class_constraints, check

ESTIMATORS = sorted(
    (f"{cls.__module__}.{name}", cls) for name, cls in all_estimators() if "._" not in name
)
# The public path (sklearn.ensemble.X) rather than the defining module (sklearn.ensemble._forest).
PUBLIC = {
    path: f"{cls.__module__.split('._')[0]}.{cls.__name__}" if "._" in cls.__module__ else path
    for path, cls in ESTIMATORS
}
PROBES: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    2,
    -1,
    10**12,
    0.0,
    0.5,
    1.0,
    1.5,
    -0.5,
    math.inf,
    -math.inf,
    math.nan,
    "",
    "auto",
    "fast",
    "sqrt",
    [],
    [1, 2],
    ["a"],
    {},
    {"a": 1},
]


def real_accepts(constraints: list[Any], value: Any) -> bool:
    return any(make_constraint(c).is_satisfied_by(value) for c in constraints)


def probes_for(constraints: list[Any]) -> list[Any]:
    options: list[Any] = []
    for c in constraints:
        inner = getattr(c, "constraint", c)  # Hidden
        if isinstance(inner, Options):
            options += list(inner.options)
    return PROBES + options


@pytest.mark.parametrize(("path", "cls"), ESTIMATORS, ids=[p for p, _ in ESTIMATORS])
def test_read_constraints_agree_with_scikit_learn(path: str, cls: type) -> None:
    real: dict[str, Any] = getattr(cls, "_parameter_constraints", {})
    table = _class_constraints(PUBLIC[path])
    if table is None:
        pytest.skip("the class body edits its constraints in a way that is not followed")
    assert set(table) == set(real)
    for name, ours in table.items():
        if ours is None or real[name] == "no_validation":
            continue  # unknown: left to fit
        for value in probes_for(real[name]):
            expected = real_accepts(real[name], value)
            assert any(c.accepts(value) for c in ours) == expected, (name, value)


def test_most_parameters_are_understood() -> None:
    known = total = 0
    for path, cls in ESTIMATORS:
        real: dict[str, Any] = getattr(cls, "_parameter_constraints", {})
        table = _class_constraints(PUBLIC[path]) or {}
        total += len(real)
        known += sum(1 for name in real if table.get(name) is not None)
    # Measured on scikit-learn 1.9: the rest use sets computed by function calls or
    # instances of scikit-learn classes (kernels, losses), left to fit.
    assert known / total > 0.9, (known, total)


@pytest.mark.parametrize(
    ("estimator", "name", "value", "fragment"),
    [
        (
            "sklearn.ensemble.HistGradientBoostingClassifier",
            "learning_rate",
            "fast",
            "must be a float in the range (0.0, inf)",
        ),
        (
            "sklearn.ensemble.RandomForestClassifier",
            "max_depth",
            -1,
            "must be an int in the range [1, inf) or None",
        ),
        (
            "sklearn.ensemble.RandomForestClassifier",
            "criterion",
            "ginni",
            "must be a str among {'entropy', 'gini', 'log_loss'}",
        ),
        (
            "sklearn.linear_model.LogisticRegression",
            "C",
            0,
            "must be a float in the range (0.0, inf]",
        ),
    ],
)
def test_rejections_read_like_scikit_learn(
    estimator: str, name: str, value: Any, fragment: str
) -> None:
    rejection = check(estimator, name, value)
    assert rejection is not None and rejection.message.startswith(fragment), rejection


def test_accepted_values_and_unknown_parameters_pass() -> None:
    assert check("sklearn.ensemble.RandomForestClassifier", "max_depth", None) is None
    assert check("sklearn.ensemble.RandomForestClassifier", "max_depth", 4) is None
    assert check("sklearn.ensemble.RandomForestClassifier", "no_such_param", -1) is None
    assert check("sklearn.nowhere.Thing", "x", -1) is None
    rejection = check("sklearn.ensemble.RandomForestClassifier", "criterion", "ginni")
    assert rejection is not None and "gini" in rejection.options


def test_a_constraint_form_we_do_not_know_is_unknown_not_an_error() -> None:
    forms = param_constraints._Forms("sklearn.ensemble._forest")
    unknown = ("make_constraint(1)", "'odd string'", "Interval(Integral, f(), None, closed='left')")
    for text in unknown:
        with pytest.raises(param_constraints._Unknown):
            forms.constraint(ast.parse(text, mode="eval").body)

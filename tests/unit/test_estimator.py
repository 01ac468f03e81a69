"""Static estimator resolution agrees with what importing the class says."""

from __future__ import annotations

import inspect

import pytest
import sklearn.base
from sklearn.utils import all_estimators

from gitops_mlops.spec.estimator import EstimatorError, resolve


def every_sklearn_estimator() -> list[tuple[str, type]]:
    found = []
    for _, cls in all_estimators():
        parts = cls.__module__.split(".")
        private = next((i for i, p in enumerate(parts) if p.startswith("_")), len(parts))
        module = ".".join(parts[:private])  # where users import it from
        found.append((f"{module}.{cls.__name__}", cls))
    return found


ESTIMATORS = every_sklearn_estimator()


def test_there_are_many() -> None:
    assert len(ESTIMATORS) > 150


@pytest.mark.parametrize(("path", "cls"), ESTIMATORS, ids=[p for p, _ in ESTIMATORS])
def test_static_kind_and_params_match_the_imported_class(path: str, cls: type) -> None:
    info = resolve(path, ())
    assert ("classifier" in info.kinds) == issubclass(cls, sklearn.base.ClassifierMixin)
    assert ("regressor" in info.kinds) == issubclass(cls, sklearn.base.RegressorMixin)
    if cls.__init__ is object.__init__:  # type: ignore[misc]
        assert info.params == frozenset()  # no constructor: no parameters accepted
    elif info.params is not None:
        signature = inspect.signature(cls.__init__)  # type: ignore[misc]
        assert info.params == set(signature.parameters) - {"self"}


@pytest.mark.parametrize(
    ("path", "allowed", "fragment"),
    [
        ("os.path.join", (), "is not allowed"),
        ("sklearnx.Thing", (), "is not allowed"),
        ("sklearn.ensemble.Nope", (), "has no class 'Nope'"),
        ("sklearn.nothing_here.Nope", (), "does not exist"),
        ("not_installed_pkg.Model", ("not_installed_pkg",), "does not exist"),
    ],
)
def test_unresolvable(path: str, allowed: tuple[str, ...], fragment: str) -> None:
    with pytest.raises(EstimatorError, match=fragment):
        resolve(path, allowed)


def test_allowed_third_party_module_falls_back_to_import() -> None:
    # tests.unit.fixture_estimators defines its classifier dynamically: only an import can tell.
    info = resolve("tests.unit.fixture_estimators.Dynamic", ("tests",))
    assert "classifier" in info.kinds

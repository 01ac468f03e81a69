"""What a model file may build: exact trusted types, attacked the way a hostile file would."""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn import (
    calibration,
    compose,
    discriminant_analysis,
    ensemble,
    gaussian_process,
    impute,
    linear_model,
    naive_bayes,
    neighbors,
    neural_network,
    pipeline,
    preprocessing,
    svm,
    tree,
)
from sklearn.datasets import load_diabetes, load_iris

from gitops_mlops import bundle
from gitops_mlops.serving import trust
from gitops_mlops.serving.model import import_skops, load_trusted
from gitops_mlops.serving.trust import UntrustedModelError
from tests import hostile_models as hostile


@pytest.mark.parametrize("path", sorted(trust.REVIEWED_TYPES))
def test_every_reviewed_entry_is_a_class_that_runs_no_code(path: str) -> None:
    found = dict(trust.walk_reviewed())[path]
    assert inspect.isclass(found), f"{path} is {found!r}, not a class"
    assert not isinstance(found, types.FunctionType | types.BuiltinFunctionType)
    assert not issubclass(found, types.FunctionType | types.MethodType | BaseException)
    # The entry is the name skops writes for the class, so it matches exactly one class.
    from skops.io._utils import get_module

    assert f"{get_module(found)}.{found.__name__}" == path
    # Nothing that wraps a Python callable (PyFuncDistance, partial, vectorize).
    assert "PyFunc" not in path and path not in {"functools.partial", "numpy.vectorize"}


def _iris() -> tuple[Any, Any]:
    x, y = load_iris(return_X_y=True, as_frame=True)
    return x, y


def _diabetes() -> tuple[Any, Any]:
    x, y = load_diabetes(return_X_y=True, as_frame=True)
    return x[:120], y[:120] / 100  # few rows, positive for the Poisson family: fits fast


# The estimator families the README documents as loadable, one or more example models each.
FAMILIES: list[tuple[str, Callable[[], Any], Callable[[], tuple[Any, Any]]]] = [
    ("linear", lambda: linear_model.LogisticRegression(max_iter=500), _iris),
    ("linear", lambda: linear_model.Ridge(), _diabetes),
    ("linear", lambda: linear_model.ElasticNet(), _diabetes),
    ("linear", lambda: linear_model.SGDClassifier(random_state=0), _iris),
    ("linear", lambda: linear_model.SGDRegressor(random_state=0), _diabetes),
    ("linear", lambda: linear_model.PoissonRegressor(), _diabetes),
    ("linear", lambda: linear_model.HuberRegressor(), _diabetes),
    ("svm", lambda: svm.SVC(probability=True, random_state=0), _iris),
    ("svm", lambda: svm.LinearSVC(), _iris),
    ("svm", lambda: svm.SVR(), _diabetes),
    ("neighbors", lambda: neighbors.KNeighborsClassifier(), _iris),
    ("neighbors", lambda: neighbors.KNeighborsRegressor(algorithm="ball_tree"), _diabetes),
    ("neighbors", lambda: neighbors.KNeighborsClassifier(metric="manhattan"), _iris),
    ("naive_bayes", lambda: naive_bayes.GaussianNB(), _iris),
    ("tree", lambda: tree.DecisionTreeClassifier(random_state=0), _iris),
    ("tree", lambda: tree.DecisionTreeRegressor(random_state=0), _diabetes),
    ("forest", lambda: ensemble.RandomForestClassifier(10, random_state=0), _iris),
    ("forest", lambda: ensemble.ExtraTreesRegressor(10, random_state=0), _diabetes),
    ("boosting", lambda: ensemble.GradientBoostingClassifier(n_estimators=10), _iris),
    ("boosting", lambda: ensemble.GradientBoostingRegressor(n_estimators=10), _diabetes),
    ("boosting", lambda: ensemble.HistGradientBoostingClassifier(max_iter=10), _iris),
    ("boosting", lambda: ensemble.HistGradientBoostingRegressor(max_iter=10), _diabetes),
    ("boosting", lambda: ensemble.AdaBoostClassifier(n_estimators=10), _iris),
    ("bagging", lambda: ensemble.BaggingClassifier(n_estimators=5, random_state=0), _iris),
    (
        "neural_network",
        lambda: neural_network.MLPClassifier(hidden_layer_sizes=(8,), max_iter=300),
        _iris,
    ),
    (
        "neural_network",
        lambda: neural_network.MLPRegressor(hidden_layer_sizes=(8,), solver="sgd", max_iter=50),
        _diabetes,
    ),
    ("discriminant", lambda: discriminant_analysis.LinearDiscriminantAnalysis(), _iris),
    ("gaussian_process", lambda: gaussian_process.GaussianProcessClassifier(), _iris),
    ("gaussian_process", lambda: gaussian_process.GaussianProcessRegressor(), _diabetes),
    ("calibration", lambda: calibration.CalibratedClassifierCV(svm.LinearSVC()), _iris),
    (
        "ensemble",
        lambda: ensemble.VotingClassifier(
            [
                ("lr", linear_model.LogisticRegression(max_iter=500)),
                ("nb", naive_bayes.GaussianNB()),
            ],
            voting="soft",
        ),
        _iris,
    ),
    (
        "pipeline",  # what `preprocess: auto` builds
        lambda: pipeline.Pipeline(
            [
                (
                    "preprocess",
                    compose.ColumnTransformer(
                        [
                            (
                                "numeric",
                                pipeline.make_pipeline(
                                    impute.SimpleImputer(strategy="median"),
                                    preprocessing.StandardScaler(),
                                ),
                                [0, 1, 2, 3],
                            )
                        ]
                    ),
                ),
                ("model", linear_model.LogisticRegression(max_iter=500)),
            ]
        ),
        _iris,
    ),
    (
        "pipeline",  # a ufunc inside a transformer is fine: a compiled kernel, not Python
        lambda: compose.TransformedTargetRegressor(
            linear_model.Ridge(), func=np.log1p, inverse_func=np.expm1
        ),
        _diabetes,
    ),
    (
        "pipeline",
        lambda: pipeline.make_pipeline(
            preprocessing.OneHotEncoder(handle_unknown="ignore"), linear_model.LogisticRegression()
        ),
        lambda: (_iris()[0].round().astype(int).astype(str), _iris()[1]),
    ),
]


@pytest.mark.parametrize(
    ("family", "make", "data"), FAMILIES, ids=[f"{f}-{i}" for i, (f, _, _) in enumerate(FAMILIES)]
)
def test_example_models_of_every_documented_family_load(
    family: str, make: Callable[[], Any], data: Callable[[], tuple[Any, Any]], tmp_path: Path
) -> None:
    x, y = data()
    model = make().fit(x, y)
    path = tmp_path / "model.skops"
    bundle.save_model(model, path)
    loaded = load_trusted(path)
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def _refused(data: bytes, tmp_path: Path, allow: tuple[str, ...] = ()) -> str:
    path = tmp_path / "model.skops"
    path.write_bytes(data)
    with pytest.raises(UntrustedModelError) as raised:
        load_trusted(path, allow)
    return str(raised.value)


def test_the_issue_exploit_is_refused_and_its_payload_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    message = _refused(hostile.runstring(marker), tmp_path)
    assert "numpy.testing._private.utils.runstring (not a reviewed type)" in message
    assert not marker.exists()


@pytest.mark.parametrize(
    ("make", "why"),
    [
        # Functions, wherever they live, under every loader that would call or return them.
        (
            lambda m: hostile.loss_call("numpy.testing._private.utils", "runstring", "x", {}),
            "numpy.testing._private.utils.runstring (not a reviewed type)",
        ),
        (
            lambda m: hostile.node("ObjectNode", "numpy.testing._private.utils", "runstring"),
            "runstring (not a reviewed type)",
        ),
        (lambda m: hostile.node("FunctionNode", "os", "system"), "os.system (a function)"),
        (
            lambda m: hostile.node("FunctionNode", "numpy.testing._private.utils", "runstring"),
            "runstring (a function)",
        ),
        (
            lambda m: hostile.node("FunctionNode", "sklearn.utils", "all_estimators"),
            "all_estimators (a function)",
        ),
        (
            lambda m: hostile.method("sklearn.pipeline", "Pipeline", "fit"),
            "sklearn.pipeline.Pipeline (a bound method)",
        ),
        (lambda m: hostile.node("OperatorFuncNode", "operator", "methodcaller"), "operator"),
        # Classes that are not reviewed, even in a trusted package or the standard library.
        (lambda m: hostile.loss_call("subprocess", "Popen", "true"), "subprocess.Popen"),
        (
            lambda m: hostile.node("ObjectNode", "sklearn.utils._mocking", "CheckingClassifier"),
            "not a scikit-learn estimator class",
        ),
        (
            lambda m: hostile.node("TypeNode", "sklearn.metrics._dist_metrics", "PyFuncDistance64"),
            "not a scikit-learn estimator class",
        ),
        (
            lambda m: hostile.node("ObjectNode", "sklearn.pipeline", "Pipeline.__init__"),
            "not a valid type name",
        ),
        # A re-exported name is not the class's own: sklearn.tree.DecisionTreeClassifier is
        # written as sklearn.tree._classes.DecisionTreeClassifier.
        (
            lambda m: hostile.node("ObjectNode", "sklearn.tree", "DecisionTreeClassifier"),
            "not a scikit-learn estimator class",
        ),
        # numpy names its bit generators by string: only real bit generators are built.
        (
            lambda m: hostile.node(
                "RandomGeneratorNode",
                "numpy.random._generator",
                "Generator",
                content={"bit_generator": {"content": {"bit_generator": {"content": '"seed"'}}}},
            ),
            "numpy.random.seed (not a numpy bit generator)",
        ),
    ],
)
def test_hostile_files_are_refused_before_anything_is_built(
    make: Callable[[Path], bytes], why: str, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    message = _refused(make(marker), tmp_path)
    assert "refusing to load it" in message and why in message
    assert not marker.exists()


def test_allow_modules_trusts_its_classes_only(tmp_path: Path) -> None:
    from tests.fixture_models import NearestMean

    x, y = _iris()
    path = tmp_path / "model.skops"
    bundle.save_model(NearestMean().fit(x, y), path)
    refused = _refused(path.read_bytes(), tmp_path)
    assert "tests.fixture_models.NearestMean (not a reviewed type)" in refused
    loaded = load_trusted(path, ("tests",))
    np.testing.assert_array_equal(loaded.predict(x), NearestMean().fit(x, y).predict(x))
    # Its functions, and classes it merely imports, stay untrusted.
    function = hostile.node("FunctionNode", "tests.fixture_models", "helper")
    assert "(a function)" in _refused(function, tmp_path, ("tests",))
    popen = hostile.loss_call("tests.fixture_models", "Popen", "true")
    assert "Popen (not a class defined there)" in _refused(popen, tmp_path, ("tests",))


@pytest.mark.parametrize("allowed", ["subprocess", "os", "numpy", "sklearn", "numpy.testing"])
def test_allow_modules_never_widens_trust_to_the_stdlib_or_reviewed_packages(
    allowed: str, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    assert "runstring" in _refused(hostile.runstring(marker), tmp_path, (allowed,))
    popen = hostile.loss_call("subprocess", "Popen", "true")
    assert "Popen" in _refused(popen, tmp_path, (allowed,))
    assert not marker.exists()


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\x80\x04K\x01.", "not a skops model file"),  # a pickle
        (hostile.deeply_nested(100_000), "not a skops model file"),
        (hostile.archive({"__class__": "dict", "__module__": "builtins"}), "skops could not"),
    ],
)
def test_malformed_files_are_refused_not_crashed_on(data: bytes, why: str, tmp_path: Path) -> None:
    assert why in _refused(data, tmp_path)


def test_skops_checks_again_against_exactly_the_accepted_names(tmp_path: Path) -> None:
    # The names the audit accepts for a real model are what skops is told to trust.
    x, y = _iris()
    path = tmp_path / "model.skops"
    bundle.save_model(tree.DecisionTreeClassifier().fit(x, y), path)
    names = trust.audit(path.read_bytes(), path)
    assert "sklearn.tree._classes.DecisionTreeClassifier" in names
    assert "sklearn.tree._tree.Tree" in names
    skops_io = import_skops()
    assert set(skops_io.get_untrusted_types(file=path)) <= set(names)

"""Files made only of trusted types whose trees point outside their arrays are refused.

Each case saves a real fitted model whose tree was then altered the way a hostile file
would alter it; predicting with it would crash the process (scikit-learn follows these
indices without bounds checks), so the load must refuse it before anything predicts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.neighbors import KNeighborsClassifier
from sklearn.tree import DecisionTreeClassifier
from sklearn.tree._tree import Tree

from gitops_mlops import bundle
from gitops_mlops.serving.model import load_trusted
from gitops_mlops.serving.trust import UntrustedModelError

X, Y = load_iris(return_X_y=True)


def altered_tree(tree: Any, field: str, index: int, value: int, n_features: int = 0) -> Tree:
    """A copy of `tree` with one node field changed (and optionally another width)."""
    cls, (width, classes, outputs), state = tree.__reduce__()
    nodes = state["nodes"].copy()
    nodes[field][index] = value
    copy = cls(n_features or width, classes, outputs)
    copy.__setstate__(state | {"nodes": nodes})
    return copy


def tree_child_out_of_range() -> Any:
    model = DecisionTreeClassifier(random_state=0).fit(X, Y)
    model.tree_ = altered_tree(model.tree_, "left_child", 0, 10**6)
    return model


def tree_feature_out_of_range() -> Any:
    model = DecisionTreeClassifier(random_state=0).fit(X, Y)
    model.tree_ = altered_tree(model.tree_, "feature", 0, 10**6)
    return model


def tree_with_a_cycle() -> Any:
    model = DecisionTreeClassifier(random_state=0).fit(X, Y)
    internal = int(np.flatnonzero(model.tree_.children_left != -1)[1])
    model.tree_ = altered_tree(model.tree_, "left_child", internal, 0)
    return model


def forest_member_wider_than_the_forest() -> Any:
    model = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, Y)
    member = model.estimators_[1]
    member.tree_ = altered_tree(member.tree_, "feature", 0, 999, n_features=1000)
    member.n_features_in_ = 1000
    return model


def tree_wider_than_its_estimator() -> Any:
    model = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, Y)
    member = model.estimators_[2]
    member.tree_ = altered_tree(member.tree_, "feature", 0, 999, n_features=1000)
    return model


def boosting_tree_feature_out_of_range() -> Any:
    model = GradientBoostingClassifier(n_estimators=3, random_state=0).fit(X, Y)
    member = model.estimators_[0, 0]
    member.tree_ = altered_tree(member.tree_, "feature", 0, 10**6)
    return model


def histogram_child_out_of_range() -> Any:
    model = HistGradientBoostingClassifier(max_iter=3).fit(X, Y)
    model._predictors[0][0].nodes["left"][0] = 10**6
    return model


def histogram_feature_out_of_range() -> Any:
    model = HistGradientBoostingClassifier(max_iter=3).fit(X, Y)
    model._predictors[1][2].nodes["feature_idx"][0] = 10**6
    return model


def histogram_categories_of_a_numeric_feature() -> Any:
    model = HistGradientBoostingClassifier(max_iter=3).fit(X, Y)
    model._predictors[0][0].nodes["is_categorical"][0] = 1
    return model


def neighbours_index_out_of_range() -> Any:
    model = KNeighborsClassifier(algorithm="kd_tree").fit(X, Y)
    _, order, _, _ = model._tree.get_arrays()
    np.asarray(order)[0] = 10**6
    return model


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (tree_child_out_of_range, "a decision tree has a child index out of range"),
        (tree_feature_out_of_range, "a decision tree splits on a feature out of range"),
        (tree_with_a_cycle, "a decision tree has a child index out of range"),
        (forest_member_wider_than_the_forest, "not 4 features wide like its ensemble"),
        (tree_wider_than_its_estimator, "1000 features wide in a 4-wide model"),
        (boosting_tree_feature_out_of_range, "splits on a feature out of range"),
        (histogram_child_out_of_range, "histogram boosting tree has a child index out of range"),
        (histogram_feature_out_of_range, "histogram boosting tree splits on a feature out of"),
        (histogram_categories_of_a_numeric_feature, "splits categories of a numeric feature"),
        (neighbours_index_out_of_range, "a neighbours tree indexes rows outside its data"),
    ],
)
def test_trees_pointing_outside_their_arrays_are_refused(
    make: Callable[[], Any], why: str, tmp_path: Path
) -> None:
    path = tmp_path / "model.skops"
    bundle.save_model(make(), path)
    with pytest.raises(UntrustedModelError) as raised:
        load_trusted(path)
    assert "refusing to load it" in str(raised.value) and why in str(raised.value)


def test_the_same_models_untouched_load() -> None:
    for model in (
        DecisionTreeClassifier(random_state=0),
        RandomForestClassifier(n_estimators=3, random_state=0),
        GradientBoostingClassifier(n_estimators=3, random_state=0),
        HistGradientBoostingClassifier(max_iter=3, categorical_features=[0]),
        KNeighborsClassifier(algorithm="kd_tree"),
    ):
        features = np.column_stack([X[:, 0].round().astype(int), X[:, 1:]])
        fitted = model.fit(features, Y)
        from gitops_mlops.serving.structure import check

        check(fitted)  # no exception: real models are well-formed

"""Checks on the values of trusted types that scikit-learn's compiled code indexes unchecked.

A model file made only of trusted types can still describe a tree whose child or feature
indices point outside its arrays: scikit-learn's Cython code follows them without bounds
checks, and predicting crashes the process (a segfault) or reads other memory. The sha256
check keeps such values the trained ones only while the manifest is trusted, so every loaded
model is walked once and each such structure is checked here:

- decision trees (`Tree`, also inside forests and gradient boosting): children after their
  parent and inside the arrays, features below the tree's width, which is its owner's;
- histogram gradient boosting predictors: the same for their node records, and categorical
  splits only on categorical features with their bitsets present;
- KD and ball trees (nearest neighbours): indices inside the training data and node arrays.

This module runs inside the serving image: standard library, numpy and scikit-learn only.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

MAX_OBJECTS = 10_000_000  # a walk that visits more has been handed a hostile object graph


class BadStructure(Exception):
    """A trusted type holding values that would make predicting read outside its arrays."""


def check(model: Any) -> None:
    """Raise BadStructure when any tree-like part of `model` holds out-of-range indices."""
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
    from sklearn.neighbors._ball_tree import BallTree
    from sklearn.neighbors._kd_tree import KDTree
    from sklearn.tree._tree import Tree

    for owner, found in _walk(model):
        if isinstance(found, Tree):
            _check_tree(found, getattr(owner, "n_features_in_", None))
        elif isinstance(found, TreePredictor):
            _check_predictor(found, owner)
        elif isinstance(found, KDTree | BallTree):
            _check_binary_tree(found)
        _check_sub_trees(found)


def _walk(model: Any) -> Iterator[tuple[Any, Any]]:
    """(owner, object) for every object reachable from `model` through attributes, lists,
    tuples, dicts and object arrays; each object once."""
    seen: set[int] = set()
    stack: list[tuple[Any, Any]] = [(None, model)]
    while stack:
        owner, found = stack.pop()
        if id(found) in seen or isinstance(found, str | bytes | int | float | bool | None):
            continue
        seen.add(id(found))
        if len(seen) > MAX_OBJECTS:
            raise BadStructure(f"the model holds over {MAX_OBJECTS} objects")
        yield owner, found
        if isinstance(found, dict):
            stack.extend((owner, v) for v in found.values())
        elif isinstance(found, list | tuple | set | frozenset):
            stack.extend((owner, v) for v in found)
        elif isinstance(found, np.ndarray):
            if found.dtype == object:
                stack.extend((owner, v) for v in found.ravel())
        elif hasattr(found, "__dict__"):
            stack.extend((found, v) for v in vars(found).values())


def _fail(what: str) -> BadStructure:
    return BadStructure(f"{what}; predicting would read outside its arrays")


def _children_in_range(left: Any, right: Any, internal: Any, count: int, what: str) -> None:
    index = np.arange(count)
    for child in (left, right):
        child = np.asarray(child, dtype=np.int64)[internal]
        if np.any((child <= index[internal]) | (child >= count)):
            raise _fail(f"a {what} has a child index out of range")


def _check_tree(tree: Any, width: Any) -> None:
    count = int(tree.node_count)
    left, right = np.asarray(tree.children_left), np.asarray(tree.children_right)
    feature = np.asarray(tree.feature)
    if count < 1 or any(a.shape != (count,) for a in (left, right, feature)):
        raise _fail("a decision tree has node arrays of the wrong size")
    if np.asarray(tree.value).shape[0] != count:
        raise _fail("a decision tree has a value array of the wrong size")
    internal = left != -1
    if np.any(right[~internal] != -1):
        raise _fail("a decision tree has a leaf with one child")
    _children_in_range(left, right, internal, count, "decision tree")
    n_features = int(tree.n_features)
    if width is not None and int(width) != n_features:
        raise _fail(f"a decision tree is {n_features} features wide in a {width}-wide model")
    if np.any((feature[internal] < 0) | (feature[internal] >= n_features)):
        raise _fail("a decision tree splits on a feature out of range")


def _check_sub_trees(found: Any) -> None:
    """Forests and gradient boosting hand their own validated input to each tree unchecked:
    every tree must be as wide as its ensemble."""
    width = getattr(found, "n_features_in_", None)
    members = getattr(found, "estimators_", None)
    if width is None or members is None or not _passes_input_unchecked(found):
        return
    for member in np.asarray(members, dtype=object).ravel():
        if getattr(member, "n_features_in_", width) != width:
            raise _fail(f"an ensemble member is not {width} features wide like its ensemble")


def _passes_input_unchecked(found: Any) -> bool:
    from sklearn.ensemble._forest import BaseForest
    from sklearn.ensemble._gb import BaseGradientBoosting

    return isinstance(found, BaseForest | BaseGradientBoosting)


def _check_predictor(predictor: Any, owner: Any) -> None:
    nodes = np.asarray(predictor.nodes)
    count = nodes.shape[0] if nodes.ndim == 1 else 0
    if count < 1 or nodes.dtype.names is None:
        raise _fail("a histogram boosting tree has no node records")
    internal = nodes["is_leaf"] == 0
    _children_in_range(nodes["left"], nodes["right"], internal, count, "histogram boosting tree")
    width = getattr(owner, "n_features_in_", None)
    mapper = getattr(owner, "_bin_mapper", None)
    if width is None or mapper is None:
        raise _fail("a histogram boosting tree is not held by its estimator")
    features = nodes["feature_idx"][internal].astype(np.int64)
    if np.any(features >= int(width)):
        raise _fail("a histogram boosting tree splits on a feature out of range")
    categorical = mapper.is_categorical_
    flags = np.zeros(int(width), bool) if categorical is None else np.asarray(categorical, bool)
    split = internal & (nodes["is_categorical"] != 0)
    if flags.shape != (int(width),) or not np.all(flags[nodes["feature_idx"][split]]):
        raise _fail("a histogram boosting tree splits categories of a numeric feature")
    bitsets = np.asarray(predictor.raw_left_cat_bitsets)
    if np.any(nodes["bitset_idx"][split] >= (bitsets.shape[0] if bitsets.ndim == 2 else 0)):
        raise _fail("a histogram boosting tree names a category bitset it lacks")


def _check_binary_tree(tree: Any) -> None:
    data, order, node_data, bounds = (np.asarray(a) for a in tree.get_arrays())
    rows, nodes = data.shape[0], node_data.shape[0]
    if order.shape != (rows,) or np.any((order < 0) | (order >= rows)):
        raise _fail("a neighbours tree indexes rows outside its data")
    start, end = node_data["idx_start"], node_data["idx_end"]
    if np.any((start < 0) | (start > end) | (end > rows)):
        raise _fail("a neighbours tree has a node outside its data")
    if bounds.shape[1:] != (nodes, data.shape[1]):
        raise _fail("a neighbours tree has node bounds of the wrong size")
    inner = np.flatnonzero(node_data["is_leaf"] == 0)
    if np.any(2 * inner + 2 >= nodes):
        raise _fail("a neighbours tree has a node whose children are missing")

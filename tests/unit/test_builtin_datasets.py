"""Every built-in dataset entry against scikit-learn's real loader, and against the schema."""

from __future__ import annotations

import pytest
from sklearn import datasets

from gitops_mlops.builtin_datasets import BUILTINS, TARGET, BuiltinDataset
from gitops_mlops.spec.schema import schema


@pytest.mark.parametrize("entry", list(BUILTINS.values()), ids=list(BUILTINS))
def test_the_entry_describes_what_scikit_learn_loads(entry: BuiltinDataset) -> None:
    frame = getattr(datasets, entry.loader)(as_frame=True).frame
    assert tuple(str(c) for c in frame.columns) == entry.columns
    assert {c: str(t) for c, t in frame.dtypes.items()} == {
        c: entry.dtype(c) for c in entry.columns
    }
    assert len(frame) == entry.rows
    target = frame[TARGET]
    if entry.task == "classification":
        assert tuple(int(v) for v in sorted(target.unique())) == entry.classes
    else:
        assert entry.classes == ()
        assert target.nunique() > 20  # a continuous target


def test_the_schema_offers_exactly_the_registry() -> None:
    offered = schema()["$defs"]["dataset"]["properties"]["builtin"]["enum"]
    assert sorted(offered) == sorted(BUILTINS)
    assert all(name == entry.name for name, entry in BUILTINS.items())

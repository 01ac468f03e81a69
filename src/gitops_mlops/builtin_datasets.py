"""The datasets bundled with scikit-learn that `data.train.builtin` names: one table.

Validation needs their columns, task and classes without importing scikit-learn (a second
or more), so they are written down here; `tests/unit/test_builtin_datasets.py` walks every
entry and checks it against scikit-learn's real loader. Adding a dataset is one entry here
and its name in the schema's `builtin` enum (a test checks that the two agree).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TARGET = "target"  # scikit-learn's frames name the label column `target`


@dataclass(frozen=True)
class BuiltinDataset:
    name: str
    loader: str  # the function in sklearn.datasets
    task: Literal["classification", "regression"]
    features: tuple[str, ...]
    classes: tuple[int, ...]  # the target's labels; () for regression
    rows: int
    target_dtype: str
    feature_dtype: str = "float64"

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.features, TARGET)

    def dtype(self, column: str) -> str:
        return self.target_dtype if column == TARGET else self.feature_dtype


_IRIS = ("sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)")
_WINE = (
    "alcohol",
    "malic_acid",
    "ash",
    "alcalinity_of_ash",
    "magnesium",
    "total_phenols",
    "flavanoids",
    "nonflavanoid_phenols",
    "proanthocyanins",
    "color_intensity",
    "hue",
    "od280/od315_of_diluted_wines",
    "proline",
)
_CANCER_MEASURES = (
    "radius",
    "texture",
    "perimeter",
    "area",
    "smoothness",
    "compactness",
    "concavity",
    "concave points",
    "symmetry",
    "fractal dimension",
)
_CANCER = (
    tuple(f"mean {m}" for m in _CANCER_MEASURES)
    + tuple(f"{m} error" for m in _CANCER_MEASURES)
    + tuple(f"worst {m}" for m in _CANCER_MEASURES)
)
_DIABETES = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")
_DIGITS = tuple(f"pixel_{row}_{column}" for row in range(8) for column in range(8))

BUILTINS: dict[str, BuiltinDataset] = {
    d.name: d
    for d in (
        BuiltinDataset("iris", "load_iris", "classification", _IRIS, (0, 1, 2), 150, "int64"),
        BuiltinDataset("wine", "load_wine", "classification", _WINE, (0, 1, 2), 178, "int64"),
        BuiltinDataset(
            "breast_cancer", "load_breast_cancer", "classification", _CANCER, (0, 1), 569, "int64"
        ),
        BuiltinDataset("diabetes", "load_diabetes", "regression", _DIABETES, (), 442, "float64"),
        BuiltinDataset(
            "digits", "load_digits", "classification", _DIGITS, tuple(range(10)), 1797, "int64"
        ),
    )
}

"""Make data/diabetes.csv from scikit-learn's bundled diabetes data (nothing downloaded).

A small regression dataset with what real tables have and the bundled one lacks: a
categorical column (`sex`, `age_group`) and missing values (in `bmi` and `bp`).
Run: python examples/diabetes-csv/make_data.py
"""

from pathlib import Path

import numpy as np
from sklearn.datasets import load_diabetes

frame = load_diabetes(as_frame=True, scaled=False).frame
frame["sex"] = frame["sex"].map({1.0: "female", 2.0: "male"})
frame.insert(
    1,
    "age_group",
    np.where(frame["age"] < 40, "young", np.where(frame["age"] < 60, "middle", "senior")),
)
rng = np.random.default_rng(7)
for column in ("bmi", "bp"):
    frame.loc[rng.random(len(frame)) < 0.05, column] = np.nan
frame = frame.rename(columns={"target": "progression"})
out = Path(__file__).parent / "data" / "diabetes.csv"
frame.to_csv(out, index=False, float_format="%.4g")
print(f"wrote {out} ({len(frame)} rows)")

"""A training program for `model.command` (see the contract in the README).

It reads the split that mlops wrote, fits a model its own way, saves it with skops and
reports one extra metric. Any language works, as long as it writes a skops file.
"""

import json
import os
from pathlib import Path

import pandas as pd
import skops.io
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

train = pd.read_csv(os.environ["MLOPS_TRAIN_PATH"])
target = os.environ["MLOPS_TARGET"]
features = json.loads(os.environ["MLOPS_FEATURES"])
seed = int(os.environ["MLOPS_SEED"])
out = Path(os.environ["MLOPS_OUTPUT_DIR"])

model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, random_state=seed))
cv = cross_val_score(model, train[features], train[target], cv=5)
print(f"cross-validated accuracy {cv.mean():.3f} ± {cv.std():.3f}")
model.fit(train[features], train[target])
skops.io.dump(model, out / "model.skops")
(out / "metrics.json").write_text(json.dumps({"cv_accuracy": float(cv.mean())}))

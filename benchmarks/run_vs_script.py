"""`mlops run --until gate` against a plain scikit-learn script doing the same work.

    python benchmarks/run_vs_script.py [--rows 200000] [--repeats 3]

Both read the same synthetic classification CSV, split it the same way, fit the same
estimator, predict and compute the same metrics. mlops also validates the spec, writes the
skops bundle and manifest, and gates. Run side by side, interleaved, as fresh processes.
Target (issue 3): mlops <= 1.15x the script with intervals off. A third column shows what
bootstrap intervals (1,000 resamples) add. Two estimators: a quick linear model, where
mlops's fixed cost (validation, importing skops, writing the bundle: about 0.6 s) shows
most, and gradient boosting, the usual choice for a table this size.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPEC = """apiVersion: mlops/v1
kind: ModelPipeline
metadata: {{name: bench}}
task: classification
data:
  train: {{path: data.csv, target: y}}
  split: {{test_size: 0.2, seed: 0}}
model:
  estimator: {estimator}
  params: {params}
  preprocess: none
evaluation:
  metrics: [accuracy, f1_macro, balanced_accuracy]
  confidence: {confidence}
  latency: false
gate:
  thresholds:
    - {{metric: accuracy, min: 0.5}}
"""

SCRIPT = """
import pandas as pd
from {module} import {name}
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score
from sklearn.model_selection import train_test_split
frame = pd.read_csv("data.csv")
x, y = frame.drop(columns="y"), frame["y"]
x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
model = {name}(**{params}, random_state=0).fit(x_train, y_train)
predicted = model.predict(x_test)
print(accuracy_score(y_test, predicted), f1_score(y_test, predicted, average="macro"),
      balanced_accuracy_score(y_test, predicted))
"""


def make_data(folder: Path, rows: int) -> None:
    import pandas as pd
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=rows, n_features=20, n_informative=8, n_classes=3, random_state=0
    )
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(20)]).assign(y=y)
    frame.to_csv(folder / "data.csv", index=False)


def wall(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


ESTIMATORS = {
    "LogisticRegression": ("sklearn.linear_model", "{max_iter: 200}", "{'max_iter': 200}"),
    "HistGradientBoostingClassifier": ("sklearn.ensemble", "{max_iter: 100}", "{'max_iter': 100}"),
}


def compare(folder: Path, mlops: str, name: str, repeats: int) -> float:
    module, yaml_params, py_params = ESTIMATORS[name]
    for label, confidence in (("off", "false"), ("on", "{resamples: 1000}")):
        spec = SPEC.format(confidence=confidence, estimator=f"{module}.{name}", params=yaml_params)
        (folder / f"{label}.yaml").write_text(spec)
    (folder / "script.py").write_text(SCRIPT.format(module=module, name=name, params=py_params))
    commands = {
        "script": [sys.executable, "script.py"],
        "mlops (intervals off)": [mlops, "run", "off.yaml", "--out", "run-off"],
        "mlops (intervals on)": [mlops, "run", "on.yaml", "--out", "run-on"],
    }
    times: dict[str, list[float]] = {label: [] for label in commands}
    for command in commands.values():
        wall(command, folder)  # warm caches
    for _ in range(repeats):
        for label, command in commands.items():
            times[label].append(wall(command, folder))
    medians = {label: statistics.median(values) for label, values in times.items()}
    base = medians["script"]
    print(f"\n{name}")
    for label, value in medians.items():
        print(f"  {label:24} {value:7.2f} s  {value / base:5.2f}x")
    added = medians["mlops (intervals on)"] - medians["mlops (intervals off)"]
    print(f"  intervals add {added:+.2f} s")
    return medians["mlops (intervals off)"] / base


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    # The console script next to this interpreter, like the script's `sys.executable`: a
    # version manager's shim on PATH would add its own start-up time to one side only.
    mlops = str(Path(sys.executable).with_name("mlops"))
    if not Path(mlops).is_file():
        print(f"needs {mlops} (pip install -e '.[ml]' with this interpreter)")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_data(folder, args.rows)
        print(f"{args.rows} rows, median of {args.repeats} runs each")
        ratios = {name: compare(folder, mlops, name, args.repeats) for name in ESTIMATORS}
    for name, ratio in ratios.items():
        verdict = "met" if ratio <= 1.15 else "NOT met"
        print(f"{name}: mlops / script = {ratio:.2f}x (target <= 1.15x: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

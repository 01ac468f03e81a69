"""`mlops validate` against `check-jsonschema` on the same files, side by side in one run.

    python benchmarks/validate.py [--runs 15]

Both run as fresh processes, as a pre-commit hook or a CI step would, interleaved so that
machine noise hits both alike. check-jsonschema only checks the schema; mlops validate also
runs the semantic checks (estimator resolution, metric registry, paths, the data's columns
from a CSV header, ...).
Target (issue 2): mlops validate <= 0.3 s wall and no slower than check-jsonschema.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "schemas" / "mlops.v1.schema.json"
FILES = {
    "sklearn estimator (examples/iris)": ROOT / "examples" / "iris" / "mlops.yaml",
    "command trainer": ROOT / "tests" / "specs" / "valid" / "command-trainer.yaml",
    "CSV data, columns checked (diabetes-csv)": ROOT / "examples" / "diabetes-csv" / "mlops.yaml",
}


def wall(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    mlops = shutil.which("mlops")
    checker = shutil.which("check-jsonschema")
    if not mlops or not checker:
        print("needs `mlops` and `check-jsonschema` on PATH (pip install -e '.[test]')")
        return 1
    met = True
    print(f"{'spec':42} {'mlops validate':>15} {'check-jsonschema':>17} {'ratio':>7}")
    for label, spec in FILES.items():
        ours = [mlops, "validate", str(spec)]
        theirs = [checker, "--schemafile", str(SCHEMA), str(spec)]
        wall(ours), wall(theirs)  # warm the page cache for both
        times_ours, times_theirs = [], []
        for _ in range(args.runs):
            times_ours.append(wall(ours))
            times_theirs.append(wall(theirs))
        a, b = statistics.median(times_ours), statistics.median(times_theirs)
        met &= a <= 0.3 and a <= b
        print(f"{label:42} {a * 1000:12.0f} ms {b * 1000:14.0f} ms {a / b:7.2f}")
    print(
        f"median of {args.runs} runs each; target <= 300 ms and ratio <= 1.00: "
        f"{'met' if met else 'NOT met'}"
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())

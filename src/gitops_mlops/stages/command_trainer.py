"""The contract for `model.command`: your own training program.

The command runs without a shell, in the spec's folder, with these environment variables:

    MLOPS_TRAIN_PATH   CSV of the training rows (features and target)
    MLOPS_TEST_PATH    CSV of the test rows (same columns)
    MLOPS_TARGET       name of the target column
    MLOPS_FEATURES     JSON list of the feature columns
    MLOPS_TASK         classification | regression
    MLOPS_OUTPUT_DIR   folder to write into
    MLOPS_SEED         the spec's model.seed

It must write `$MLOPS_OUTPUT_DIR/model.skops`: a skops file of a scikit-learn compatible
estimator that takes the feature columns (built from trusted types only). It may write
`$MLOPS_OUTPUT_DIR/metrics.json`, a mapping of extra metric names to numbers, shown in
reports. Its output is streamed; it is stopped after `model.timeout_seconds`.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from gitops_mlops import bundle, datasets
from gitops_mlops.errors import MlopsError
from gitops_mlops.rundir import RunDir, write_json
from gitops_mlops.spec.model import Spec

_TAIL = 20


def run(
    spec: Spec, run_dir: RunDir, data: datasets.Data, env: Mapping[str, str]
) -> tuple[Any, dict[str, Any]]:
    assert spec.model.command is not None
    train_path, test_path = _write_split(run_dir, data)
    output = run_dir.command_output
    output.mkdir(parents=True, exist_ok=True)
    child_env = {
        **env,
        "MLOPS_TRAIN_PATH": str(train_path),
        "MLOPS_TEST_PATH": str(test_path),
        "MLOPS_TARGET": data.target,
        "MLOPS_FEATURES": json.dumps(data.features),
        "MLOPS_TASK": spec.task,
        "MLOPS_OUTPUT_DIR": str(output.resolve()),
        "MLOPS_SEED": str(spec.model.seed),
    }
    _execute(list(spec.model.command), spec.root, child_env, spec.model.timeout_seconds)
    produced = output / bundle.MODEL_FILE
    if not produced.is_file():
        raise MlopsError(
            f"the training command finished but wrote no {produced}; "
            "it must save the model with skops.io.dump(model, $MLOPS_OUTPUT_DIR/model.skops)"
        )
    model = bundle.load_model(produced, spec.model.allow_modules)
    details: dict[str, Any] = {"trainer": "command", "command": list(spec.model.command)}
    custom = _custom_metrics(output / "metrics.json")
    if custom:
        write_json(run_dir.command_metrics, custom)
    return model, details


def _write_split(run_dir: RunDir, data: datasets.Data) -> tuple[Path, Path]:
    run_dir.data_dir.mkdir(parents=True, exist_ok=True)
    paths = run_dir.train_csv, run_dir.test_csv
    for path, x, y in (
        (paths[0], data.x_train, data.y_train),
        (paths[1], data.x_test, data.y_test),
    ):
        x.assign(**{data.target: y}).to_csv(path, index=False)
    return paths[0].resolve(), paths[1].resolve()


def _execute(command: list[str], cwd: Path, env: Mapping[str, str], timeout: int) -> None:
    try:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,  # so a timeout stops the command's children too
        )
    except OSError as err:
        raise MlopsError(
            f"cannot start the training command {command[0]!r}: {err.strerror}"
        ) from None
    assert process.stdout is not None
    tail: deque[str] = deque(maxlen=_TAIL)
    reader = threading.Thread(target=_stream, args=(process.stdout, tail), daemon=True)
    reader.start()
    started = time.monotonic()
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        reader.join(5)
        raise MlopsError(
            f"the training command ran longer than model.timeout_seconds ({timeout} s) and was "
            f"stopped. Last lines:\n{_indent(tail)}"
        ) from None
    reader.join(5)
    if code != 0:
        raise MlopsError(
            f"the training command exited with code {code} after "
            f"{time.monotonic() - started:.1f} s. Last lines:\n{_indent(tail)}"
        )


def _stream(pipe: IO[str], tail: deque[str]) -> None:
    for line in pipe:
        sys.stderr.write(f"  | {line}")
        tail.append(line.rstrip("\n"))


def _indent(lines: deque[str]) -> str:
    return "\n".join(f"  | {line}" for line in lines) or "  | (no output)"


def _custom_metrics(path: Path) -> dict[str, float]:
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise MlopsError(f"{path}: the command's metrics are not valid JSON ({err})") from None
    if not isinstance(raw, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        for v in raw.values()
    ):
        raise MlopsError(f"{path}: must be a JSON mapping of metric names to finite numbers")
    return {str(k): float(v) for k, v in raw.items()}

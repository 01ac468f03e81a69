"""The champion re-evaluated on the candidate's test rows: fetched by digest from a real
registry (or a local run directory or bundle), checked before it is loaded, cached, and
compared metric by metric with paired intervals; the gate's max_regression reads Δ."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gitops_mlops.integrations.registry import Registry
from gitops_mlops.records.comparison import Comparison
from gitops_mlops.records.predictions import read as read_predictions
from gitops_mlops.records.release import ReleaseRecord
from gitops_mlops.rundir import RunDir
from tests.conftest import run_cli
from tests.image_setup import shared_registry
from tests.integration.helpers import copy_example, run_until, without_latency_gate, write_spec
from tests.integration.registry_helpers import SHARED, push_image
from tests.integration.server_helpers import free_port


def _spec(folder: Path, params: str, threshold: str = "") -> Path:
    """The iris example with these model params, no latency, and an extra threshold."""
    spec = copy_example(folder)
    text = without_latency_gate(spec.read_text())
    text = text.replace("params: {n_estimators: 100, random_state: 0}", f"params: {params}")
    text = text.replace("  latency: {batch_size: 1, repeats: 100}\n", "")
    if threshold:
        text = text.replace("  thresholds:\n", f"  thresholds:\n{threshold}\n")
    spec.write_text(text)
    return spec


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A weak champion (one stump) and a good candidate, trained on the same split."""
    folder = tmp_path_factory.mktemp("champion")
    weak = _spec(
        folder / "weak",
        "{n_estimators: 1, max_depth: 1, random_state: 0}",
        # When it is the candidate: a higher- and a lower-is-better metric, on Δ's bound.
        "    - {metric: accuracy, max_regression: 0.05, on: bound}\n"
        "    - {metric: log_loss, max_regression: 0.5, relative: true, on: bound}",
    )
    weak.write_text(weak.read_text().replace("roc_auc_ovr]", "roc_auc_ovr, log_loss]"))
    strong = _spec(folder / "strong", "{n_estimators: 10, random_state: 0}")
    return {
        "weak": run_until(weak, folder / "weak-run", "evaluate"),
        "strong": run_until(strong, folder / "strong-run", "evaluate"),
        "folder": folder,
    }


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    return env | {"MLOPS_CHAMPION_CACHE": str(tmp_path / "champions")} | extra


def _gate(run: Path, champion: Path, tmp_path: Path) -> Any:
    """`mlops gate RUN --champion CHAMPION` with a champion cache of this test's own."""
    return run_cli("gate", str(run), "--champion", str(champion), env=_env(tmp_path))


def _comparison(run: Path) -> Comparison:
    return Comparison.from_json(json.loads((run / "comparison.json").read_text()), "test")


def _accuracy(labels: np.ndarray[Any, Any], truth: np.ndarray[Any, Any]) -> float:
    return float(np.mean(labels == truth))


def test_a_run_directory_champion_is_re_evaluated_on_the_same_rows(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    result = _gate(runs["strong"], runs["weak"], tmp_path)
    assert result.code == 0, result.out + result.err
    assert "re-evaluated on the same 45 rows" in result.out
    compared = _comparison(runs["strong"])
    assert compared.mode == "paired" and compared.n_rows == 45
    ours = read_predictions(runs["strong"] / "predictions.npz").predictions
    theirs = read_predictions(runs["strong"] / "champion-predictions.npz").predictions
    # The champion's predictions are its own model's, on the candidate's rows.
    assert np.array_equal(theirs.y_true, ours.y_true)
    weak = read_predictions(runs["weak"] / "predictions.npz").predictions
    assert np.array_equal(theirs.y_pred, weak.y_pred)
    row = compared.delta("accuracy")
    assert row is not None and row.delta is not None
    assert row.ci_low is not None and row.ci_high is not None
    a, b = _accuracy(ours.y_pred, ours.y_true), _accuracy(theirs.y_pred, theirs.y_true)
    assert row.candidate == pytest.approx(a) and row.champion == pytest.approx(b)
    assert row.delta == pytest.approx(a - b)
    # Independently: a direct paired bootstrap of the rows in numpy.
    rng = np.random.default_rng(7)
    right_a = (ours.y_pred == ours.y_true).astype(float)
    right_b = (theirs.y_pred == theirs.y_true).astype(float)
    draws = rng.integers(0, ours.n, size=(4000, ours.n))
    paired = right_a[draws].mean(axis=1) - right_b[draws].mean(axis=1)
    low, high = np.percentile(paired, [2.5, 97.5])
    assert row.ci_low == pytest.approx(low, abs=0.03)
    assert row.ci_high == pytest.approx(high, abs=0.03)
    other = rng.integers(0, ours.n, size=(4000, ours.n))
    unpaired = right_a[draws].mean(axis=1) - right_b[other].mean(axis=1)
    u_low, u_high = np.percentile(unpaired, [2.5, 97.5])
    assert row.ci_high - row.ci_low < u_high - u_low
    assert row.verdict == "better"
    # Every metric and slice has its row; the report shows Δ with its interval.
    assert {(r.metric, r.slice) for r in compared.rows} == {
        (m, s) for m in ("accuracy", "f1_macro", "roc_auc_ovr") for s in (None, "long-petals")
    }
    # The example's `f1_macro max_regression` (on: estimate) reads the paired Δ estimate.
    verdict = json.loads((runs["strong"] / "verdict.json").read_text())
    gated = next(r for r in verdict["rows"] if r["kind"] == "max_regression")
    f1 = compared.delta("f1_macro")
    assert f1 is not None and gated["metric"] == "f1_macro" and gated["compared"] == "paired"
    assert gated["delta"] == pytest.approx(f1.delta) and gated["passed"] is True
    report = (runs["strong"] / "report.md").read_text()
    assert "re-evaluated on the same 45 test rows" in report
    assert f"[{row.ci_low:+.4g}, {row.ci_high:+.4g}]" in report and "better" in report


def test_max_regression_reads_the_paired_difference(runs: dict[str, Path], tmp_path: Path) -> None:
    """The weak model as candidate against the good one: its paired Δ is clearly negative."""
    run = runs["weak"]
    result = _gate(run, runs["strong"], tmp_path)
    assert result.code == 4, result.out + result.err
    verdict = json.loads((run / "verdict.json").read_text())
    row = next(
        r for r in verdict["rows"] if r["kind"] == "max_regression" and r["metric"] == "accuracy"
    )
    compared = _comparison(run).delta("accuracy")
    assert compared is not None and compared.ci_low is not None
    assert row["compared"] == "paired" and row["passed"] is False
    assert row["delta"] == pytest.approx(compared.ci_low)  # the pessimistic end of Δ
    assert row["champion"] == pytest.approx(compared.champion)
    assert "on the same rows" in row["reason"] and "pessimistic end" in row["reason"]
    # Lower is better: the pessimistic end is the interval's high end; relative to the
    # champion's value on the same rows.
    loss = next(r for r in verdict["rows"] if r["metric"] == "log_loss")
    found = _comparison(run).delta("log_loss")
    assert found is not None and found.ci_high is not None and found.champion is not None
    assert loss["compared"] == "paired" and loss["delta"] == pytest.approx(found.ci_high)
    assert loss["bound"] == pytest.approx(found.champion * 1.5)
    assert loss["passed"] is (found.ci_high <= 0.5 * found.champion)


def test_a_model_bundle_folder_is_a_champion_too(runs: dict[str, Path], tmp_path: Path) -> None:
    champion = runs["weak"] / "model"
    result = _gate(runs["strong"], champion, tmp_path)
    assert result.code == 0, result.out + result.err
    assert _comparison(runs["strong"]).mode == "paired"


def test_a_champion_of_another_task_falls_back_to_its_recorded_metrics(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    (tmp_path / "diabetes").mkdir()
    other = write_spec(
        tmp_path / "diabetes",
        "task: regression\ndata: {train: {builtin: diabetes}}\n"
        "model: {estimator: sklearn.linear_model.Ridge}\n",
    )
    regression = run_until(other, tmp_path / "regression", "evaluate")
    result = _gate(runs["strong"], regression, tmp_path)
    assert result.code == 0, result.out + result.err
    compared = _comparison(runs["strong"])
    assert compared.mode == "recorded"
    assert "regression model" in compared.note and "recorded metrics" in compared.note
    assert not (runs["strong"] / "champion-predictions.npz").exists()
    report = (runs["strong"] / "report.md").read_text()
    assert "Not on the same rows" in report and "champion (recorded)" in report


@pytest.fixture(scope="module")
def registry() -> Registry:
    return shared_registry()


@pytest.fixture
def released(registry: Registry, runs: dict[str, Path]) -> Iterator[dict[str, Any]]:
    """The weak model as a released image: its bundle in /model/ of the last layer, as
    `mlops build` lays it out, pushed through the distribution API."""
    repository = f"test/champion-{uuid.uuid4().hex[:10]}"
    model_dir = runs["weak"] / "model"
    layers = [
        {"app/gitops_mlops/__init__.py": b""},
        {
            "model/model.skops": (model_dir / "model.skops").read_bytes(),
            "model/manifest.json": (model_dir / "manifest.json").read_bytes(),
        },
    ]
    image = push_image(registry, repository, "v1", layers)
    manifest = json.loads((model_dir / "manifest.json").read_text())
    metrics = json.loads((runs["weak"] / "metrics.json").read_text())
    record = ReleaseRecord.from_mapping(
        {
            "apiVersion": "mlops/v1",
            "kind": "ModelRelease",
            "model": "iris-classifier",
            "environment": "production",
            "version": manifest["model_version"],
            "image": f"{SHARED}/{repository}@{image.digest}",
            "model_digest": manifest["model_digest"],
            "metrics": metrics["metrics"],
            "slices": metrics["slices"],
        },
        "test",
    )
    yield {"record": record, "image": image, "repository": repository}
    registry.delete(repository, image.digest)


def _write_record(path: Path, record: ReleaseRecord) -> Path:
    path.write_text(record.to_yaml())
    return path


def test_a_released_champion_is_fetched_by_digest_checked_and_cached(
    runs: dict[str, Path], released: dict[str, Any], registry: Registry, tmp_path: Path
) -> None:
    record_file = _write_record(tmp_path / "release.yaml", released["record"])
    env = _env(tmp_path)
    first = run_cli("gate", str(runs["strong"]), "--champion", str(record_file), env=env)
    assert first.code == 0, first.out + first.err
    compared = _comparison(runs["strong"])
    assert compared.mode == "paired" and not compared.cached
    assert compared.source == released["record"].image
    digest = released["record"].model_digest.removeprefix("sha256:")
    cached = tmp_path / "champions" / digest / "model.skops"
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == digest
    second = run_cli("gate", str(runs["strong"]), "--champion", str(record_file), env=env)
    assert second.code == 0 and "its model cached" in second.out
    assert _comparison(runs["strong"]).cached
    # A damaged cache entry is not trusted: the model is fetched again.
    cached.write_bytes(b"not the model")
    third = run_cli("gate", str(runs["strong"]), "--champion", str(record_file), env=env)
    assert third.code == 0 and not _comparison(runs["strong"]).cached
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == digest
    # Nor is one read through a symbolic link, even to the right bytes.
    elsewhere = tmp_path / "elsewhere.skops"
    elsewhere.write_bytes(cached.read_bytes())
    cached.unlink()
    cached.symlink_to(elsewhere)
    fourth = run_cli("gate", str(runs["strong"]), "--champion", str(record_file), env=env)
    assert fourth.code == 0 and not _comparison(runs["strong"]).cached
    assert not cached.is_symlink() and hashlib.sha256(cached.read_bytes()).hexdigest() == digest


def test_a_champion_that_fails_its_digest_check_is_an_error(
    runs: dict[str, Path], released: dict[str, Any], tmp_path: Path
) -> None:
    """The record names another model file than the image holds: never a silent fallback."""
    from dataclasses import replace

    forged = replace(released["record"], model_digest="sha256:" + "0" * 64)
    record_file = _write_record(tmp_path / "release.yaml", forged)
    verdict = runs["strong"] / "verdict.json"
    verdict.unlink(missing_ok=True)
    result = _gate(runs["strong"], record_file, tmp_path)
    assert result.code == 1, result.out + result.err
    assert "refusing the champion's model" in result.err and "0" * 64 in result.err
    assert not verdict.exists()
    assert not (tmp_path / "champions" / ("0" * 64)).exists()


def test_a_registry_that_does_not_answer_falls_back_and_says_so(
    runs: dict[str, Path], released: dict[str, Any], tmp_path: Path
) -> None:
    from dataclasses import replace

    image = released["record"].image.replace(SHARED, f"127.0.0.1:{free_port()}")
    record_file = _write_record(tmp_path / "release.yaml", replace(released["record"], image=image))
    result = _gate(runs["strong"], record_file, tmp_path)
    assert result.code == 0, result.out + result.err
    assert (
        "warning: champion production" in result.out and "cannot reach the registry" in result.out
    )
    compared = _comparison(runs["strong"])
    assert compared.mode == "recorded" and "cannot fetch the champion's model" in compared.note
    row = compared.delta("accuracy")
    assert row is not None and row.champion == released["record"].metrics["accuracy"].value
    report = (runs["strong"] / "report.md").read_text()
    assert "Not on the same rows" in report and "cannot reach the registry" in report


def test_run_dir_predictions_survive_a_round_trip(runs: dict[str, Path]) -> None:
    found = RunDir(runs["strong"]).read_predictions()
    assert found.task == "classification" and found.predictions.n == 45
    assert found.rows_digest.startswith("sha256:") and set(found.slices) == {"long-petals"}
    assert found.predictions.proba is not None and found.predictions.proba.shape == (45, 3)

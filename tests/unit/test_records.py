"""Every record round-trips through its one reader and writer, reads older files, and
refuses damaged ones with an error that names the file and the field."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from gitops_mlops.errors import MlopsError
from gitops_mlops.records.build import BuildRecord, Package, SmokeTest
from gitops_mlops.records.comparison import Comparison
from gitops_mlops.records.curves import Confusion, Curve, Curves, Histogram
from gitops_mlops.records.metrics import Estimate, IntervalSettings, Metrics
from gitops_mlops.records.model_summary import ModelSummary
from gitops_mlops.records.promotion import PromotionRecord, PullRequestRef, WouldOpen
from gitops_mlops.records.release import GateSummary, Hold, ReleaseRecord, Source
from gitops_mlops.records.run import RunInfo
from gitops_mlops.records.verdict import ChampionRef, GateRow, Verdict
from gitops_mlops.rundir import RunDir

TABLE = {"accuracy": Estimate(0.93, 0.9, 0.96, "wilson"), "latency_p95_ms": Estimate(3.5)}
METRICS = Metrics(
    metrics=TABLE,
    slices={
        "long-petals": {
            "accuracy": Estimate(0.8, 0.7, 0.9, "wilson"),
            "roc_auc": Estimate(None, reason="the rows hold one class (1); it needs both"),
        }
    },
    slice_rows={"long-petals": 23},
    n_test=45,
    confidence=IntervalSettings(0.95, 1000, 7),
    custom={"cv_score": 0.91},
    positive_label="yes",
    curves=Curves(
        confusion=Confusion(("no", "yes"), ((20, 3), (2, 20))),
        roc=Curve((0.0, 0.1, 1.0), (0.0, 0.8, 1.0), 0.9),
        precision_recall=Curve((0.0, 0.9, 1.0), (1.0, 0.9, 0.5), 0.88),
        calibration=Curve((0.15, 0.85), (0.1, 0.9), 0.0),
        residuals=Histogram((-1.0, 0.0, 1.0), (10, 12)),
    ),
)
VERDICT = Verdict(
    passed=False,
    rows=(
        GateRow(0, "accuracy", None, "min", "estimate", 0.93, 0.9, None, True, "ok"),
        GateRow(1, "accuracy", "long", "max_regression", "bound", 0.7, 0.8, 0.81, False, "x"),
    ),
    champion=ChampionRef("production", "0123456789ab"),
)
BUILD = BuildRecord(
    image="localhost:5000/acme/iris",
    tag="0123456789ab",
    reference="localhost:5000/acme/iris:0123456789ab",
    image_id="sha256:" + "a" * 64,
    size_bytes=400 << 20,
    layers=9,
    base_image="python:3.11-slim",
    python="3.11",
    requirements=("numpy==2.0.0", "scikit-learn==1.5.0"),
    packages_image="gitops-mlops-packages:0123",
    build_seconds=12.5,
    smoke_test=SmokeTest(False, 5, 1.25, "no Docker engine"),
    digest="sha256:" + "b" * 64,
    pushed=True,
    reused=True,
    base_digest="sha256:" + "e" * 64,
    packages=(Package("numpy", "2.0.0", "numpy-2.0.0-cp311.whl", "f" * 64),),
    attestations={"signed": True, "key": "ed25519:abc", "sbom": {"reference": "r@sha256:1"}},
    runtime={"requested": "auto", "runtime": "sklearn", "reason": "ONNX not used: …"},
)
PROMOTION = PromotionRecord(
    environment="staging",
    branch="mlops/promote/staging/iris",
    changed=True,
    commit="c" * 40,
    files_changed=("apps/iris/staging/kustomization.yaml",),
    pushed=True,
    repository="acme/gitops",
    image="localhost:5000/acme/iris@sha256:" + "b" * 64,
    version="0123456789ab",
    forced=True,
    pull_request=PullRequestRef(3, "https://github.com/acme/gitops/pull/3", True),
    superseded=(1, 2),
    api_calls=4,
    would_open=WouldOpen("Promote", "body"),
    diff="diff --git",
    verified={"image": "r@sha256:2", "model_version": "0123456789ab", "key": "ed25519:abc"},
)
RELEASE = ReleaseRecord(
    model="iris",
    environment="staging",
    version="0123456789ab",
    image="localhost:5000/acme/iris@sha256:" + "b" * 64,
    model_digest="sha256:" + "1" * 64,
    data_digest="sha256:" + "2" * 64,
    spec_digest="sha256:" + "3" * 64,
    metrics=TABLE,
    slices={"long-petals": {"accuracy": Estimate(0.8, 0.7, 0.9)}},
    gate=GateSummary(False, 4, 1, True, "hotfix"),
    source=Source("acme/models", "d" * 40, "https://github.com/acme/models/actions/runs/1"),
    rollback_of="fedcba987654",
    reason="incident 42",
    hold=Hold("rolled back from fedcba987654: incident 42", "fedcba987654"),
    extra={"freeze": {"by": "@alice", "until": "2026-01-05"}},
)
RUN_INFO = RunInfo(Path("/repo/mlops.yaml"), "sha256:" + "4" * 64)
JSON_RECORDS: list[Any] = [METRICS, VERDICT, BUILD, PROMOTION, RUN_INFO]


def _non_default(record: Any) -> None:
    """Every field of the example differs from its default: a new field must be added to the
    example, and so to the round-trip tests."""
    for field in dataclasses.fields(record):
        value = getattr(record, field.name)
        if field.default is not dataclasses.MISSING:
            assert value != field.default, f"{type(record).__name__}.{field.name}"
        if field.default_factory is not dataclasses.MISSING:
            assert value != field.default_factory(), f"{type(record).__name__}.{field.name}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            _non_default(value)


@pytest.mark.parametrize("record", [*JSON_RECORDS, RELEASE], ids=lambda r: type(r).__name__)
def test_the_examples_set_every_field(record: Any) -> None:
    _non_default(record)


@pytest.mark.parametrize("record", JSON_RECORDS, ids=lambda r: type(r).__name__)
def test_json_records_round_trip(record: Any) -> None:
    text = json.dumps(record.to_json(), allow_nan=False)
    assert type(record).from_json(json.loads(text), "x.json") == record


def test_the_release_record_round_trips_and_keeps_unknown_keys() -> None:
    text = RELEASE.to_yaml()
    assert text.startswith("# Written by gitops-mlops")
    read = ReleaseRecord.from_yaml(text, "model-release.yaml")
    assert read == RELEASE
    assert read.to_yaml() == text  # byte for byte: a rerun changes nothing
    # A newer version's field survives a read-modify-write by this one.
    changed = dataclasses.replace(read, version="feedfacecafe").to_yaml()
    assert "freeze:\n  by: '@alice'\n  until: '2026-01-05'\n" in changed


def test_an_older_or_hand_written_release_record_reads() -> None:
    record = ReleaseRecord.from_yaml(
        "kind: ModelRelease\nversion: 123456789012\nmetrics: {accuracy: 0.9}\n", "old.yaml"
    )
    assert record.version == "123456789012"
    assert record.metrics == {"accuracy": Estimate(0.9)}
    assert record.gate == GateSummary() and record.source == Source() and record.extra == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind: Deployment\n", "not a release record (expected `kind: ModelRelease`)"),
        ("- kind: ModelRelease\n", "release record must be a mapping, found a list"),
        ("kind: ModelRelease\nmetrics: [1]\n", "field 'metrics' must be a mapping of names"),
        (
            "kind: ModelRelease\nmetrics: {accuracy: {value: high}}\n",
            "field 'metrics.accuracy.value' must be a number, found a string",
        ),
        ("kind: ModelRelease\ngate: {checks: many}\n", "field 'gate.checks' must be an integer"),
        ("kind: ModelRelease\nimage: [a]\n", "field 'image' must be a string, found a list"),
        ("kind: [", "YAML syntax error"),
    ],
)
def test_a_damaged_release_record_is_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(MlopsError) as caught:
        ReleaseRecord.from_yaml(text, "apps/model-release.yaml")
    assert str(caught.value).startswith("apps/model-release.yaml:")
    assert message in str(caught.value)


def test_files_of_older_versions_read_with_defaults() -> None:
    assert Metrics.from_json({"metrics": {"accuracy": {"value": 0.9}}}, "m") == Metrics(
        {"accuracy": Estimate(0.9)}
    )
    assert Verdict.from_json({"passed": True}, "v") == Verdict(True, ())
    assert RunInfo.from_json({"spec": "/a/mlops.yaml"}, "r") == RunInfo(Path("/a/mlops.yaml"))
    build = BuildRecord.from_json({"image": "r", "tag": "t"}, "b")
    assert build.pinned is None and build.smoke_test is None


@pytest.mark.parametrize(
    ("record", "raw", "message"),
    [
        (Metrics, [], "metrics.json must be a mapping, found a list"),
        (Metrics, {"n_test": "45"}, "field 'n_test' must be an integer, found a string"),
        (Metrics, {"slice_rows": {"a": 1.5}}, "field 'slice_rows.a' must be an integer"),
        (Metrics, {"positive_label": [1]}, "field 'positive_label' must be a class label"),
        (
            Metrics,
            {"metrics": {"f1": {"value": 0.5, "method": 3}}},
            "field 'metrics.f1.method' must be a string",
        ),
        (Verdict, {"rows": {}}, "field 'rows' must be a list, found a mapping"),
        (Verdict, {"rows": [{"kind": "between"}]}, "field 'rows[0].kind' must be one of"),
        (Verdict, {"passed": "yes"}, "field 'passed' must be true or false"),
        (BuildRecord, {"requirements": [1]}, "field 'requirements' must be a list of strings"),
        (PromotionRecord, {"pull_request": 3}, "field 'pull_request' must be a mapping"),
        (RunInfo, {}, "field 'spec' must be the path of the spec file"),
    ],
)
def test_damaged_json_records_are_clear_errors(record: Any, raw: Any, message: str) -> None:
    with pytest.raises(MlopsError) as caught:
        record.from_json(raw, "/run/x.json")
    assert str(caught.value).startswith("/run/x.json: ") and message in str(caught.value)


def _field(what: str, rest: str) -> str:
    return f"{what} field {rest}; the file is damaged: write it again (rerun the stage)"


# Whole messages of the shapes the readers share (records/fields.py), word for word.
@pytest.mark.parametrize(
    ("record", "raw", "message"),
    [
        (
            Comparison,
            {"mode": "both"},
            _field(
                "comparison.json",
                "'mode' must be one of paired, unpaired, recorded, none, found a string",
            ),
        ),
        (
            Comparison,
            {},
            _field(
                "comparison.json",
                "'mode' must be one of paired, unpaired, recorded, none, found null",
            ),
        ),
        (
            Comparison,
            {"mode": "none", "rows": {"0": {}}},
            _field("comparison.json", "'rows' must be a list, found a mapping"),
        ),
        (
            Comparison,
            {"mode": "paired", "rows": [{"metric": "f1"}, {"verdict": "great"}]},
            _field(
                "comparison.json",
                "'rows[1].verdict' must be one of better, worse, no detectable difference, "
                "not comparable, found a string",
            ),
        ),
        (
            Comparison,
            {"mode": "none", "timings": {"fetch": "1s"}},
            _field("comparison.json", "'timings.fetch' must be a number, found a string"),
        ),
        (
            Comparison,
            {"mode": "none", "timings": [1]},
            _field("comparison.json", "'timings' must be a mapping of names, found a list"),
        ),
        (
            Metrics,
            {"slice_rows": {"a": True}},
            _field("metrics.json", "'slice_rows.a' must be an integer, found a boolean"),
        ),
        (
            Metrics,
            {"custom": {"cv": None}},
            _field("metrics.json", "'custom.cv' must be a number, found null"),
        ),
        (
            Verdict,
            {"rows": [{"kind": "min"}, 3]},
            "verdict.json at rows[1] must be a mapping, found a number",
        ),
        (
            BuildRecord,
            {"packages": "numpy"},
            _field("build.json", "'packages' must be a list, found a string"),
        ),
        (
            BuildRecord,
            {"packages": [{"name": 1}]},
            _field("build.json", "'packages[0].name' must be a string, found a number"),
        ),
        (
            ModelSummary,
            {"model_version": "abc", "features": 1},
            _field("model/manifest.json", "'features' must be a list, found a number"),
        ),
        (
            ModelSummary,
            {"model_version": "abc", "features": [{"name": "a"}, {"name": "b", "dtype": 2}]},
            _field("model/manifest.json", "'features[1].dtype' must be a string, found a number"),
        ),
    ],
)
def test_damaged_records_say_the_same_whole_message(record: Any, raw: Any, message: str) -> None:
    with pytest.raises(MlopsError) as caught:
        record.from_json(raw, "/run/x.json")
    assert str(caught.value) == f"/run/x.json: {message}"


def test_the_run_directory_reads_what_it_wrote(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    assert run.find_verdict() is None and run.find_build() is None
    assert run.find_promotion() is None and run.read_report() == ""
    run.write_metrics(METRICS)
    run.write_verdict(VERDICT)
    run.write_build(BUILD)
    run.write_promotion(PROMOTION)
    run.write_run_info(RUN_INFO)
    run.write_report("# report\n")
    assert run.read_metrics() == METRICS and run.read_verdict() == VERDICT
    assert run.find_build() == BUILD and run.find_promotion() == PROMOTION
    assert run.read_run_info() == RUN_INFO and run.spec_path() == RUN_INFO.spec
    assert run.read_report() == "# report\n"
    assert sorted(p.name for p in run.root.iterdir()) == [
        "build.json",
        "metrics.json",
        "promotion.json",
        "report.md",
        "run.json",
        "verdict.json",
    ]


def test_missing_and_broken_files_say_what_to_do(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    with pytest.raises(MlopsError, match=r"no metrics.json; run the earlier stages first"):
        run.read_metrics()
    run.verdict.write_text("{")
    with pytest.raises(MlopsError, match=r"verdict.json is not valid JSON"):
        run.read_verdict()

"""Image labels: fixed for a model version, and how a registry image is recognised."""

from __future__ import annotations

from gitops_mlops import labels

MANIFEST = {
    "model_version": "52bed019473f",
    "model_digest": "sha256:" + "5" * 64,
    "spec_digest": "sha256:" + "a" * 64,
    "data_digest": "sha256:" + "d" * 64,
    "git_commit": "c" * 40,
}
PINS = ["scikit-learn==1.5.2", "numpy==2.1.0", "Uvicorn==0.30.0"]


def _labels(pins: list[str], created: str | None = None) -> dict[str, str]:
    return labels.image_labels(
        "iris", "Iris.", MANIFEST, pins, "base:1", "sha256:" + "b" * 64, "https://x/y", created
    )


def test_source_date_epoch_wins_over_the_commit_time() -> None:
    assert labels.source_date({"SOURCE_DATE_EPOCH": "0"}, 1600000000) == "1970-01-01T00:00:00Z"
    assert labels.source_date({}, 1600000000) == "2020-09-13T12:26:40Z"
    assert labels.source_date({"SOURCE_DATE_EPOCH": "soon"}, None) is None
    assert labels.source_date({}, None) is None


def test_labels_hold_no_measured_number_and_no_wall_clock() -> None:
    first, second = _labels(PINS), _labels(list(reversed(PINS)))
    assert first == second  # the pin order does not matter
    assert "org.opencontainers.image.created" not in first
    assert _labels(PINS, "2020-09-13T12:26:40Z")["org.opencontainers.image.created"] == (
        "2020-09-13T12:26:40Z"
    )
    assert first[labels.REQUIREMENTS] == "numpy==2.1.0 scikit-learn==1.5.2 Uvicorn==0.30.0"
    assert first["org.opencontainers.image.base.digest"] == "sha256:" + "b" * 64


def test_a_registry_image_is_this_release_only_with_the_same_model_and_pins() -> None:
    held = _labels(PINS)
    assert labels.same_release(held, MANIFEST["model_digest"], list(reversed(PINS)))
    assert not labels.same_release(held, "sha256:" + "6" * 64, PINS)
    assert not labels.same_release(held, MANIFEST["model_digest"], [*PINS[:2], "Uvicorn==0.31"])
    assert not labels.same_release({}, MANIFEST["model_digest"], PINS)
    assert not labels.same_release(held, "", PINS)

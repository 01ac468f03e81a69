"""The bundled examples are what a new user runs first: they must pass on a busy laptop."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops_mlops.spec.document import load_file
from tests.conftest import ROOT

EXAMPLES = sorted(ROOT.glob("examples/*/mlops.yaml"))
QUIET_MACHINE_ALLOWANCE_MS = 200  # a loaded 2-core machine measured 70 ms for iris's forest


@pytest.mark.parametrize("spec", EXAMPLES, ids=lambda p: p.parent.name)
def test_latency_thresholds_leave_room_for_a_busy_machine(spec: Path) -> None:
    thresholds = load_file(spec).data.get("gate", {}).get("thresholds", [])
    for threshold in thresholds:
        if str(threshold["metric"]).startswith("latency_") and "max" in threshold:
            assert threshold["max"] >= QUIET_MACHINE_ALLOWANCE_MS, threshold


def test_the_iris_example_still_shows_a_latency_gate() -> None:
    thresholds = load_file(ROOT / "examples" / "iris" / "mlops.yaml").data["gate"]["thresholds"]
    assert any(t["metric"] == "latency_p95_ms" for t in thresholds)

"""Writing small specs for pipeline tests."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import ROOT, run_cli

HEADER = """apiVersion: mlops/v1
kind: ModelPipeline
metadata: {name: test-model}
"""


def write_spec(folder: Path, body: str) -> Path:
    spec = folder / "mlops.yaml"
    spec.write_text(HEADER + body)
    return spec


def copy_example(folder: Path, name: str = "iris") -> Path:
    """An example project (and the example GitOps folder beside it); its spec's path."""
    shutil.copytree(ROOT / "examples" / name, folder / name)
    shutil.copytree(ROOT / "examples" / "gitops", folder / "gitops")
    return folder / name / "mlops.yaml"


def run_until(spec: Path, out: Path, stage: str) -> Path:
    """`mlops run SPEC --until STAGE --out OUT`, which must succeed; the run directory."""
    result = run_cli("run", str(spec), "--until", stage, "--out", str(out))
    assert result.code == 0, result.out + result.err
    return out


def alias_bomb_record(environment: str) -> str:
    """A release record whose `notes` expand to 10 million values (ten levels of aliases)."""
    levels = ["  l0: &l0 [" + ", ".join(["x"] * 10) + "]"]
    levels += [f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 7)]
    return (
        "apiVersion: mlops/v1\nkind: ModelRelease\n"
        f"environment: {environment}\nversion: 0123456789ab\n"
        f"image: localhost:5000/acme/iris@sha256:{'c' * 64}\n"
        "metrics: {accuracy: {value: 0.5}}\nnotes:\n" + "\n".join(levels) + "\n"
    )


LATENCY_GATE = "    - {metric: latency_p95_ms, max: 250}"


def without_latency_gate(spec: str) -> str:
    """The iris example's spec text without its latency threshold (for flows that do not
    measure latency, or where a busy machine must not decide the outcome)."""
    lines = spec.splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith(LATENCY_GATE)]
    assert len(kept) == len(lines) - 1, "the example's latency threshold changed"
    return "".join(kept)

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

"""Writing small specs for pipeline tests."""

from __future__ import annotations

from pathlib import Path

HEADER = """apiVersion: mlops/v1
kind: ModelPipeline
metadata: {name: test-model}
"""


def write_spec(folder: Path, body: str) -> Path:
    spec = folder / "mlops.yaml"
    spec.write_text(HEADER + body)
    return spec

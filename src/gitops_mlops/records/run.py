"""run.json: which spec a run directory was made from (written by train)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops_mlops.records.fields import Fields

WHAT = "run.json"


@dataclass(frozen=True)
class RunInfo:
    spec: Path  # absolute path of the spec file
    spec_digest: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"spec": str(self.spec), "spec_digest": self.spec_digest}

    @classmethod
    def from_json(cls, raw: object, source: str) -> RunInfo:
        fields = Fields(raw, source, WHAT)
        spec = fields.text("spec")
        if not spec:
            raise fields.bad("spec", "the path of the spec file")
        return cls(Path(spec), fields.text("spec_digest"))

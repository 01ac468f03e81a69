"""What a model bundle's manifest.json says about the model, read for listing and for the
model card: name, version, task, data. Training writes the manifest (`bundle.write_manifest`);
this reader never hashes the bundle's files, so it is no check that the model is intact
(`RunDir.manifest` is, and whatever loads a model uses that).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gitops_mlops.records.fields import Fields

WHAT = "model/manifest.json"


@dataclass(frozen=True)
class Feature:
    name: str
    dtype: str


@dataclass(frozen=True)
class ModelSummary:
    name: str
    version: str
    task: str
    estimator: str | None = None
    target: str | None = None
    features: tuple[Feature, ...] = ()
    classes: tuple[Any, ...] | None = None
    data_digest: str | None = None
    model_digest: str | None = None
    git_commit: str | None = None
    n_train: int | None = None
    n_test: int | None = None

    @classmethod
    def from_json(cls, raw: object, source: str) -> ModelSummary:
        fields = Fields(raw, source, WHAT)
        version = fields.text("model_version")
        if not version:
            raise fields.bad("model_version", "the model version")
        classes = fields.raw.get("classes")
        if classes is not None and not isinstance(classes, list):
            raise fields.bad("classes", "a list of class labels")
        return cls(
            name=fields.text("name"),
            version=version,
            task=fields.text("task"),
            estimator=fields.opt_text("estimator"),
            target=fields.opt_text("target"),
            features=tuple(
                Feature(f.text("name"), f.text("dtype")) for f in fields.objects("features")
            ),
            classes=None if classes is None else tuple(classes),
            data_digest=fields.opt_text("data_digest"),
            model_digest=fields.opt_text("model_digest"),
            git_commit=fields.opt_text("git_commit"),
            n_train=fields.opt_integer("n_train"),
            n_test=fields.opt_integer("n_test"),
        )

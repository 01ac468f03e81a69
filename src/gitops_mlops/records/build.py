"""build.json: the serving image that was built (or reused), smoke-tested and pushed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gitops_mlops.records.fields import Fields

WHAT = "build.json"


@dataclass(frozen=True)
class SmokeTest:
    passed: bool | None  # None: not run (see `skipped`)
    rows: int = 0
    seconds: float = 0.0
    skipped: str | None = None  # why it was not run

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"passed": self.passed, "rows": self.rows, "seconds": self.seconds}
        if self.skipped is not None:
            out["skipped"] = self.skipped
        return out

    @classmethod
    def from_json(cls, fields: Fields) -> SmokeTest:
        return cls(
            fields.opt_flag("passed"),
            fields.integer("rows"),
            fields.number("seconds"),
            fields.opt_text("skipped"),
        )


@dataclass(frozen=True)
class Package:
    """One package of the image's venv, and the wheel it was installed from (None: it came
    with the base image)."""

    name: str
    version: str
    wheel: str | None = None
    sha256: str | None = None

    def to_json(self) -> dict[str, str | None]:
        return {
            "name": self.name,
            "version": self.version,
            "wheel": self.wheel,
            "sha256": self.sha256,
        }

    @classmethod
    def from_json(cls, fields: Fields) -> Package:
        return cls(
            fields.text("name"),
            fields.text("version"),
            fields.opt_text("wheel"),
            fields.opt_text("sha256"),
        )


@dataclass(frozen=True)
class BuildRecord:
    image: str  # the repository, container.image
    tag: str  # the model version
    reference: str  # image:tag
    size_bytes: int = 0
    layers: int = 0
    base_image: str = ""
    requirements: tuple[str, ...] = ()
    build_seconds: float = 0.0
    smoke_test: SmokeTest | None = None
    digest: str | None = None  # set once pushed (or found in the registry)
    pushed: bool = False
    reused: bool = False  # the registry already held this model with these packages
    # What was attached to the pushed digest (attestations.chain's JSON), or why not.
    attestations: Mapping[str, Any] | None = None
    # The serving runtime it runs and why, with the ONNX comparison (image_runtime's JSON).
    runtime: Mapping[str, Any] | None = None
    # Only for an image built here:
    image_id: str = ""
    base_digest: str | None = None
    python: str = ""
    packages: tuple[Package, ...] = ()
    packages_image: str = ""

    @property
    def pinned(self) -> str | None:
        """REPOSITORY@sha256:… once pushed, else None."""
        return f"{self.image}@{self.digest}" if self.digest else None

    def to_json(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "tag": self.tag,
            "reference": self.reference,
            "reused": self.reused,
            "image_id": self.image_id,
            "size_bytes": self.size_bytes,
            "layers": self.layers,
            "base_image": self.base_image,
            "base_digest": self.base_digest,
            "python": self.python,
            "runtime": None if self.runtime is None else dict(self.runtime),
            "requirements": list(self.requirements),
            "packages": [package.to_json() for package in self.packages],
            "packages_image": self.packages_image,
            "build_seconds": self.build_seconds,
            "smoke_test": None if self.smoke_test is None else self.smoke_test.to_json(),
            "digest": self.digest,
            "pushed": self.pushed,
            "attestations": None if self.attestations is None else dict(self.attestations),
        }

    @classmethod
    def from_json(cls, raw: object, source: str) -> BuildRecord:
        fields = Fields(raw, source, WHAT)
        smoke = fields.obj("smoke_test")
        attestations = fields.obj("attestations")
        runtime = fields.obj("runtime")
        return cls(
            image=fields.text("image"),
            tag=fields.text("tag"),
            reference=fields.text("reference"),
            size_bytes=fields.integer("size_bytes"),
            layers=fields.integer("layers"),
            base_image=fields.text("base_image"),
            requirements=fields.texts("requirements"),
            build_seconds=fields.number("build_seconds"),
            smoke_test=None if smoke is None else SmokeTest.from_json(smoke),
            digest=fields.opt_text("digest"),
            pushed=fields.flag("pushed"),
            reused=fields.flag("reused"),
            image_id=fields.text("image_id"),
            base_digest=fields.opt_text("base_digest"),
            python=fields.text("python"),
            packages=tuple(Package.from_json(p) for p in fields.objects("packages")),
            packages_image=fields.text("packages_image"),
            attestations=None if attestations is None else attestations.raw,
            runtime=None if runtime is None else runtime.raw,
        )

"""What signed attestations cost, side by side in one run.

    python benchmarks/attestations.py [--base-image IMAGE] [--repeats 5]

Trains the iris example, builds and pushes its image once (cold or not), then measures, as
medians of `--repeats` runs:
- a warm build (same model: render, engine build from cache, smoke test), against the time
  SBOM + provenance + signing + attaching both to the registry add to a build (`attest`),
  with its parts: the CycloneDX document (made and validated), the provenance, the two
  signatures;
- a promotion to a local GitOps repository without verification, against the same
  promotion with `--public-key` (fetch both attestations, check signatures and subjects),
  and the registry requests one verification makes.
Needs a Docker engine, the registry on 127.0.0.1:5000 and the base image (.ci/base-image.sh).
Targets (issue 12): at most 1 s added to a warm build and to a promotion.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from gitops_mlops import bundle
from gitops_mlops.attestations import KINDS, chain, signing, statement
from gitops_mlops.attestations.facts import build_facts
from gitops_mlops.cli import main as mlops
from gitops_mlops.gitops_repo import GitHubSettings
from gitops_mlops.integrations import docker
from gitops_mlops.integrations.registry import Reference, Registry
from gitops_mlops.records.promotion import PromotionRecord
from gitops_mlops.rundir import RunDir
from gitops_mlops.stages.build import BuildContext, attest, build
from gitops_mlops.stages.promote import Candidate, PromoteContext, promote
from gitops_mlops.stages.validate import load

ROOT = Path(__file__).resolve().parent.parent
IMAGE = f"localhost:5000/bench/attest-{uuid.uuid4().hex[:8]}"


def median(repeats: int, work: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def project(folder: Path) -> Path:
    shutil.copytree(ROOT / "examples" / "iris", folder / "iris")
    shutil.copytree(ROOT / "examples" / "gitops", folder / "gitops")
    spec = folder / "iris" / "mlops.yaml"
    text = spec.read_text().replace("localhost:5000/acme/iris-classifier", IMAGE)
    spec.write_text(
        text.replace("{metric: latency_p95_ms, max: 50}", "{metric: latency_p95_ms, max: 1e4}")
    )
    git = ["git", "-c", "user.name=b", "-c", "user.email=b@b"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "layout"]):
        subprocess.run([*git, *args], cwd=folder / "gitops", check=True)
    return spec


def key(folder: Path) -> signing.SigningKey:
    private = ed25519.Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (folder / "signing.pub.pem").write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return signing.load_private(pem, "benchmark key")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--base-image",
        default=os.environ.get("MLOPS_BASE_IMAGE", "127.0.0.1:5000/mlops/python:3.11-bookworm"),
    )
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    client, why = docker.connect(os.environ)
    if client is None:
        print(why)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        spec_path = project(folder)
        assert mlops(["run", str(spec_path), "--until", "gate", "--out", str(folder / "run")]) == 0
        run = RunDir(folder / "run")
        spec = load(spec_path)
        signer = key(folder)

        def context(push: bool) -> BuildContext:
            return BuildContext(spec, run, args.base_image, push, os.environ, signing_key=signer)

        # A new repository: built and pushed (cold or not); the engine's cache is warm after.
        built = build(context(push=True)).record
        assert built is not None
        warm = median(args.repeats, lambda: build(context(push=False)))
        manifest = bundle.read_manifest(run.model_dir)
        data = built  # every timed `attest` makes and attaches both kinds again
        added = median(args.repeats, lambda: attest(context(True), manifest, data, "now"))
        facts = build_facts(
            model_name=spec.metadata.name,
            spec_path="mlops.yaml",
            manifest=manifest,
            metrics=run.read_metrics().to_json(),
            verdict=run.read_verdict().to_json(),
            build=data.to_json(),
            env=os.environ,
            started="2026-01-01T00:00:00Z",
            finished="2026-01-01T00:01:00Z",
        )
        libraries = "import cyclonedx.model.bom, cyclonedx.output.json, cyclonedx.validation.json"
        libraries += ", securesystemslib.dsse, securesystemslib.signer"
        bare = median(args.repeats, lambda: subprocess.run([sys.executable, "-c", "pass"]))
        imports = median(
            args.repeats, lambda: subprocess.run([sys.executable, "-c", libraries], check=True)
        )
        sbom = median(args.repeats, lambda: KINDS["sbom"].make(facts))
        provenance = median(args.repeats, lambda: KINDS["provenance"].make(facts))
        made = statement(KINDS["provenance"], facts, KINDS["provenance"].make(facts))
        signatures = median(args.repeats, lambda: [signer.sign(made) for _ in KINDS])

        image = f"{built.image}@{built.digest}"
        candidate = Candidate.from_run(run, image)
        settings = GitHubSettings.from_env({})

        def promoting(public_key: Path | None) -> PromotionRecord:
            ctx = PromoteContext(
                spec, candidate, "staging", False, None, settings, public_key=public_key
            )
            return promote(ctx)

        promoting(None)  # the branch exists from here on: every timed run does the same work
        plain = median(args.repeats, lambda: promoting(None))
        verified = median(args.repeats, lambda: promoting(folder / "signing.pub.pem"))
        registry = Registry(Reference.parse(IMAGE).registry, os.environ)
        checked = chain.verify(registry, Reference.parse(image), signer.public)
        verify = median(
            args.repeats, lambda: chain.verify(registry, Reference.parse(image), signer.public)
        )
    print(f"warm build (same model)                 {warm:7.2f} s")
    print(f"  + SBOM, provenance, 2 signatures, attach {added:7.2f} s  ({added / warm:.0%} of it)")
    print(f"      their libraries' imports, once    {(imports - bare) * 1000:7.0f} ms")
    print(f"      CycloneDX document, validated     {sbom * 1000:7.0f} ms")
    print(f"      SLSA provenance                   {provenance * 1000:7.0f} ms")
    print(f"      two DSSE signatures (Ed25519)     {signatures * 1000:7.1f} ms")
    print(f"promotion (local GitOps repository)     {plain:7.2f} s")
    print(f"promotion with --public-key             {verified:7.2f} s  (+{verified - plain:.2f} s)")
    print(f"      of which the verification         {verify * 1000:7.0f} ms")
    print(f"registry requests per verification      {checked.requests:7d}")
    met = added + imports - bare <= 1 and verified - plain <= 1
    print(
        f"targets (<= 1 s added to a warm build and to a promotion): {'met' if met else 'NOT met'}"
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())

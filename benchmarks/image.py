"""Serving image size and build times, side by side in one run.

    python benchmarks/image.py [--base-image IMAGE]

Trains the iris example twice (two different forests), then measures: a cold build (no
cache), a warm build of the same context, and the rebuild after the retrain, and pushes
both images to count the layers each push uploads. Needs a Docker engine, the local
registry on 127.0.0.1:5000 and the base image (.ci/base-image.sh).
Targets (issue 4): image <= 450 MB; rebuild after a retrain <= 3 s, pushing only the model
layer.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from gitops_mlops import bundle, image_runtime
from gitops_mlops.cli import main as mlops
from gitops_mlops.integrations import docker
from gitops_mlops.rundir import RunDir
from gitops_mlops.stages.build import BuildContext, packages_image, render
from gitops_mlops.stages.validate import load

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "localhost:5000/bench/iris-classifier"


def train(folder: Path, n_estimators: int) -> RunDir:
    shutil.copytree(ROOT / "examples" / "iris", folder / "iris")
    shutil.copytree(ROOT / "examples" / "gitops", folder / "gitops")
    spec = folder / "iris" / "mlops.yaml"
    text = spec.read_text().replace("localhost:5000/acme/iris-classifier", IMAGE)
    spec.write_text(text.replace("n_estimators: 100", f"n_estimators: {n_estimators}"))
    code = mlops(["run", str(spec), "--until", "gate", "--out", str(folder / "run")])
    assert code == 0
    return RunDir(folder / "run")


def timed_build(client: Any, run: RunDir, base: str, nocache: bool) -> tuple[float, Any, str]:
    ctx = BuildContext(load(run.spec_path()), run, base, push=False, env=os.environ)
    python, machine = docker.python_of(client, base)
    started = time.perf_counter()
    manifest = bundle.read_manifest(run.model_dir)
    choice = image_runtime.choose(ctx.spec, run, manifest)
    contexts = render(ctx, manifest, python, machine, choice)
    packages = packages_image(client, contexts, base, nocache=nocache)
    tag = f"{IMAGE}:{run.root.parent.name}"
    args = {"BASE_IMAGE": base, "PACKAGES_IMAGE": packages}
    built = docker.build(client, contexts.image, tag, args, nocache=nocache)
    return time.perf_counter() - started, built, tag


def pushed_layers(client: Any, tag: str) -> tuple[int, int]:
    repository, _, version = tag.rpartition(":")
    uploaded, existing = set(), set()
    for event in client.images.push(repository, tag=version, stream=True, decode=True):
        if event.get("status") == "Pushed":
            uploaded.add(event["id"])
        elif event.get("status") == "Layer already exists":
            existing.add(event["id"])
    return len(uploaded), len(existing)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--base-image",
        default=os.environ.get("MLOPS_BASE_IMAGE", "127.0.0.1:5000/mlops/python:3.11-bookworm"),
    )
    args = parser.parse_args()
    client, why = docker.connect(os.environ)
    if client is None:
        print(why)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        first = train(Path(tmp) / "a", 100)
        second = train(Path(tmp) / "b", 120)
        cold, built, tag_a = timed_build(client, first, args.base_image, nocache=True)
        warm, _, _ = timed_build(client, first, args.base_image, nocache=False)
        rebuild, _, tag_b = timed_build(client, second, args.base_image, nocache=False)
        up_a, _ = pushed_layers(client, tag_a)
        up_b, kept_b = pushed_layers(client, tag_b)
    size_mb = built.size_bytes / 2**20
    print(f"image size                         {size_mb:8.0f} MB  ({built.layers} layers)")
    print(f"cold build (no cache)              {cold:8.1f} s")
    print(f"warm build (same model)            {warm:8.1f} s   ({cold / warm:.0f}x faster)")
    print(f"rebuild after a retrain            {rebuild:8.1f} s")
    print(f"first push uploaded                {up_a:8d} layers")
    print(f"push after the retrain uploaded    {up_b:8d} layer(s), {kept_b} already there")
    met = size_mb <= 450 and rebuild <= 3 and up_b == 1
    print(f"targets (<= 450 MB, rebuild <= 3 s, one layer pushed): {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())

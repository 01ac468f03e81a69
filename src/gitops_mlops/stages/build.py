"""Stage 5: the serving image: built hermetically, smoke-tested, pushed by digest.

The build context holds the wheels of every runtime package, resolved on the host for the
image's Python and pinned to the versions the model was trained with, so the image builds
with no network (behind TLS interception and proxies too). Layers go from the least to the
most often changed: packages, server code, model; a retrain rebuilds only the model layer.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gitops_mlops import bundle, image_runtime, labels, serving
from gitops_mlops.attestations import chain
from gitops_mlops.attestations.facts import build_facts
from gitops_mlops.attestations.signing import SigningKey
from gitops_mlops.errors import BuildError
from gitops_mlops.integrations import docker, git
from gitops_mlops.integrations.registry import Reference, Registry, RegistryError
from gitops_mlops.integrations.storage import StorageSettings
from gitops_mlops.records.build import BuildRecord, Package, SmokeTest
from gitops_mlops.reporting import markdown
from gitops_mlops.rundir import RunDir, write_json
from gitops_mlops.serving.runtimes import RUNTIMES
from gitops_mlops.spec.model import Spec

HASHES = ".sha256.json"  # wheel file name -> sha256, beside the cached wheels
VENV_PYTHON = "/opt/venv/bin/python"
READY_DEADLINE = 90.0
USER = "65532:65532"  # no root in the image; a numeric id needs no /etc/passwd entry
HEALTHCHECK = (
    "import urllib.request; "
    "urllib.request.urlopen('http://127.0.0.1:{port}/v2/health/ready', timeout=2)"
)

PACKAGES_DOCKERFILE = """\
# Rendered by gitops-mlops: the runtime packages, built once per requirements and base image.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY requirements.txt /tmp/requirements.txt
COPY wheels/ /tmp/wheels/
# No index: every wheel is in the context, so the build needs no network. The packages go
# into /opt/venv with the base image's own pip (`--python`), so no pip ends up in the venv.
RUN set -e; \\
    [ -x /opt/venv/bin/python ] || python3 -m venv --without-pip /opt/venv; \\
    for py in /usr/bin/python3 /usr/local/bin/python3; do \\
      if "$py" -m pip --version >/dev/null 2>&1; then pip="$py -m pip"; break; fi; \\
    done; \\
    [ -n "${pip:-}" ] || { echo "the base image has no pip to install with" >&2; exit 1; }; \\
    $pip --python /opt/venv/bin/python install --no-index --find-links /tmp/wheels \\
      --no-cache-dir --disable-pip-version-check @INSTALL_FLAGS@ -r /tmp/requirements.txt; \\
    find /opt/venv -depth -type d -name tests -prune -exec rm -rf {} +
"""
# The serving runtime's parts that serving never loads (its registry entry lists them).
PRUNE = """\
RUN cd /opt/venv/lib/python3*/site-packages && rm -rf {paths}
"""

DOCKERFILE = """\
# Rendered by gitops-mlops. Layers from least to most often changed: packages, code, model.
# The packages come from the image built from ../packages (its tag is PACKAGES_IMAGE).
ARG BASE_IMAGE
ARG PACKAGES_IMAGE
FROM ${{PACKAGES_IMAGE}} AS packages

FROM ${{BASE_IMAGE}}
COPY --from=packages /opt/venv /opt/venv
COPY app/ /app/
# Compiled once here: the base image sets PYTHONDONTWRITEBYTECODE (and the user could not
# write /app), so uncompiled code would be compiled again at every start. Hash-based .pyc
# files: the same bytes on every build, checked against the source they come from.
RUN ["{python}", "-m", "compileall", "-q", "--invalidation-mode", "checked-hash", "/app"]
COPY model/ /model/
ENV PATH=/opt/venv/bin:$PATH PYTHONPATH=/app MLOPS_MODEL_DIR=/model MLOPS_PORT={port} \\
    MLOPS_WORKERS=auto
USER {user}
EXPOSE {port}
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \\
  CMD ["python", "-c", "{healthcheck}"]
{labels}
CMD ["python", "-m", "gitops_mlops.serving"]
"""


@dataclass(frozen=True)
class BuildContext:
    spec: Spec
    run: RunDir
    base_image: str
    push: bool
    env: Mapping[str, str]
    # Without an engine, still write the full context (wheels included) for a build elsewhere.
    context_without_engine: bool = True
    signing_key: SigningKey | None = None  # None: attestations are written unsigned


@dataclass(frozen=True)
class BuildResult:
    record: BuildRecord | None  # None: nothing was built
    reason: str  # why not, when not built

    @property
    def built(self) -> bool:
        return self.record is not None


def _cache(env: Mapping[str, str]) -> Path:
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]) / "gitops-mlops" / "wheels"
    return Path.home() / ".cache" / "gitops-mlops" / "wheels"


def _platforms(machine: str) -> list[str]:
    """`--platform` flags for a glibc 2.36 (Debian bookworm) image: every manylinux tag it
    runs, spelled out because older pips do not expand one tag to the older ones."""
    tags = [f"manylinux_2_{minor}" for minor in (36, 35, 34, 31, 28, 27, 24, 17, 12, 5)]
    tags += ["manylinux2014", "manylinux2010", "manylinux1"]
    return [flag for tag in tags for flag in ("--platform", f"{tag}_{machine}")]


def download_wheels(
    pins: list[str], python: str, machine: str, cache: Path, resolve: bool = True
) -> Path:
    """Wheels for the image's Python and platform, from the host's package index (cached).
    `resolve`: with their dependencies; else exactly these."""
    flags = [] if resolve else ["--no-deps"]
    key = hashlib.sha256("\n".join([*pins, *flags, python, machine]).encode()).hexdigest()[:16]
    folder = cache / key
    if (folder / ".complete").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--only-binary=:all:",
        *_platforms(machine),
        "--python-version",
        python,
        "--implementation",
        "cp",
        "--dest",
        str(folder),
        *flags,
        *pins,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900)
    if result.returncode != 0:
        raise BuildError(
            f"could not download wheels for Python {python} on {machine}: "
            f"{result.stderr.strip()[-800:]}"
        )
    (folder / ".complete").write_text("\n".join(pins) + "\n")
    return folder


def _labels(
    ctx: BuildContext, manifest: Mapping[str, Any], pins: list[str], base_digest: str | None
) -> str:
    server = ctx.env.get("GITHUB_SERVER_URL", "https://github.com")
    repository = ctx.env.get("GITHUB_REPOSITORY")
    commit = manifest.get("git_commit")
    created = labels.source_date(
        ctx.env, git.commit_time(ctx.spec.root, commit) if isinstance(commit, str) else None
    )
    values = labels.image_labels(
        title=ctx.spec.metadata.name,
        description=ctx.spec.metadata.description,
        manifest=manifest,
        pins=pins,
        base_image=ctx.base_image,
        base_digest=base_digest,
        source=f"{server}/{repository}" if repository else "",
        created=created,
    )
    return "\n".join(f"LABEL {key}={json.dumps(value)}" for key, value in values.items())


@dataclass(frozen=True)
class Contexts:
    packages: Path  # requirements + wheels: changes when the pinned versions do
    image: Path  # server code + model: changes with every retrain
    pins: list[str]
    wheels: Path  # the cached download the packages context links to


def render(
    ctx: BuildContext,
    manifest: Mapping[str, Any],
    python: str,
    machine: str,
    choice: image_runtime.RuntimeChoice,
    base_digest: str | None = None,
) -> Contexts:
    """Two build contexts, so a retrain sends the engine only the server code and model."""
    root = ctx.run.image_dir
    shutil.rmtree(root, ignore_errors=True)
    packages, image = root / "packages", root / "model-image"
    packages.mkdir(parents=True)
    pins = image_runtime.pins(choice, manifest)
    runtime = choice.entry
    (packages / "requirements.txt").write_text("\n".join(pins) + "\n")
    wheels = download_wheels(pins, python, machine, _cache(ctx.env), runtime.resolve)
    shutil.copytree(
        wheels,
        packages / "wheels",
        ignore=shutil.ignore_patterns(".complete", HASHES),
        copy_function=_link,
    )
    flags = "" if runtime.resolve else "--no-deps"
    dockerfile = PACKAGES_DOCKERFILE.replace("@INSTALL_FLAGS@", flags)
    if runtime.prune:
        dockerfile += PRUNE.format(paths=" ".join(runtime.prune))
    (packages / "Dockerfile").write_text(dockerfile)
    app = image / "app" / "gitops_mlops"
    shutil.copytree(
        Path(serving.__file__).parent, app / "serving", ignore=shutil.ignore_patterns("__pycache__")
    )
    (app / "__init__.py").write_text('"""gitops-mlops, serving part only."""\n')
    (image / "model").mkdir()
    for name in runtime.files:
        shutil.copy2(choice.model_dir / name, image / "model" / name)
    port = ctx.spec.container.port if ctx.spec.container else 8080
    (image / "Dockerfile").write_text(
        DOCKERFILE.format(
            port=port,
            user=USER,
            labels=_labels(ctx, manifest, pins, base_digest),
            healthcheck=HEALTHCHECK.format(port=port),
            python=VENV_PYTHON,
        )
    )
    return Contexts(packages, image, pins, wheels)


def packages_image(client: Any, contexts: Contexts, base_image: str, nocache: bool = False) -> str:
    """The local packages image for these pins and this base, built only when missing."""
    from docker.errors import ImageNotFound

    base_id = client.images.get(base_image).id
    recipe = (contexts.packages / "Dockerfile").read_text()  # flags and pruning differ by runtime
    key = hashlib.sha256("\n".join([*contexts.pins, base_id, recipe]).encode()).hexdigest()[:16]
    tag = f"gitops-mlops-packages:{key}"
    try:
        if nocache:
            raise ImageNotFound(tag)
        client.images.get(tag)
    except ImageNotFound:
        docker.build(client, contexts.packages, tag, {"BASE_IMAGE": base_image}, nocache=nocache)
    return tag


def _link(source: str, target: str) -> str:
    """Hard-link cached wheels into the context (copy across file systems)."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
    return target


def _smoke_request(ctx: BuildContext, manifest: Mapping[str, Any]) -> dict[str, Any]:
    path = ctx.spec.container.smoke_test_input if ctx.spec.container else None
    if path is not None:
        loaded: dict[str, Any] = json.loads((ctx.spec.root / path).read_text())
        return loaded
    rows = manifest.get("input_example") or []
    inputs = []
    for feature in manifest["features"]:
        from gitops_mlops.serving.model import datatype_of

        inputs.append(
            {
                "name": feature["name"],
                "shape": [len(rows)],
                "datatype": datatype_of(feature["dtype"]),
                "data": [row.get(feature["name"]) for row in rows],
            }
        )
    return {"inputs": inputs}


def smoke_test(
    client: Any,
    ctx: BuildContext,
    manifest: Mapping[str, Any],
    tag: str,
    tolerance: float = 1e-9,
) -> SmokeTest:
    """Run the image, send the smoke request, and compare with the local model's answer
    (numbers within `tolerance`, relative: the ONNX runtime's proven one)."""

    from gitops_mlops.serving import protocol
    from gitops_mlops.serving.sklearn_runtime import frame

    request = _smoke_request(ctx, manifest)
    local = bundle.served(ctx.run.model_dir, ctx.spec.model.allow_modules)
    columns, rows = protocol.columns(local, request)
    expected = local.model.predict(frame(local, columns))
    port = ctx.spec.container.port if ctx.spec.container else 8080
    started = time.monotonic()
    with docker.running(client, tag, port) as (container, host_port):
        docker.wait_ready(container, host_port, READY_DEADLINE)
        url = f"http://127.0.0.1:{host_port}/v2/models/{local.name}/infer"
        body = json.dumps(request).encode()
        call = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(call, timeout=30) as response:  # noqa: S310 - loopback
                answer = json.loads(response.read())
        except OSError as err:
            logs = container.logs(tail=40).decode(errors="replace")
            raise BuildError(f"smoke test request failed: {err}\nContainer logs:\n{logs}") from None
    got = next(o["data"] for o in answer["outputs"] if o["name"] == "predict")
    same = _same(got, expected.tolist(), tolerance)
    if not same:
        raise BuildError(
            f"smoke test: the image predicted {got[:5]}…, the local model {expected.tolist()[:5]}…"
        )
    return SmokeTest(passed=True, rows=rows, seconds=round(time.monotonic() - started, 2))


def _same(got: list[Any], expected: list[Any], tolerance: float) -> bool:
    if len(got) != len(expected):
        return False
    for a, b in zip(got, expected, strict=True):
        if isinstance(a, float) or isinstance(b, float):
            if abs(float(a) - float(b)) > tolerance * max(1.0, abs(float(b))):
                return False
        elif a != b:
            return False
    return True


def wheel_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every wheel of a cached download: computed once, kept beside the wheels."""
    path = folder / HASHES
    with contextlib.suppress(OSError, ValueError):
        known = json.loads(path.read_text())
        if isinstance(known, dict):
            return {str(k): str(v) for k, v in known.items()}
    hashes = {w.name: bundle.sha256_file(w) for w in sorted(folder.glob("*.whl"))}
    write_json(path, hashes)
    return hashes


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def inventory(installed: list[tuple[str, str]], hashes: Mapping[str, str]) -> tuple[Package, ...]:
    """Every package the image's venv holds, with the wheel it was installed from (None for
    what the base image brought, such as its own pip)."""
    wheels = {}
    for filename, digest in hashes.items():
        name, version = filename.split("-")[:2]
        wheels[(_normal(name), version)] = (filename, digest)
    packages = []
    for name, version in sorted(installed, key=lambda item: _normal(item[0])):
        wheel = wheels.get((_normal(name), version))
        packages.append(
            Package(name, version, wheel[0] if wheel else None, wheel[1] if wheel else None)
        )
    return tuple(packages)


def installed_in(client: Any, image: str, env: Mapping[str, str]) -> list[tuple[str, str]]:
    """The venv's packages in `image`, asked once per image id (the answer cannot change)."""
    image_id = str(client.images.get(image).id).split(":")[-1]
    path = _cache(env).parent / "inventory" / f"{image_id}.json"
    with contextlib.suppress(OSError, ValueError, TypeError):
        return [(str(name), str(version)) for name, version in json.loads(path.read_text())]
    found = docker.installed_packages(client, image, VENV_PYTHON)
    write_json(path, found)
    return found


def _published(ctx: BuildContext, version: str) -> tuple[Registry, Reference]:
    assert ctx.spec.container is not None
    reference = Reference.parse(f"{ctx.spec.container.image}:{version}")
    return Registry(reference.registry, ctx.env), reference


def _reusable(
    ctx: BuildContext, manifest: Mapping[str, Any], pins: list[str]
) -> dict[str, Any] | None:
    """What the registry holds as `container.image:<version>`, when its labels name this
    model file and these pins; None when it must be built."""
    registry, reference = _published(ctx, str(manifest["model_version"]))
    try:
        found = registry.manifest(reference.repository, str(reference.tag))
        if found is None or found.is_index:
            return None
        config = registry.image_config(reference.repository, found.digest) or {}
    except RegistryError as err:
        raise BuildError(f"cannot look {reference} up in the registry: {err}") from None
    held = (config.get("config") or {}).get("Labels") or {}
    if not labels.same_release(held, str(manifest.get("model_digest") or ""), pins):
        return None
    layers = found.layers()
    return {
        "digest": found.digest,
        "size_bytes": sum(layer.size for layer in layers),
        "layers": len(layers),
        "registry_requests": registry.requests,
    }


def _reuse(
    ctx: BuildContext,
    client: Any,
    manifest: Mapping[str, Any],
    pins: list[str],
    found: dict[str, Any],
    choice: image_runtime.RuntimeChoice,
) -> BuildRecord:
    """The build record of an image already in the registry; smoke-tested when we can."""
    assert ctx.spec.container is not None
    repository, version = ctx.spec.container.image, str(manifest["model_version"])
    pinned = f"{repository}@{found['digest']}"
    record = BuildRecord(
        image=repository,
        tag=version,
        reference=f"{repository}:{version}",
        reused=True,
        size_bytes=found["size_bytes"],
        layers=found["layers"],
        base_image=ctx.base_image,
        requirements=tuple(pins),
        runtime=choice.to_json(),
        build_seconds=0.0,
        digest=found["digest"],
        pushed=True,
    )
    if client is None:
        return replace(
            record, smoke_test=SmokeTest(None, skipped="no Docker engine to run the image")
        )
    docker.pull(client, pinned)
    return replace(record, smoke_test=smoke_test(client, ctx, manifest, pinned, _tolerance(choice)))


def build(ctx: BuildContext) -> BuildResult:
    if ctx.spec.container is None:
        return BuildResult(None, "the spec has no `container:` section")
    # The image's server trusts what the manifest records: check it against the spec first.
    manifest = bundle.check_model(ctx.run.model_dir, ctx.spec.model.allow_modules)
    version = str(manifest["model_version"])
    storage = StorageSettings.from_env(ctx.env)  # to read the ONNX check's test rows
    choice = image_runtime.choose(ctx.spec, ctx.run, manifest, storage=storage)
    pins = image_runtime.pins(choice, manifest)
    client, why = docker.connect(ctx.env)
    if ctx.push:
        found = _reusable(ctx, manifest, pins)
        if found is not None:
            looked_up = _now()
            reused = _reuse(ctx, client, manifest, pins, found, choice)
            reused = attest(ctx, manifest, reused, looked_up, client)
            _record(ctx.run, reused)
            return BuildResult(reused, "")
    if client is None and not ctx.context_without_engine:
        return BuildResult(None, why)
    if client is None:
        python = f"{sys.version_info[0]}.{sys.version_info[1]}"
        contexts = render(ctx, manifest, python, os.uname().machine, choice)
        return BuildResult(None, f"{why}; the build contexts are in {contexts.image.parent}")
    started, started_at = time.monotonic(), _now()
    python, machine = docker.python_of(client, ctx.base_image)
    base_digest = docker.repo_digest(client, ctx.base_image)
    contexts = render(ctx, manifest, python, machine, choice, base_digest)
    repository = ctx.spec.container.image
    tag = f"{repository}:{version}"
    packages = packages_image(client, contexts, ctx.base_image)
    built = docker.build(
        client, contexts.image, tag, {"BASE_IMAGE": ctx.base_image, "PACKAGES_IMAGE": packages}
    )
    build_seconds = round(time.monotonic() - started, 2)
    budget = ctx.spec.container.size_budget_mb * 1024 * 1024
    if built.size_bytes > budget:
        raise BuildError(
            f"the image is {built.size_bytes / 2**20:.0f} MB, over "
            f"container.size_budget_mb ({ctx.spec.container.size_budget_mb:g})"
        )
    record = BuildRecord(
        image=repository,
        tag=version,
        reference=tag,
        image_id=built.image_id,
        size_bytes=built.size_bytes,
        layers=built.layers,
        base_image=ctx.base_image,
        base_digest=base_digest,
        python=python,
        requirements=tuple(contexts.pins),
        runtime=choice.to_json(),
        packages=inventory(installed_in(client, packages, ctx.env), wheel_hashes(contexts.wheels)),
        packages_image=packages,
        build_seconds=build_seconds,
        smoke_test=smoke_test(client, ctx, manifest, tag, _tolerance(choice)),
    )
    if ctx.push:
        record = replace(record, digest=docker.push(client, repository, version), pushed=True)
        record = attest(ctx, manifest, record, started_at)
    _record(ctx.run, record)
    return BuildResult(record, "")


def _tolerance(choice: image_runtime.RuntimeChoice) -> float:
    if choice.runtime == "onnx" and choice.comparison:
        return float(choice.comparison["tolerance"])
    return 1e-9


def _record(run: RunDir, record: BuildRecord) -> None:
    """build.json, and the image's section of the report."""
    run.write_build(record)
    if run.report.is_file():
        text = markdown.with_image(run.report.read_text(encoding="utf-8"), record.to_json())
        run.report.write_text(text, encoding="utf-8")


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def attest(
    ctx: BuildContext,
    manifest: Mapping[str, Any],
    record: BuildRecord,
    started: str,
    client: Any = None,
) -> BuildRecord:
    """SBOM and provenance of the pushed image, attached to its digest (those already
    attached are kept for a reused image); the record with what it keeps of them."""
    registry, reference = _published(ctx, str(manifest["model_version"]))
    image = reference.with_digest(str(record.digest))
    try:
        if record.reused:
            kept = chain.existing(registry, image, ctx.signing_key)
            if kept is not None:
                return replace(record, attestations=kept)
            if client is not None:  # a reused image without attestations: inventory it
                packages = _image_packages(
                    client, ctx, str(image), list(record.requirements), _resolves(record)
                )
                record = replace(record, packages=packages)
        if not record.packages:
            skipped = {"skipped": "no inventory of the image's packages (no Docker engine)"}
            return replace(record, attestations=skipped)
        subject = registry.resolve(image.repository, str(image.digest))
        if subject is None:
            raise BuildError(f"{image} is not in the registry right after the push")
        verdict = ctx.run.find_verdict()
        facts = build_facts(
            model_name=ctx.spec.metadata.name,
            spec_path=_spec_path(ctx),
            manifest=manifest,
            metrics=ctx.run.read_metrics().to_json() if ctx.run.metrics.is_file() else {},
            verdict=verdict.to_json() if verdict else {},
            build=record.to_json(),
            env=ctx.env,
            started=started,
            finished=_now(),
        )
        published = chain.publish(
            registry, image, subject, facts, ctx.signing_key, ctx.run.root / "attestations"
        )
    except RegistryError as err:
        raise BuildError(f"cannot attach the attestations to {image}: {err}") from None
    return replace(record, attestations=published)


def _resolves(record: BuildRecord) -> bool:
    """Whether the image's pins were installed with their dependencies (by runtime)."""
    return RUNTIMES[str((record.runtime or {}).get("runtime", "sklearn"))].resolve


def _image_packages(
    client: Any, ctx: BuildContext, image: str, pins: list[str], resolve: bool = True
) -> tuple[Package, ...]:
    """The inventory of a pulled image, with the wheels' hashes from the wheel cache."""
    python, machine = docker.python_of(client, ctx.base_image)
    wheels = download_wheels(pins, python, machine, _cache(ctx.env), resolve)
    return inventory(installed_in(client, image, ctx.env), wheel_hashes(wheels))


def _spec_path(ctx: BuildContext) -> str:
    """The spec's path in its repository (its file name outside git)."""
    top = git.work_tree_root(ctx.spec.root)
    if top is None:
        return ctx.spec.file.name
    try:
        return ctx.spec.file.resolve().relative_to(top.resolve()).as_posix()
    except ValueError:
        return ctx.spec.file.name

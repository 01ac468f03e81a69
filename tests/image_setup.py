"""What image and registry tests need (a Docker engine, the serving base image, the registry
on 127.0.0.1:5000, the docker-registry binary for private registries) and the one way they
skip, naming what is missing, when it is not there (`needs`).

`.ci/run` sets all of it up and sets MLOPS_REQUIRE_DOCKER=1, which turns a skip into a
failure: in CI nothing may be silently left out.
"""

from __future__ import annotations

import json
import os
from typing import Any

from gitops_mlops.integrations import docker
from gitops_mlops.integrations.registry import Registry
from tests.required import skip_or_fail

BASE_IMAGE = os.environ.get("MLOPS_BASE_IMAGE", "127.0.0.1:5000/mlops/python:3.11-bookworm")
REGISTRY = "127.0.0.1:5000"


def needs(lacking: list[str]) -> None:
    """Nothing when nothing is lacking; else the test is skipped naming what is (each with
    how to get it), or failed under MLOPS_REQUIRE_DOCKER=1."""
    if lacking:
        skip_or_fail("needs " + "; ".join(lacking), "MLOPS_REQUIRE_DOCKER")


def missing(*, engine: bool = True, base_image: bool = False, registry: bool = False) -> list[str]:
    """What of the image setup is not here, each with how to get it."""
    found: list[str] = []
    if engine or base_image:
        client, no_engine = docker.connect(os.environ)
        if client is None:
            found.append(f"a Docker engine ({no_engine})")
        elif base_image and docker.obtain(client, BASE_IMAGE):
            found.append(
                f"the base image {BASE_IMAGE} (.ci/base-image.sh builds it; MLOPS_BASE_IMAGE "
                "names another)"
            )
    if registry:
        down = Registry(REGISTRY, os.environ).unreachable()
        if down is not None:
            found.append(f"a registry on {REGISTRY} (.ci/run starts one): {down}")
    return found


def require(*, base_image: bool = False, registry: bool = False) -> Any:
    """The engine's client, or the test is skipped naming what is missing (failed under
    MLOPS_REQUIRE_DOCKER=1)."""
    needs(missing(base_image=base_image, registry=registry))
    client, _ = docker.connect(os.environ)
    return client


def pip_name(name: str) -> str:
    """A package's name as pip compares them (case, `_` and `-` aside)."""
    return name.lower().replace("_", "-")


def installed_packages(engine: Any, image: str) -> set[tuple[str, str]]:
    """(name, version) of every package in the serving image's venv, as pip lists them."""
    listed = engine.containers.run(
        image,
        # The venv has no pip of its own: the base image's pip lists it (as the build used it).
        [
            "/usr/bin/python3",
            "-m",
            "pip",
            "--python",
            "/opt/venv/bin/python",
            "list",
            "--format",
            "json",
            "--disable-pip-version-check",
        ],
        remove=True,
        network_mode="none",
    )
    return {(pip_name(p["name"]), p["version"]) for p in json.loads(listed)}


def shared_registry() -> Registry:
    """A client of the registry on 127.0.0.1:5000, for tests that push and read through the
    distribution API (no engine needed), or the test is skipped saying why not (failed under
    MLOPS_REQUIRE_DOCKER=1)."""
    needs(missing(engine=False, registry=True))
    return Registry(REGISTRY, {})

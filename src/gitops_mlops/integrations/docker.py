"""The Docker engine through the Docker SDK: build, run, push.

The SDK talks to whatever engine `docker.from_env()` finds, without pinning an API version.
It uses the classic builder (no BuildKit), streams are read to the end, and every `error`
in a stream becomes a BuildError: `images.push()` itself never raises.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops_mlops.errors import BuildError


def connect(env: Mapping[str, str]) -> tuple[Any | None, str]:
    """(client, "") when an engine answers (DOCKER_HOST etc. from `env`), else (None, why)."""
    try:
        import docker
        from docker.errors import DockerException
    except ImportError:  # pragma: no cover - docker is a dependency
        return None, "the Docker SDK is not installed"
    try:
        client = docker.from_env(environment=dict(env), timeout=300)
        client.ping()
    except DockerException:
        where = env.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        return None, f"no Docker engine answers at {where}"
    return client, ""


def obtain(client: Any, image: str) -> str:
    """ "" when `image` is in the engine (pulled now when it was not), else why it is not:
    e.g. no network to its registry, or a name nobody serves."""
    from docker.errors import DockerException, ImageNotFound

    try:
        client.images.get(image)
        return ""
    except ImageNotFound:
        pass
    except DockerException as err:
        return _short(err)
    try:
        client.images.pull(image)  # the SDK reads the tag from the name (default: latest)
    except DockerException as err:
        return f"it is not in the engine, and pulling it failed: {_short(err)}"
    return ""


def _short(err: Exception) -> str:
    explanation = getattr(err, "explanation", None)
    text = str(explanation or err).strip()
    return text if len(text) <= 300 else text[:300] + "…"


@dataclass(frozen=True)
class Built:
    image_id: str
    size_bytes: int
    layers: int
    log: list[str]


def build(
    client: Any, context: Path, tag: str, buildargs: Mapping[str, str], nocache: bool = False
) -> Built:
    from docker.errors import APIError

    log: list[str] = []
    try:
        stream = client.api.build(
            path=str(context),
            tag=tag,
            buildargs=dict(buildargs),
            pull=False,
            rm=True,
            forcerm=True,
            decode=True,
            network_mode="none",
            nocache=nocache,
        )
        for event in stream:
            if "error" in event:
                detail = event.get("errorDetail", {}).get("message") or event["error"]
                tail = "\n".join(log[-15:])
                raise BuildError(f"docker build failed: {detail.strip()}\n{tail}")
            if event.get("stream"):
                log.append(event["stream"].rstrip())
    except APIError as err:
        raise BuildError(f"docker build failed: {err.explanation or err}") from None
    image = client.images.get(tag)
    return Built(image.id, int(image.attrs["Size"]), len(image.attrs["RootFS"]["Layers"]), log)


def python_of(client: Any, image: str) -> tuple[str, str]:
    """(major.minor, machine) of the Python in `image`, asked without network."""
    from docker.errors import DockerException

    script = (
        "import sys, platform; "
        "print(f'{sys.version_info[0]}.{sys.version_info[1]}', platform.machine())"
    )
    try:
        out = client.containers.run(
            image, ["python", "-c", script], remove=True, network_mode="none"
        )
    except DockerException as err:
        raise BuildError(
            f"cannot run the base image {image}: {err}; build it or pass --base-image"
        ) from None
    version, machine = out.decode().split()
    return version, machine


INVENTORY = (
    "import importlib.metadata as m, json; "
    "print(json.dumps(sorted({(d.metadata['Name'], d.version) for d in m.distributions()})))"
)


def installed_packages(client: Any, image: str, python: str) -> list[tuple[str, str]]:
    """(name, version) of every distribution `python` in `image` sees: what it installed."""
    from docker.errors import DockerException

    try:
        out = client.containers.run(
            image, [python, "-c", INVENTORY], remove=True, network_mode="none", entrypoint=[]
        )
        listed = json.loads(out)
    except (DockerException, ValueError) as err:
        raise BuildError(f"cannot list the packages installed in {image}: {err}") from None
    return [(str(name), str(version)) for name, version in listed]


def repo_digest(client: Any, image: str) -> str | None:
    """The registry digest of a local image (what it was pulled or pushed as), if any."""
    from docker.errors import ImageNotFound

    try:
        found = client.images.get(image)
    except ImageNotFound:
        return None
    name = image.split("@", 1)[0]
    if ":" in name[name.rfind("/") + 1 :]:
        name = name.rsplit(":", 1)[0]
    for entry in found.attrs.get("RepoDigests") or []:
        repository, _, digest = str(entry).partition("@")
        if repository == name:
            return digest
    return None


def pull(client: Any, reference: str) -> None:
    """Pull `repository@digest` (or `:tag`) into the engine."""
    from docker.errors import DockerException

    try:
        client.images.pull(reference)
    except DockerException as err:
        raise BuildError(f"cannot pull {reference}: {err}") from None


@contextmanager
def running(client: Any, image: str, port: int, **options: Any) -> Iterator[tuple[Any, int]]:
    """The image running on a random loopback port; always removed afterwards. `options`
    go to the engine as they are (e.g. nano_cpus=1_500_000_000 for `--cpus 1.5`)."""
    container = client.containers.run(
        image, detach=True, ports={f"{port}/tcp": ("127.0.0.1", None)}, **options
    )
    try:
        container.reload()
        host_port = int(container.ports[f"{port}/tcp"][0]["HostPort"])
        yield container, host_port
    finally:
        container.remove(force=True)


def wait_ready(container: Any, port: int, deadline: float) -> None:
    end = time.monotonic() + deadline
    url = f"http://127.0.0.1:{port}/v2/health/ready"
    while time.monotonic() < end:
        container.reload()
        if container.status == "exited":
            break
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    logs = container.logs(tail=40).decode(errors="replace")
    raise BuildError(
        f"the image did not become ready within {deadline:.0f} s "
        f"(status {container.status}). Container logs:\n{logs}"
    )


def push(client: Any, repository: str, tag: str) -> str:
    """Push `repository:tag`; the pushed digest, checked against the registry."""
    digest = None
    for event in client.images.push(repository, tag=tag, stream=True, decode=True):
        if "error" in event:
            detail = event.get("errorDetail", {}).get("message") or event["error"]
            raise BuildError(f"docker push {repository}:{tag} failed: {detail}")
        aux = event.get("aux") or {}
        digest = aux.get("Digest", digest)
    if digest is None:
        raise BuildError(f"docker push {repository}:{tag} reported no digest")
    remote = client.images.get_registry_data(f"{repository}:{tag}").id
    if remote != digest:
        raise BuildError(
            f"the registry holds {remote} for {repository}:{tag}, not the pushed {digest}"
        )
    return str(digest)

"""The registry client against real CNCF distribution registries (no Docker engine needed)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gitops_mlops.integrations.registry import Descriptor, Registry, RegistryError
from tests.image_setup import shared_registry
from tests.integration.registry_helpers import (
    PASSWORD,
    USER,
    Private,
    private_registry,
    push_image,
)

MODEL = b"model bytes " * 100


@pytest.fixture(scope="module")
def shared() -> Registry:
    return shared_registry()


@pytest.fixture
def repository(shared: Registry) -> Iterator[str]:
    """A repository of its own per test; its manifests are deleted afterwards."""
    name = f"test/registry-{uuid.uuid4().hex[:10]}"
    yield name
    for tag in shared.tags(name):
        found = shared.resolve(name, tag)
        if found is not None:
            shared.delete(name, found.digest)


def _private(folder: Path, token: bool) -> Iterator[Private]:
    with private_registry(folder, token=token) as registry:
        yield registry


@pytest.fixture
def private(tmp_path: Path) -> Iterator[Private]:
    yield from _private(tmp_path, token=False)


@pytest.fixture
def token_registry(tmp_path: Path) -> Iterator[Private]:
    yield from _private(tmp_path, token=True)


def test_an_image_is_resolved_read_and_deleted(shared: Registry, repository: str) -> None:
    image = push_image(
        shared,
        repository,
        "v1",
        [{"model/model.skops": b"old", "app/a.py": b"x"}, {"model/model.skops": MODEL}],
        labels={"io.gitops-mlops.model.version": "abc"},
    )
    assert shared.resolve(repository, "v1") == image
    assert shared.resolve(repository, "v2") is None
    assert shared.tags(repository) == ["v1"]
    assert shared.labels(repository, image.digest) == {"io.gitops-mlops.model.version": "abc"}
    # The topmost layer holding a file wins, as in a running container.
    assert shared.read_image_file(repository, image.digest, "/model/model.skops", 10_000) == MODEL
    assert shared.read_image_file(repository, image.digest, "app/a.py", 10) == b"x"
    with pytest.raises(RegistryError, match="over the 100-byte limit"):
        shared.read_image_file(repository, image.digest, "/model/model.skops", 100)
    with pytest.raises(RegistryError, match="has no file /etc/passwd"):
        shared.read_image_file(repository, image.digest, "/etc/passwd", 100)
    before = shared.requests
    assert shared.exists(repository, image.digest)
    assert shared.requests - before == 1  # rollback's question costs one HEAD
    assert shared.delete(repository, image.digest)
    assert not shared.exists(repository, image.digest)
    assert shared.resolve(repository, "v1") is None


def test_referrers_fall_back_to_the_tag_schema(shared: Registry, repository: str) -> None:
    image = push_image(shared, repository, "v1", [{"a": b"a"}])
    other = push_image(shared, repository, "v2", [{"b": b"b"}])
    sbom, tag = shared.attach(
        repository, image, "application/vnd.example.sbom", b'{"sbom":1}', "application/json"
    )
    assert tag == "sha256-" + image.digest.removeprefix("sha256:")  # distribution 2.x: no API
    provenance, _ = shared.attach(
        repository,
        image,
        "application/vnd.example.provenance",
        b'{"provenance":1}',
        "application/json",
        {"kind": "provenance"},
    )
    # Attaching the same bytes again changes nothing: the index lists each manifest once.
    again, _ = shared.attach(
        repository,
        image,
        "application/vnd.example.provenance",
        b'{"provenance":1}',
        "application/json",
        {"kind": "provenance"},
    )
    assert again == provenance
    assert shared.referrers(repository, image.digest) == [sbom, provenance]
    assert shared.referrers(repository, image.digest, "application/vnd.example.sbom") == [sbom]
    assert shared.referrers(repository, other.digest) == []
    artifact = shared.manifest(repository, provenance.digest)
    assert artifact is not None
    body = artifact.json()
    assert body["subject"]["digest"] == image.digest
    assert body["artifactType"] == "application/vnd.example.provenance"
    layer = Descriptor.from_json(body["layers"][0], "test")
    assert shared.blob(repository, layer.digest, 100) == b'{"provenance":1}'


def test_what_a_registry_stores_is_checked_against_its_digest(private: Private) -> None:
    registry = Registry(private.host, {})
    image = push_image(registry, "acme/model", "v1", [{"model/model.skops": MODEL}])
    layer = registry.manifest("acme/model", image.digest)
    assert layer is not None
    blob = layer.layers()[0]
    # Tampering on the registry's disk: same size, other bytes.
    stored = private.blob_file("acme/model", blob.digest)
    data = bytearray(stored.read_bytes())
    data[-5] ^= 0xFF
    stored.write_bytes(bytes(data))
    with pytest.raises(RegistryError, match="the registry answered with other bytes"):
        registry.blob("acme/model", blob.digest, 1 << 20)
    target = private.storage.parent / "out" / "blob"
    with pytest.raises(RegistryError, match="other bytes"):
        registry.blob_to("acme/model", blob.digest, target, 1 << 20)
    assert not target.exists() and list(target.parent.iterdir()) == []
    with pytest.raises(RegistryError, match="over the 10-byte limit"):
        registry.blob("acme/model", layer.config().digest, 10)
    manifest_file = private.blob_file("acme/model", image.digest)
    manifest_file.write_bytes(
        manifest_file.read_bytes().replace(b"schemaVersion", b"schemaversion")
    )
    with pytest.raises(RegistryError, match="hashes to"):
        registry.manifest("acme/model", image.digest)


def test_an_unreachable_registry_is_an_error_not_a_hang(tmp_path: Path) -> None:
    from tests.integration.server_helpers import free_port

    registry = Registry(f"127.0.0.1:{free_port()}", {}, timeout=5)
    with pytest.raises(RegistryError, match="cannot reach the registry"):
        registry.exists("acme/model", "sha256:" + "0" * 64)


def test_bearer_tokens_from_the_challenge_with_credentials(
    token_registry: Private, tmp_path: Path
) -> None:
    private = token_registry
    anonymous = Registry(private.host, {"HOME": str(tmp_path)})
    with pytest.raises(RegistryError, match=r"HTTP 401.*docker login"):
        anonymous.tags("acme/model")
    env = {"MLOPS_REGISTRY_USERNAME": USER, "MLOPS_REGISTRY_PASSWORD": PASSWORD}
    registry = Registry(private.host, env)
    image = push_image(registry, "acme/model", "v1", [{"model/model.skops": MODEL}])
    assert registry.exists("acme/model", image.digest)
    scopes = {
        (s.rsplit(":", 1)[0], frozenset(s.rsplit(":", 1)[1].split(",")))
        for s in private.token_requests
    }
    assert ("repository:acme/model", frozenset({"pull", "push"})) in scopes
    # A token is asked for once per scope, then reused.
    asked = len(private.token_requests)
    assert registry.read_image_file("acme/model", image.digest, "model/model.skops", 1 << 20)
    assert len(private.token_requests) == asked
    # The Docker client's config works the same way (what `docker login` writes).
    config = tmp_path / "docker"
    config.mkdir()
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (config / "config.json").write_text(json.dumps({"auths": {private.host: {"auth": auth}}}))
    from_config = Registry(private.host, {"DOCKER_CONFIG": str(config)})
    assert from_config.tags("acme/model") == ["v1"]
    wrong = Registry(
        private.host, {"MLOPS_REGISTRY_USERNAME": USER, "MLOPS_REGISTRY_PASSWORD": "wrong"}
    )
    with pytest.raises(RegistryError, match="token from"):
        wrong.tags("acme/model")

"""Image references, registry schemes and credentials: pure parts of the registry client."""

from __future__ import annotations

import base64
import json
import urllib.parse
from pathlib import Path

import pytest

from gitops_mlops.integrations.registry import (
    Descriptor,
    Reference,
    Registry,
    RegistryError,
    credentials_for,
    fallback_tag,
    is_loopback,
    redirect_target,
    same_site,
)

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("localhost:5000/acme/iris", "localhost:5000", "acme/iris", None, None),
        (
            "127.0.0.1:5000/mlops/python:3.11-bookworm",
            "127.0.0.1:5000",
            "mlops/python",
            "3.11-bookworm",
            None,
        ),
        (f"ghcr.io/acme/iris@{DIGEST}", "ghcr.io", "acme/iris", None, DIGEST),
        (f"ghcr.io/acme/iris:v1@{DIGEST}", "ghcr.io", "acme/iris", "v1", DIGEST),
        ("python:3.11-slim", "docker.io", "library/python", "3.11-slim", None),
        ("acme/iris", "docker.io", "acme/iris", None, None),
        ("localhost/iris", "localhost", "iris", None, None),
    ],
)
def test_references_parse_like_the_docker_client(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    parsed = Reference.parse(text)
    assert (parsed.registry, parsed.repository, parsed.tag, parsed.digest) == (
        registry,
        repository,
        tag,
        digest,
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("ghcr.io/acme/iris@sha256:abc", "not sha256"),
        ("ghcr.io/Acme/iris", "not a repository name"),
        ("ghcr.io/acme/iris:bad/tag", "not a repository name"),
        ("ghcr.io/acme/iris:-x", "not a valid tag"),
        ("", "not a repository name"),
    ],
)
def test_bad_references_say_what_is_wrong(text: str, fragment: str) -> None:
    with pytest.raises(RegistryError, match=fragment):
        Reference.parse(text)


def test_loopback_registries_get_http_and_all_others_https() -> None:
    assert [is_loopback(h) for h in ("127.0.0.1:5000", "localhost:5000", "[::1]:5000")] == [
        True,
        True,
        True,
    ]
    assert not is_loopback("ghcr.io") and not is_loopback("10.0.0.1:5000")
    assert Registry("127.0.0.1:5000", {}).scheme == "http"
    assert Registry("ghcr.io", {}).scheme == "https"
    assert Registry("docker.io", {}).host == "registry-1.docker.io"


def test_fallback_tag_and_descriptor_round_trip() -> None:
    assert fallback_tag(DIGEST) == "sha256-" + "ab" * 32
    with pytest.raises(RegistryError):
        fallback_tag("sha256:xyz")
    descriptor = Descriptor("application/x", DIGEST, 12, "application/y", {"k": "v"})
    assert Descriptor.from_json(descriptor.to_json(), "test") == descriptor
    with pytest.raises(RegistryError, match="size"):
        Descriptor.from_json({"digest": DIGEST, "mediaType": "x", "size": -1}, "test")


def test_credentials_come_from_the_environment_then_the_docker_config(tmp_path: Path) -> None:
    env = {"MLOPS_REGISTRY_USERNAME": "u", "MLOPS_REGISTRY_PASSWORD": "p", "HOME": str(tmp_path)}
    found = credentials_for("ghcr.io", env)
    assert found is not None and (found.username, found.password) == ("u", "p")
    assert credentials_for("ghcr.io", {"HOME": str(tmp_path)}) is None
    auth = base64.b64encode(b"robot:pa:ss").decode()
    (tmp_path / ".docker").mkdir()
    (tmp_path / ".docker" / "config.json").write_text(
        json.dumps(
            {
                "auths": {
                    "ghcr.io": {"auth": auth},
                    "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:pw").decode()},
                }
            }
        )
    )
    found = credentials_for("ghcr.io", {"HOME": str(tmp_path)})
    assert found is not None and (found.username, found.password) == ("robot", "pa:ss")
    hub = credentials_for("docker.io", {"HOME": str(tmp_path)})
    assert hub is not None and hub.username == "hub"
    assert credentials_for("quay.io", {"HOME": str(tmp_path)}) is None
    (tmp_path / ".docker" / "config.json").write_text("not json")
    assert credentials_for("ghcr.io", {"HOME": str(tmp_path)}) is None


@pytest.mark.parametrize(
    ("realm", "registry", "allowed"),
    [
        ("auth.docker.io", "registry-1.docker.io", True),  # Docker Hub's token service
        ("gitlab.com", "registry.gitlab.com", True),
        ("gitlab.example.com", "registry.example.com:5050", True),
        ("ghcr.io", "ghcr.io", True),
        ("GHCR.IO.", "ghcr.io", True),
        ("127.0.0.1", "127.0.0.1:5000", True),  # the same host, another port
        ("attacker.example", "ghcr.io", False),
        ("evil.co.uk", "registry.co.uk", False),  # co.uk is a public suffix, not a site
        ("other.pkg.dev", "us-docker.pkg.dev", True),
        ("127.0.0.2", "127.0.0.1:5000", False),
        ("0.1", "127.0.0.1", False),
        ("localhost", "127.0.0.1:5000", False),
        ("io", "ghcr.io", False),
    ],
)
def test_credentials_go_to_a_token_service_of_the_registry_s_own_site(
    realm: str, registry: str, allowed: bool
) -> None:
    assert same_site(realm, registry) is allowed


def test_a_redirect_never_goes_from_https_down_to_http() -> None:
    https = urllib.parse.urlsplit("https://ghcr.io/v2/acme/iris/blobs/x")
    assert redirect_target(https, "https://cdn.example/blob").netloc == "cdn.example"
    with pytest.raises(RegistryError, match="not https"):
        redirect_target(https, "http://127.0.0.1:8080/admin")
    loopback = urllib.parse.urlsplit("http://127.0.0.1:5000/v2/x")
    assert redirect_target(loopback, "http://127.0.0.1:5001/blob").port == 5001

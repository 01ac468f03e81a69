"""The registry client against a hostile registry: the real one, with some answers replaced.

Each test puts `hostile_registry.hostile` in front of the shared registry and changes what
it answers for one kind of request: bytes that are not what was asked for, JSON that is not
a manifest, a redirect or a token realm on another host, a body that never ends. The client
must say what went wrong (RegistryError), send credentials nowhere else, and never hang.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from gitops_mlops.integrations.registry import (
    OCI_INDEX,
    Descriptor,
    Registry,
    RegistryError,
    fallback_tag,
)
from tests.image_setup import shared_registry
from tests.integration.hostile_registry import (
    Answer,
    Hostile,
    Request,
    drip,
    firehose,
    hostile,
    token_service,
)
from tests.integration.registry_helpers import SHARED, push_image

USER, PASSWORD = "robot", "hostile-s3cret"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
CREDENTIALS = {"MLOPS_REGISTRY_USERNAME": USER, "MLOPS_REGISTRY_PASSWORD": PASSWORD}
ELSEWHERE = "127.0.0.2"  # another host, still loopback (Linux routes all of 127/8 here)


@pytest.fixture(scope="module")
def shared() -> Registry:
    return shared_registry()


@pytest.fixture
def image(shared: Registry) -> Iterator[tuple[str, Descriptor]]:
    repository = f"test/hostile-{uuid.uuid4().hex[:10]}"
    yield repository, push_image(shared, repository, "v1", [{"model/model.skops": b"m" * 100}])
    for tag in shared.tags(repository):
        found = shared.resolve(repository, tag)
        if found is not None:
            shared.delete(repository, found.digest)


@pytest.fixture
def proxy() -> Iterator[Hostile]:
    with hostile(SHARED) as server:
        yield server


def _on(method: str, part: str, answer: Answer | Callable[[Request], Answer]) -> Any:
    def rule(request: Request) -> Answer | None:
        if request.method != method or part not in request.path:
            return None
        return answer(request) if callable(answer) else answer

    return rule


def _ends(call: Callable[[], object], within: float = 120.0) -> BaseException | None:
    """Run `call` in a thread: the error it raised (None if it returned). Fails the test if
    it has not ended after `within` seconds: a client that hangs on a registry is a bug."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as err:  # handed to the test
            outcome.append(err)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(within)
    assert outcome, f"the client was still waiting for the registry after {within:g} s"
    return outcome[0]


def test_bytes_other_than_those_asked_for_are_refused(
    proxy: Hostile, image: tuple[str, Descriptor]
) -> None:
    repository, pushed = image
    registry = Registry(proxy.host, {})
    manifest = registry.manifest(repository, pushed.digest)
    assert manifest is not None
    layer = manifest.layers()[0]
    proxy.rules.append(_on("GET", f"/blobs/{layer.digest}", Answer(200, {}, b"x" * layer.size)))
    with pytest.raises(RegistryError, match="the registry answered with other bytes"):
        registry.blob(repository, layer.digest, 1 << 20)
    # A manifest asked for by digest, answered with another (valid) manifest.
    other = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).encode()
    proxy.rules.append(_on("GET", f"/manifests/{pushed.digest}", Answer(200, {}, other)))
    with pytest.raises(RegistryError, match=f"not {pushed.digest}"):
        registry.manifest(repository, pushed.digest)


@pytest.mark.parametrize(
    "body",
    [
        b"[1, 2]",
        b'"a manifest"',
        b"not json",
        b"\xff\xfe",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"schemaVersion": 2, "manifests": 5}',
        b'{"schemaVersion": 2, "manifests": [5]}',
        b'{"schemaVersion": 2, "manifests": {"a": 1}}',
        b'{"schemaVersion": 2, "layers": "abc"}',
        b'{"schemaVersion": 2, "mediaType": 7, "layers": []}',
    ],
    ids=[
        "list",
        "string",
        "not-json",
        "not-utf8",
        "nested-100k",
        "manifests-int",
        "descriptor-int",
        "manifests-object",
        "layers-string",
        "media-type-int",
    ],
)
def test_json_that_is_not_a_manifest_is_an_error_not_a_crash(
    proxy: Hostile, image: tuple[str, Descriptor], body: bytes
) -> None:
    repository, pushed = image
    registry = Registry(proxy.host, {})
    tag = fallback_tag(pushed.digest)
    proxy.rules.append(_on("GET", f"/manifests/{tag}", Answer(200, {}, body)))
    proxy.rules.append(_on("GET", "/manifests/v1", Answer(200, {}, body)))
    # A JSON object may simply list nothing; anything else is a RegistryError, not a crash.
    with contextlib.suppress(RegistryError):
        registry.referrers(repository, pushed.digest)
    with contextlib.suppress(RegistryError):
        found = registry.manifest(repository, "v1")
        assert found is not None
        found.layers()
        found.children()
    with pytest.raises(RegistryError):  # no image config to read the labels from
        registry.labels(repository, "v1")


def test_a_registry_error_is_said_as_such(proxy: Hostile, image: tuple[str, Descriptor]) -> None:
    repository, pushed = image
    registry = Registry(proxy.host, {})
    proxy.rules.append(_on("GET", "/referrers/", Answer(500, {}, b"<html>oops</html>")))
    with pytest.raises(RegistryError, match="HTTP 500"):
        registry.referrers(repository, pushed.digest)
    proxy.rules.insert(0, _on("GET", "/manifests/", Answer(401, {}, b"")))
    with pytest.raises(RegistryError, match=r"HTTP 401.*docker login"):
        registry.manifest(repository, "v1")


def _basic_auth(request: Request) -> Answer | None:
    if request.headers.get("Authorization") == BASIC:
        return None
    return Answer(401, {"WWW-Authenticate": 'Basic realm="hostile"'}, b"")


def test_a_redirect_to_another_host_gets_no_credentials(
    proxy: Hostile, image: tuple[str, Descriptor]
) -> None:
    repository, pushed = image
    with hostile(SHARED, ELSEWHERE) as elsewhere, token_service(ELSEWHERE) as tokens:
        realm = f'Bearer realm="http://{tokens.host}/token",service="x"'
        # The other host wants a token from its own token service.
        elsewhere.rules.append(lambda _: Answer(401, {"WWW-Authenticate": realm}, b""))
        proxy.rules.append(_basic_auth)
        proxy.rules.insert(
            0,
            _on(
                "GET",
                "/blobs/",
                lambda r: Answer(307, {"Location": f"http://{elsewhere.host}{r.path}"}),
            ),
        )
        registry = Registry(proxy.host, CREDENTIALS)
        manifest = registry.manifest(repository, pushed.digest)  # Basic, on the registry itself
        assert manifest is not None
        assert proxy.seen[-1].headers.get("Authorization") == BASIC
        with pytest.raises(RegistryError, match="redirect"):
            registry.blob(repository, manifest.layers()[0].digest, 1 << 20)
        assert elsewhere.seen, "the redirect was followed"
        assert all("Authorization" not in r.headers for r in elsewhere.seen)
        assert tokens.seen == []  # the other host's realm was not asked with our login


def test_a_token_realm_on_another_host_gets_no_credentials(
    proxy: Hostile, image: tuple[str, Descriptor]
) -> None:
    repository, _ = image
    with token_service(ELSEWHERE) as tokens:
        realm = f'Bearer realm="http://{tokens.host}/token",service="x"'

        def challenge(request: Request) -> Answer | None:
            if request.headers.get("Authorization", "").startswith("Bearer "):
                return None
            return Answer(401, {"WWW-Authenticate": realm}, b"")

        proxy.rules.append(challenge)
        registry = Registry(proxy.host, CREDENTIALS)
        with pytest.raises(
            RegistryError, match=f"token service {ELSEWHERE}.*not sending the credentials"
        ):
            registry.tags(repository)
        assert tokens.seen == []
        # Without credentials there is nothing to leak: an anonymous token is asked for.
        assert Registry(proxy.host, {"HOME": "/nonexistent"}).tags(repository) == ["v1"]
        assert [r.headers.get("Authorization") for r in tokens.seen] == [None]


def test_plain_http_to_a_host_that_is_not_loopback_is_refused(
    proxy: Hostile, image: tuple[str, Descriptor]
) -> None:
    repository, pushed = image
    proxy.rules.append(
        _on("GET", "/blobs/", Answer(307, {"Location": "http://registry.example/blob"}))
    )
    registry = Registry(proxy.host, CREDENTIALS)
    manifest = registry.manifest(repository, pushed.digest)
    assert manifest is not None
    with pytest.raises(RegistryError, match=r"refusing plain http to registry\.example"):
        registry.blob(repository, manifest.layers()[0].digest, 1 << 20)
    proxy.rules.insert(
        0,
        _on(
            "GET",
            "/tags/",
            Answer(401, {"WWW-Authenticate": 'Bearer realm="http://auth.example/token"'}),
        ),
    )
    with pytest.raises(RegistryError, match="not https"):
        registry.tags(repository)


def test_a_registry_that_never_finishes_answering_is_given_up_on(
    proxy: Hostile, image: tuple[str, Descriptor]
) -> None:
    repository, pushed = image
    registry = Registry(proxy.host, {}, timeout=1)
    manifest = registry.manifest(repository, pushed.digest)
    assert manifest is not None
    layer = manifest.layers()[0]
    # A body that drips one byte at a time: each read is in time, the whole never comes.
    proxy.rules.append(_on("GET", "/manifests/v1", Answer(200, {}, drip())))
    error = _ends(lambda: registry.manifest(repository, "v1"))
    assert isinstance(error, RegistryError) and "did not finish" in str(error)
    # Headers that never end.
    headers = Answer(0, raw=[b"HTTP/1.1 200 OK\r\n", *(b"X-A: a\r\n" for _ in range(10**6))])
    slow_headers = iter(headers.raw or [])

    def slowly() -> Iterator[bytes]:
        for line in slow_headers:
            time.sleep(0.05)
            yield line

    proxy.rules.insert(0, _on("GET", "/tags/", Answer(0, raw=slowly())))
    error = _ends(lambda: registry.tags(repository))
    assert isinstance(error, RegistryError), error
    # A blob that streams forever, as fast as it is read, and one whose sender stops halfway.
    proxy.rules.append(_on("GET", f"/blobs/{layer.digest}", Answer(200, {}, firehose())))
    error = _ends(lambda: registry.blob(repository, layer.digest, 1 << 20))
    assert isinstance(error, RegistryError) and "over the" in str(error)
    half = Answer(
        0, raw=[b"HTTP/1.0 200 OK\r\nContent-Length: 1000\r\n\r\n", b"x" * 10]
    )  # then the connection closes
    proxy.rules.insert(0, _on("GET", f"/blobs/{layer.digest}", half))
    error = _ends(lambda: registry.blob(repository, layer.digest, 1 << 20))
    assert isinstance(error, RegistryError), error

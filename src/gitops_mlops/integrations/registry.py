"""An OCI registry through the distribution API: manifests, blobs, tags and referrers.

No Docker engine is needed: rollback asks whether an image digest still exists, the gate
fetches a champion's model file from its image, and attestations are attached to an image
digest and found from it (OCI 1.1 referrers API, with the referrers tag schema as fallback
for registries without it, such as CNCF distribution 2.x).

Registries are not trusted: every manifest and blob read by digest is hashed and compared,
every answer is size-capped and must arrive within a deadline (a registry that drips bytes
is given up on, not waited for), and JSON that is not what the API promises is an error.
Loopback registries are spoken to over http, all others over https (a redirect cannot turn
https into http). Credentials come from the environment
(`MLOPS_REGISTRY_USERNAME`/`MLOPS_REGISTRY_PASSWORD`) or the Docker client's config
(`auths`, `credHelpers`, `credsStore`), and are sent only after the registry itself (not a
host it redirected to) asks for them: as Basic, or exchanged for a bearer token at the
realm its `WWW-Authenticate` names, when that realm is the registry's host or in its domain
(auth.docker.io for registry-1.docker.io). `requests` counts every HTTP request made,
token requests included.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import http.client
import io
import ipaddress
import json
import os
import re
import socket
import ssl
import subprocess
import tarfile
import tempfile
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from gitops_mlops.errors import MlopsError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
MANIFEST_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
EMPTY_JSON = b"{}"

MANIFEST_LIMIT = 4 * 1024 * 1024  # what registries accept (the distribution spec's advice)
CONFIG_LIMIT = 8 * 1024 * 1024
TOKEN_LIMIT = 1024 * 1024
ERROR_LIMIT = 64 * 1024
TAG_PAGE = 1000
TAG_PAGES = 100
MAX_REDIRECTS = 5
CHUNK = 1024 * 1024
DEFAULT_TIMEOUT = 30.0
# A body must arrive at this rate at least (after `timeout` seconds to start): a registry
# that sends a byte every few seconds would never trip the socket's own timeout.
MIN_RATE = 512 * 1024  # bytes per second
DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


class RegistryError(MlopsError):
    """A registry refused a request or answered something we cannot accept."""


@dataclass(frozen=True)
class Reference:
    """`registry/repository[:tag][@digest]`, the way the Docker client reads image names."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> Reference:
        rest, digest = text, None
        if "@" in rest:
            rest, digest = rest.split("@", 1)
            if not _DIGEST.match(digest):
                raise RegistryError(f"{text!r}: the digest is not sha256:<64 lower-case hex>")
        tag = None
        slash = rest.rfind("/")
        if ":" in rest[slash + 1 :]:
            rest, tag = rest.rsplit(":", 1)
            if not _TAG.match(tag):
                raise RegistryError(f"{text!r}: {tag!r} is not a valid tag")
        first, _, remainder = rest.partition("/")
        if remainder and ("." in first or ":" in first or first == "localhost"):
            registry, repository = first, remainder
        else:
            registry, repository = DOCKER_HUB, rest
            if "/" not in repository:
                repository = f"library/{repository}"
        if not repository or not all(_COMPONENT.match(p) for p in repository.split("/")):
            raise RegistryError(
                f"{text!r}: {repository!r} is not a repository name (lower-case letters, digits "
                "and separators)"
            )
        return cls(registry, repository, tag, digest)

    @property
    def name(self) -> str:
        """`registry/repository`, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.registry, self.repository, None, digest)


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor: what a manifest, index or referrers list points at."""

    media_type: str
    digest: str
    size: int
    artifact_type: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    @classmethod
    def from_json(cls, raw: Any, where: str) -> Descriptor:
        if not isinstance(raw, dict):
            raise RegistryError(f"{where}: a descriptor is not a JSON object")
        digest, size, media = raw.get("digest"), raw.get("size"), raw.get("mediaType")
        if not isinstance(digest, str) or not _DIGEST.match(digest):
            raise RegistryError(f"{where}: descriptor digest {digest!r} is not sha256:<hex>")
        if type(size) is not int or size < 0 or not isinstance(media, str):
            raise RegistryError(f"{where}: descriptor of {digest} has no valid size or mediaType")
        annotations = raw.get("annotations") or {}
        if not isinstance(annotations, dict):
            raise RegistryError(f"{where}: descriptor annotations are not a mapping")
        artifact = raw.get("artifactType")
        return cls(
            media,
            digest,
            size,
            artifact if isinstance(artifact, str) else None,
            {str(k): str(v) for k, v in annotations.items()},
        )


@dataclass(frozen=True)
class Manifest:
    """A manifest or index as the registry stored it (bytes), checked against its digest."""

    media_type: str
    digest: str
    raw: bytes

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.raw))

    def json(self) -> dict[str, Any]:
        return _json_object(self.raw, f"manifest {self.digest}")

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    def layers(self) -> list[Descriptor]:
        return descriptors(self.json(), "layers", f"manifest {self.digest}")

    def config(self) -> Descriptor:
        return Descriptor.from_json(self.json().get("config"), f"manifest {self.digest}")

    def children(self) -> list[Descriptor]:
        """The manifests an index lists."""
        return descriptors(self.json(), "manifests", f"index {self.digest}")


def descriptors(data: Mapping[str, Any], key: str, where: str) -> list[Descriptor]:
    """The descriptors listed under `key` (none when it is absent); RegistryError when that
    is not a list of descriptors."""
    listed = data.get(key)
    if listed is None:
        return []
    if not isinstance(listed, list):
        raise RegistryError(f"{where}: {key} is not a list")
    return [Descriptor.from_json(d, where) for d in listed]


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def is_loopback(host: str) -> bool:
    name = urllib.parse.urlsplit(f"//{host}").hostname or ""
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


def credentials_for(registry: str, env: Mapping[str, str]) -> Credentials | None:
    """The environment's registry login, else the Docker client config's, else None."""
    user, password = env.get("MLOPS_REGISTRY_USERNAME"), env.get("MLOPS_REGISTRY_PASSWORD")
    if user and password:
        return Credentials(user, password)
    folder = Path(env["DOCKER_CONFIG"]) if env.get("DOCKER_CONFIG") else _home(env) / ".docker"
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    keys = _config_keys(registry)
    helpers = config.get("credHelpers") or {}
    for key in keys:
        if isinstance(helpers, dict) and isinstance(helpers.get(key), str):
            return _from_helper(helpers[key], key, env)
    auths = config.get("auths") or {}
    for key in keys:
        entry = auths.get(key) if isinstance(auths, dict) else None
        if isinstance(entry, dict) and isinstance(entry.get("auth"), str):
            with contextlib.suppress(ValueError):
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
                if user:
                    return Credentials(user, password)
    store = config.get("credsStore")
    return _from_helper(store, keys[0], env) if isinstance(store, str) and store else None


def _home(env: Mapping[str, str]) -> Path:
    return Path(env["HOME"]) if env.get("HOME") else Path.home()


def _config_keys(registry: str) -> list[str]:
    if registry == DOCKER_HUB:
        return ["https://index.docker.io/v1/", "index.docker.io", "docker.io"]
    return [registry, f"https://{registry}", f"http://{registry}"]


def _from_helper(helper: str, key: str, env: Mapping[str, str]) -> Credentials | None:
    """Ask `docker-credential-<helper> get`, as the Docker client does."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", helper):
        return None
    try:
        done = subprocess.run(
            [f"docker-credential-{helper}", "get"],
            input=key,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env=dict(env),
        )
        answer = json.loads(done.stdout) if done.returncode == 0 else None
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None
    if not isinstance(answer, dict) or not answer.get("Username"):
        return None
    return Credentials(str(answer["Username"]), str(answer.get("Secret", "")))


class _Deadline:
    """Ends an exchange that takes too long by shutting its socket down: reads then end at
    once (a registry that drips bytes never trips the socket's per-read timeout)."""

    def __init__(self, connection: http.client.HTTPConnection, seconds: float) -> None:
        self.connection = connection
        # Held here: http.client lets go of a connection's socket once an answer that ends
        # at close is under way, and it is that answer's reads that must be ended.
        self.sock: socket.socket | None = None
        self.seconds = seconds
        self.expired = False
        self._timer: threading.Timer | None = None
        self.extend(seconds)

    def extend(self, seconds: float) -> None:
        """From now, `seconds` more."""
        self.cancel()
        self.seconds = seconds
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _expire(self) -> None:
        self.expired = True
        sock = self.sock or self.connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                # The plain socket's shutdown, under TLS too: the TLS layer then reads EOF.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


@dataclass
class _Response:
    status: int
    headers: http.client.HTTPMessage
    body: http.client.HTTPResponse
    connection: http.client.HTTPConnection
    url: str  # where the answer came from (after redirects)
    deadline: _Deadline
    timeout: float

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def read(self, limit: int, what: str) -> bytes:
        declared = self.header("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise RegistryError(f"{what} is {declared} bytes, over the {limit}-byte limit")
        buffer = io.BytesIO()
        self.stream(buffer, limit, what)
        return buffer.getvalue()

    def stream(self, sink: Any, limit: int, what: str, hasher: Any = None) -> int:
        """Copy the body into `sink` (at most `limit` bytes, in time); its size."""
        self.deadline.extend(self.timeout + limit / MIN_RATE)
        size = 0
        try:
            while chunk := self.body.read1(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise RegistryError(f"{what} is over the {limit}-byte limit")
                if hasher is not None:
                    hasher.update(chunk)
                sink.write(chunk)
        except (OSError, http.client.HTTPException, ValueError) as err:
            raise self.failed(what, err) from None
        if self.deadline.expired:
            raise self.failed(what, None)
        return size

    def failed(self, what: str, err: BaseException | None) -> RegistryError:
        host = urllib.parse.urlsplit(self.url).netloc
        if self.deadline.expired:
            return RegistryError(
                f"{what}: {host} did not finish answering within {self.deadline.seconds:.0f} s"
            )
        return RegistryError(f"{what}: {host} broke off its answer ({err})")

    def close(self) -> None:
        self.deadline.cancel()
        self.connection.close()


class Registry:
    """One registry host. Intent-level methods below; `requests` counts HTTP requests."""

    def __init__(
        self,
        host: str,
        env: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.host = DOCKER_HUB_API if host == DOCKER_HUB else host
        self.registry = host
        self.scheme = "http" if is_loopback(self.host) else "https"
        self.timeout = timeout
        self.env: Mapping[str, str] = os.environ if env is None else env
        self.requests = 0
        self._tokens: dict[str, str] = {}  # scope -> bearer token
        self._basic: str | None = None
        self._credentials: Credentials | bool | None = False  # False: not looked up yet

    @classmethod
    def for_image(cls, image: str, env: Mapping[str, str] | None = None) -> Registry:
        return cls(Reference.parse(image).registry, env)

    # -- intents ---------------------------------------------------------------------------

    def unreachable(self) -> str | None:
        """None when a registry answers at this host (any HTTP answer to its API root, a
        401 included), else why not: for the laptop's `skip` line or the CI's error."""
        url = f"{self.scheme}://{self.host}/v2/"
        try:
            response = self._send("GET", url, {"User-Agent": "gitops-mlops"}, None)
        except RegistryError as err:
            return str(err)
        response.close()
        return None

    def resolve(self, repository: str, reference: str) -> Descriptor | None:
        """The manifest descriptor a tag (or digest) names, or None when there is none."""
        response = self._request("HEAD", repository, f"/manifests/{reference}", accept=True)
        try:
            if response.status == 404:
                return None
            self._expect(response, (200,), f"HEAD {repository}:{reference}")
            digest = response.header("Docker-Content-Digest")
            size = response.header("Content-Length")
            media = (response.header("Content-Type") or "").split(";")[0].strip()
        finally:
            response.close()
        if digest is None or not _DIGEST.match(digest) or size is None or not size.isdigit():
            # Some registries omit the digest on HEAD: read the manifest and hash it.
            found = self.manifest(repository, reference)
            return found.descriptor if found else None
        if _DIGEST.match(reference) and digest != reference:
            raise RegistryError(f"{repository}@{reference}: the registry answered for {digest}")
        return Descriptor(media, digest, int(size))

    def exists(self, repository: str, digest: str) -> bool:
        """Whether `repository@digest` is still in the registry (one HEAD request)."""
        _check_digest(digest)
        return self.resolve(repository, digest) is not None

    def manifest(self, repository: str, reference: str) -> Manifest | None:
        """The manifest (or index) by tag or digest, hashed and checked; None when absent."""
        response = self._request("GET", repository, f"/manifests/{reference}", accept=True)
        try:
            if response.status == 404:
                return None
            self._expect(response, (200,), f"GET manifest {repository}:{reference}")
            raw = response.read(MANIFEST_LIMIT, f"manifest {repository}:{reference}")
            media = (response.header("Content-Type") or "").split(";")[0].strip()
            claimed = response.header("Docker-Content-Digest")
        finally:
            response.close()
        digest = sha256_digest(raw)
        expected = reference if _DIGEST.match(reference) else claimed
        if expected is not None and expected != digest:
            raise RegistryError(
                f"manifest {repository}:{reference} hashes to {digest}, not {expected}: "
                "the registry answered with other bytes"
            )
        declared = _json_object(raw, f"manifest {repository}:{reference}").get("mediaType")
        if isinstance(declared, str) and declared:
            media = declared  # what the bytes say, not what the registry's header says
        return Manifest(media, digest, raw)

    def blob(self, repository: str, digest: str, limit: int) -> bytes:
        """A blob, at most `limit` bytes, checked against its digest."""
        buffer = io.BytesIO()
        self._blob_into(repository, digest, limit, buffer)
        return buffer.getvalue()

    def blob_to(self, repository: str, digest: str, path: Path, limit: int) -> int:
        """Stream a blob into `path` (written atomically once its digest checks); its size."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as handle:
            try:
                size = self._blob_into(repository, digest, limit, handle)
            except BaseException:
                handle.close()
                Path(handle.name).unlink()
                raise
        Path(handle.name).replace(path)
        return size

    def push_blob(self, repository: str, data: bytes, media_type: str) -> Descriptor:
        """Upload `data` (monolithic POST + PUT), unless the registry has it already."""
        digest = sha256_digest(data)
        descriptor = Descriptor(media_type, digest, len(data))
        head = self._request("HEAD", repository, f"/blobs/{digest}", write=True)
        head.close()
        if head.status == 200:
            return descriptor
        start = self._request("POST", repository, "/blobs/uploads/", body=b"")
        try:
            self._expect(start, (202,), f"start blob upload to {repository}")
            location = start.header("Location")
        finally:
            start.close()
        if not location:
            raise RegistryError(f"{self.registry} started an upload but gave no Location")
        url = urllib.parse.urljoin(f"{self.scheme}://{self.host}/", location)
        separator = "&" if "?" in url else "?"
        put = self._request(
            "PUT",
            repository,
            url=f"{url}{separator}digest={urllib.parse.quote(digest)}",
            body=data,
            content_type="application/octet-stream",
        )
        try:
            self._expect(put, (201,), f"upload blob {digest} to {repository}")
        finally:
            put.close()
        return descriptor

    def push_manifest(
        self, repository: str, raw: bytes, media_type: str, tag: str | None = None
    ) -> tuple[Descriptor, bool]:
        """PUT a manifest by tag (or by its digest); (descriptor, registry took `subject`)."""
        digest = sha256_digest(raw)
        reference = tag or digest
        if tag is not None and not _TAG.match(tag):
            raise RegistryError(f"{tag!r} is not a valid tag")
        response = self._request(
            "PUT", repository, f"/manifests/{reference}", body=raw, content_type=media_type
        )
        try:
            self._expect(response, (201,), f"push manifest {repository}:{reference}")
            subject = response.header("OCI-Subject") is not None
        finally:
            response.close()
        return Descriptor(media_type, digest, len(raw)), subject

    def tags(self, repository: str) -> list[str]:
        """Every tag of `repository` (paginated by the registry's Link header)."""
        found: list[str] = []
        path: str | None = f"/tags/list?n={TAG_PAGE}"
        for _ in range(TAG_PAGES):
            if path is None:
                return found
            response = self._request("GET", repository, path)
            try:
                if response.status == 404:
                    return found
                self._expect(response, (200,), f"list tags of {repository}")
                page = _json_object(response.read(MANIFEST_LIMIT, "tag list"), "tag list")
                link = response.header("Link")
            finally:
                response.close()
            found += [t for t in page.get("tags") or [] if isinstance(t, str)]
            path = _next_page(link, repository)
        raise RegistryError(f"{repository} has more than {TAG_PAGE * TAG_PAGES} tags")

    def referrers(
        self, repository: str, digest: str, artifact_type: str | None = None
    ) -> list[Descriptor]:
        """What refers to `digest` (attestations, signatures), newest last.

        The OCI 1.1 referrers API when the registry has it, else the referrers tag schema:
        an index tagged `sha256-<hex>` listing the referring manifests.
        """
        _check_digest(digest)
        query = f"?artifactType={urllib.parse.quote(artifact_type)}" if artifact_type else ""
        response = self._request(
            "GET", repository, f"/referrers/{digest}{query}", accept_types=(OCI_INDEX,)
        )
        where = f"referrers of {repository}@{digest}"
        try:
            if response.status == 200:
                index = _json_object(response.read(MANIFEST_LIMIT, "referrers"), "referrers")
                listed: list[Descriptor] | None = descriptors(index, "manifests", where)
            elif response.status in (404, 405):
                listed = None
            else:
                self._expect(response, (200,), where)
                listed = []
        finally:
            response.close()
        if listed is None:
            fallback = self.manifest(repository, fallback_tag(digest))
            listed = descriptors(fallback.json(), "manifests", where) if fallback else []
        return [d for d in listed if artifact_type in (None, d.artifact_type)]

    def attach(
        self,
        repository: str,
        subject: Descriptor,
        artifact_type: str,
        payload: bytes,
        payload_type: str,
        annotations: Mapping[str, str] | None = None,
    ) -> tuple[Descriptor, str | None]:
        """Push `payload` as an OCI artifact whose `subject` is `subject`: its descriptor, and
        the referrers tag updated (None when the registry indexes referrers itself).

        Where the registry does not index `subject` itself (no OCI-Subject header), the
        referrers tag `sha256-<hex>` is updated so that `referrers()` finds it.
        """
        config = self.push_blob(repository, EMPTY_JSON, OCI_EMPTY)
        layer = self.push_blob(repository, payload, payload_type)
        body: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": config.to_json(),
            "layers": [layer.to_json()],
            "subject": Descriptor(subject.media_type, subject.digest, subject.size).to_json(),
        }
        if annotations:
            body["annotations"] = dict(annotations)
        raw = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
        pushed, indexed = self.push_manifest(repository, raw, OCI_MANIFEST)
        descriptor = Descriptor(
            OCI_MANIFEST, pushed.digest, pushed.size, artifact_type, dict(annotations or {})
        )
        if indexed:
            return descriptor, None
        self._add_to_fallback(repository, subject.digest, descriptor)
        return descriptor, fallback_tag(subject.digest)

    def delete(self, repository: str, digest: str) -> bool:
        """Delete the manifest `repository@digest` (and so every tag on it); False when absent.

        Registries may refuse (distribution needs `storage.delete.enabled`): RegistryError.
        """
        _check_digest(digest)
        response = self._request("DELETE", repository, f"/manifests/{digest}")
        try:
            if response.status == 404:
                return False
            self._expect(response, (202,), f"delete {repository}@{digest}")
        finally:
            response.close()
        return True

    def image_config(self, repository: str, reference: str) -> dict[str, Any] | None:
        """The image's config JSON (labels, env, history); None when there is no such image."""
        found = self.manifest(repository, reference)
        if found is None:
            return None
        image = self._single_image(repository, found)
        config = image.config()
        return _json_object(
            self.blob(repository, config.digest, CONFIG_LIMIT), f"config of {repository}"
        )

    def labels(self, repository: str, reference: str) -> dict[str, str] | None:
        """The image's labels ({} without any); None when there is no such image."""
        config = self.image_config(repository, reference)
        if config is None:
            return None
        labels = (config.get("config") or {}).get("Labels") or {}
        return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}

    def read_image_file(self, repository: str, digest: str, path: str, limit: int) -> bytes:
        """One regular file of the image `repository@digest`, from its topmost layer holding
        it (e.g. the model file of a released image), at most `limit` bytes."""
        return self.read_image_files(repository, digest, (path,), limit)[path]

    def read_image_files(
        self, repository: str, digest: str, paths: tuple[str, ...], limit: int
    ) -> dict[str, bytes]:
        """Regular files of the image `repository@digest`, each from the topmost layer
        holding it, at most `limit` bytes each. Layers are read from the top and only until
        every file is found: a model and its manifest, copied in the last layer, cost one
        manifest and one blob request."""
        wanted = {PurePosixPath("/", p).relative_to("/").as_posix(): p for p in paths}
        image = self._single_image(repository, self._manifest_or_fail(repository, digest))
        found: dict[str, bytes] = {}
        for layer in reversed(image.layers()):
            with tempfile.TemporaryFile() as spool:
                self._blob_into(repository, layer.digest, layer.size, spool)
                spool.seek(0)
                missing = {name for name in wanted if wanted[name] not in found}
                for name, data in _files_in_layer(spool, missing, limit, layer.digest).items():
                    found[wanted[name]] = data
            if len(found) == len(wanted):
                return found
        absent = sorted(name for name, path in wanted.items() if path not in found)
        raise RegistryError(f"{repository}@{digest} has no file /{', /'.join(absent)}")

    # -- plumbing ----------------------------------------------------------------------------

    def _manifest_or_fail(self, repository: str, reference: str) -> Manifest:
        found = self.manifest(repository, reference)
        if found is None:
            raise RegistryError(f"{self.registry}/{repository}:{reference} does not exist")
        return found

    def _single_image(self, repository: str, found: Manifest) -> Manifest:
        if not found.is_index:
            return found
        children = [c for c in found.children() if c.media_type not in INDEX_TYPES]
        if len(children) != 1:
            raise RegistryError(
                f"{repository}@{found.digest} is an index of {len(children)} images; "
                "give the digest of one platform's image"
            )
        return self._manifest_or_fail(repository, children[0].digest)

    def _add_to_fallback(self, repository: str, subject: str, descriptor: Descriptor) -> None:
        tag = fallback_tag(subject)
        current = self.manifest(repository, tag)
        listed = descriptors(current.json(), "manifests", f"index {tag}") if current else []
        if any(d.digest == descriptor.digest for d in listed):
            return
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [*(d.to_json() for d in listed), descriptor.to_json()],
        }
        raw = json.dumps(index, separators=(",", ":")).encode()
        self.push_manifest(repository, raw, OCI_INDEX, tag=tag)

    def _blob_into(self, repository: str, digest: str, limit: int, sink: Any) -> int:
        _check_digest(digest)
        response = self._request("GET", repository, f"/blobs/{digest}")
        try:
            self._expect(response, (200,), f"GET blob {repository}@{digest}")
            declared = response.header("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise RegistryError(
                    f"blob {digest} is {declared} bytes, over the {limit}-byte limit"
                )
            hasher = hashlib.sha256()
            size = response.stream(sink, limit, f"blob {digest}", hasher)
        finally:
            response.close()
        if "sha256:" + hasher.hexdigest() != digest:
            raise RegistryError(
                f"blob {repository}@{digest} hashes to sha256:{hasher.hexdigest()}: "
                "the registry answered with other bytes"
            )
        return size

    def _expect(self, response: _Response, statuses: tuple[int, ...], what: str) -> None:
        if response.status in statuses:
            return
        detail = response.read(ERROR_LIMIT, "error answer").decode(errors="replace").strip()
        with contextlib.suppress(ValueError, AttributeError, IndexError, TypeError):
            errors = json.loads(detail)["errors"]
            detail = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors)
        hint = ""
        if response.status in (401, 403):
            hint = (
                "; log in (`docker login`) or set MLOPS_REGISTRY_USERNAME and "
                "MLOPS_REGISTRY_PASSWORD"
            )
        raise RegistryError(
            f"{what} on {self.registry}: HTTP {response.status} {detail[:500]}{hint}"
        )

    def _request(
        self,
        method: str,
        repository: str,
        path: str = "",
        *,
        url: str | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
        accept: bool = False,
        accept_types: tuple[str, ...] = (),
        write: bool | None = None,
    ) -> _Response:
        """One API request, answering a 401 challenge once (Basic or bearer token)."""
        target = url or f"{self.scheme}://{self.host}/v2/{repository}{path}"
        headers = {"User-Agent": "gitops-mlops"}
        if accept or accept_types:
            headers["Accept"] = ", ".join(accept_types or MANIFEST_TYPES)
        if content_type is not None:
            headers["Content-Type"] = content_type
        if write is None:
            write = method not in ("GET", "HEAD")
        scope = f"repository:{repository}:{'pull,push' if write else 'pull'}"
        response = self._send(method, target, headers | self._authorization(scope), body)
        if response.status != 401:
            return response
        challenge = response.header("WWW-Authenticate") or ""
        answered_by = urllib.parse.urlsplit(response.url).netloc
        response.close()
        if answered_by != urllib.parse.urlsplit(target).netloc:
            # A host the registry redirected to asks for a login: never ours to give.
            raise RegistryError(
                f"{method} {urllib.parse.urlsplit(target).path}: {self.registry} sent a "
                f"redirect to {answered_by}, which asks for credentials; not sending them there"
            )
        authorization = self._answer(challenge, scope)
        if authorization is None:
            return self._send(method, target, headers, body)  # the 401 again, to report
        return self._send(method, target, headers | authorization, body)

    def _authorization(self, scope: str) -> dict[str, str]:
        token = self._tokens.get(scope) or self._tokens.get(_widest(scope))
        if token:
            return {"Authorization": f"Bearer {token}"}
        if self._basic:
            return {"Authorization": f"Basic {self._basic}"}
        return {}

    def _login(self) -> Credentials | None:
        if self._credentials is False:
            self._credentials = credentials_for(self.registry, self.env)
        return self._credentials if isinstance(self._credentials, Credentials) else None

    def _answer(self, challenge: str, scope: str) -> dict[str, str] | None:
        kind, _, params_text = challenge.partition(" ")
        params = dict(_CHALLENGE_PARAM.findall(params_text))
        login = self._login()
        if kind.lower() == "basic":
            if login is None:
                return None
            self._basic = base64.b64encode(f"{login.username}:{login.password}".encode()).decode()
            return {"Authorization": f"Basic {self._basic}"}
        if kind.lower() != "bearer" or "realm" not in params:
            return None
        token = self._token(params, scope, login)
        self._tokens[scope] = token
        return {"Authorization": f"Bearer {token}"}

    def _token(self, params: Mapping[str, str], scope: str, login: Credentials | None) -> str:
        realm = params["realm"]
        parsed = urllib.parse.urlsplit(realm)
        if parsed.scheme != "https" and not (
            parsed.scheme == "http" and is_loopback(parsed.netloc)
        ):
            raise RegistryError(f"{self.registry}: refusing token realm {realm!r} (not https)")
        if login is not None and not same_site(parsed.hostname or "", self.host):
            raise RegistryError(
                f"{self.registry} names the token service {parsed.netloc}, another host; "
                f"not sending the credentials for {self.registry} there"
            )
        query = {"scope": params.get("scope") or scope}
        if params.get("service"):
            query["service"] = params["service"]
        headers = {"User-Agent": "gitops-mlops"}
        if login is not None:
            basic = base64.b64encode(f"{login.username}:{login.password}".encode()).decode()
            headers["Authorization"] = f"Basic {basic}"
        separator = "&" if parsed.query else "?"
        response = self._send(
            "GET", f"{realm}{separator}{urllib.parse.urlencode(query)}", headers, None
        )
        try:
            self._expect(response, (200,), f"token from {parsed.netloc}")
            answer = _json_object(response.read(TOKEN_LIMIT, "token answer"), "token answer")
        finally:
            response.close()
        token = answer.get("token") or answer.get("access_token")
        if not isinstance(token, str) or not token:
            raise RegistryError(f"{parsed.netloc} answered the token request without a token")
        return token

    def _send(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> _Response:
        """One HTTP exchange (redirects followed; credentials only to the same host)."""
        origin = urllib.parse.urlsplit(url)
        for _ in range(MAX_REDIRECTS + 1):
            parts = redirect_target(origin, url)
            sent = dict(headers)
            if parts.netloc != origin.netloc:
                sent.pop("Authorization", None)
            connection = self._connection(parts)
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            self.requests += 1
            deadline = _Deadline(connection, self.timeout)
            try:
                connection.request(method, target or "/", body=body, headers=sent)
                deadline.sock = connection.sock
                answer = connection.getresponse()
            except (OSError, http.client.HTTPException) as err:
                deadline.cancel()
                connection.close()
                late = f"no answer within {self.timeout:g} s" if deadline.expired else err
                raise RegistryError(
                    f"cannot reach the registry {parts.netloc} ({method} {parts.path}): {late}"
                ) from None
            location = answer.getheader("Location")
            if (
                answer.status in (301, 302, 303, 307, 308)
                and location
                and method in ("GET", "HEAD")
            ):
                deadline.cancel()
                connection.close()
                url = urllib.parse.urljoin(url, location)
                continue
            return _Response(
                answer.status, answer.headers, answer, connection, url, deadline, self.timeout
            )
        raise RegistryError(f"{url}: more than {MAX_REDIRECTS} redirects")

    def _connection(self, parts: urllib.parse.SplitResult) -> http.client.HTTPConnection:
        try:
            host, port = parts.hostname, parts.port
        except ValueError:
            host = port = None
        if not host or parts.username is not None:
            raise RegistryError(f"refusing the URL {parts.geturl()!r}: no plain host name")
        if parts.scheme == "http":
            if not is_loopback(parts.netloc):
                raise RegistryError(f"refusing plain http to {parts.netloc}: only loopback")
            return http.client.HTTPConnection(host, port, timeout=self.timeout)
        if parts.scheme != "https":
            raise RegistryError(f"unsupported URL scheme {parts.scheme!r}")
        context = ssl.create_default_context()
        return http.client.HTTPSConnection(host, port, timeout=self.timeout, context=context)


def redirect_target(origin: urllib.parse.SplitResult, url: str) -> urllib.parse.SplitResult:
    """Where a request (first `origin`, then where it was redirected) goes: never from https
    down to http (a remote registry could otherwise point us at a loopback service)."""
    parts = urllib.parse.urlsplit(url)
    if origin.scheme == "https" and parts.scheme != "https":
        raise RegistryError(f"{origin.netloc} redirected to {url}: not https")
    return parts


def same_site(realm_host: str, registry_host: str) -> bool:
    """Whether a token realm on `realm_host` may receive the registry's credentials: the
    registry's own host, or a host of the same registrable domain (by the Public Suffix
    List: auth.docker.io for registry-1.docker.io, gitlab.com for registry.gitlab.com, never
    evil.co.uk for registry.co.uk)."""
    registry = urllib.parse.urlsplit(f"//{registry_host}").hostname or ""
    realm = realm_host.lower().rstrip(".")
    if realm == registry:
        return True
    if _is_address(realm) or _is_address(registry):
        return False
    from publicsuffixlist import PublicSuffixList

    domains = PublicSuffixList()
    site = domains.privatesuffix(registry)
    return site is not None and domains.privatesuffix(realm) == site


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def fallback_tag(digest: str) -> str:
    """The referrers tag schema's tag for `digest`: `sha256-<hex>`."""
    _check_digest(digest)
    return digest.replace(":", "-")


def _check_digest(digest: str) -> None:
    if not _DIGEST.match(digest):
        raise RegistryError(f"{digest!r} is not a digest (sha256:<64 lower-case hex>)")


def _widest(scope: str) -> str:
    """A pull,push token also serves pulls of the same repository."""
    return scope + ",push" if scope.endswith(":pull") else scope


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise RegistryError(f"the registry's {what} is not JSON") from None
    if not isinstance(data, dict):
        raise RegistryError(f"the registry's {what} is not a JSON object")
    return data


def _next_page(link: str | None, repository: str) -> str | None:
    match = re.match(r"\s*<([^>]+)>\s*;\s*rel=\"?next\"?", link or "")
    if match is None:
        return None
    target = urllib.parse.urlsplit(match[1])
    prefix = f"/v2/{repository}"
    if not target.path.startswith(prefix):
        raise RegistryError(f"the tag list's next page {match[1]!r} leaves {repository}")
    return target.path[len(prefix) :] + (f"?{target.query}" if target.query else "")


def _files_in_layer(spool: Any, wanted: set[str], limit: int, digest: str) -> dict[str, bytes]:
    """The bytes of those of `wanted` a layer tar (gzip or plain) holds."""
    whiteouts = {}
    for name in wanted:
        parent, _, base = name.rpartition("/")
        whiteouts[f"{parent}/.wh.{base}" if parent else f".wh.{base}"] = name
    head = spool.read(2)
    spool.seek(0)
    stream: Any = gzip.GzipFile(fileobj=spool) if head == b"\x1f\x8b" else spool
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in archive:
                name = PurePosixPath("/", member.name).relative_to("/").as_posix()
                if name in whiteouts:
                    raise RegistryError(f"/{whiteouts[name]} was deleted in layer {digest}")
                if name not in wanted:
                    continue
                if not member.isfile():
                    raise RegistryError(f"/{name} in layer {digest} is not a regular file")
                if member.size > limit:
                    raise RegistryError(
                        f"/{name} is {member.size} bytes, over the {limit}-byte limit"
                    )
                handle = archive.extractfile(member)
                assert handle is not None  # a regular file always has content
                found[name] = handle.read()
    except (tarfile.TarError, OSError, EOFError) as err:
        raise RegistryError(f"layer {digest} is not a readable tar archive: {err}") from None
    return found

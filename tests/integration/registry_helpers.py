"""Registries for tests: the shared one on 127.0.0.1:5000 (`tests.image_setup.shared_registry`
gives its client, or skips), and private ones started here.

A private registry is CNCF distribution (`docker-registry serve`) on a free loopback port with
its own storage folder, so a test may tamper with what it stores on disk. With `token=True`
it asks for bearer tokens, which a small token server in this process issues (JWTs signed
with a throwaway ECDSA key whose certificate the registry trusts), after checking a Basic
login: the same exchange as Docker Hub, GHCR or Harbor.
"""

from __future__ import annotations

import base64
import datetime
import gzip
import http.server
import io
import json
import shutil
import subprocess
import tarfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops_mlops.integrations.registry import (
    DOCKER_MANIFEST,
    Descriptor,
    Registry,
    sha256_digest,
)
from tests.image_setup import REGISTRY, needs
from tests.integration.server_helpers import free_port

SHARED = REGISTRY  # the shared registry .ci/run starts
USER, PASSWORD = "robot", "s3cret-pass"
SERVICE, ISSUER = "test-registry", "test-token-issuer"


@dataclass
class Private:
    host: str
    storage: Path
    token_requests: list[str] = field(default_factory=list)

    def blob_file(self, repository: str, digest: str) -> Path:
        hexdigest = digest.split(":", 1)[1]
        return self.storage / "docker/registry/v2/blobs/sha256" / hexdigest[:2] / hexdigest / "data"


@contextmanager
def private_registry(folder: Path, token: bool = False) -> Iterator[Private]:
    """`docker-registry serve` on a free loopback port; stopped by its PID afterwards. Without
    the binary the test is skipped (failed under MLOPS_REQUIRE_DOCKER=1)."""
    if shutil.which("docker-registry") is None:
        needs(["docker-registry (.ci/run installs it)"])
    port = free_port()
    storage = folder / "storage"
    private = Private(f"127.0.0.1:{port}", storage)
    config = {
        "version": 0.1,
        "log": {"level": "error"},
        "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }
    server = None
    if token:
        server, cert = _token_server(folder, private)
        config["auth"] = {
            "token": {
                "realm": f"http://127.0.0.1:{server.server_address[1]}/token",
                "service": SERVICE,
                "issuer": ISSUER,
                "rootcertbundle": str(cert),
            }
        }
    (folder / "config.yml").write_text(json.dumps(config))  # JSON is YAML
    log = (folder / "registry.log").open("wb")
    process = subprocess.Popen(
        ["docker-registry", "serve", str(folder / "config.yml")], stdout=log, stderr=log
    )
    try:
        _wait(private.host, process, folder / "registry.log")
        yield private
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
        if server is not None:
            server.shutdown()


def _wait(host: str, process: subprocess.Popen[bytes], log: Path) -> None:
    end = time.monotonic() + 30
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(f"http://{host}/v2/", timeout=2)
            return
        except urllib.error.HTTPError:
            return  # 401: up, and asking for a token
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise TimeoutError(f"docker-registry on {host} did not answer")


def _token_server(folder: Path, private: Private) -> tuple[http.server.ThreadingHTTPServer, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = folder / "token.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    def issue(scope: str) -> str:
        access = []
        if scope:
            kind, repository, actions = scope.split(":")
            access = [{"type": kind, "name": repository, "actions": actions.split(",")}]
        stamp = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "x5c": [x5c]}
        claims = {
            "iss": ISSUER,
            "sub": USER,
            "aud": SERVICE,
            "exp": stamp + 300,
            "nbf": stamp - 60,
            "iat": stamp,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return f"{signing_input}.{b64(signature)}"

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = dict(
                part.split("=", 1) for part in self.path.partition("?")[2].split("&") if part
            )
            scope = urllib.parse.unquote(query.get("scope", ""))
            expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            private.token_requests.append(scope)
            if self.headers.get("Authorization") != expected:
                self.send_response(401)
                self.end_headers()
                return
            body = json.dumps({"token": issue(scope)}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, cert_path


def layer(files: dict[str, bytes]) -> bytes:
    """A gzip-compressed image layer holding `files` (path -> bytes)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def push_image(
    registry: Registry,
    repository: str,
    tag: str,
    layers: list[dict[str, bytes]],
    labels: dict[str, str] | None = None,
) -> Descriptor:
    """A small single-platform image, pushed through the distribution API; its descriptor."""
    blobs = [layer(files) for files in layers]
    diff_ids = [sha256_digest(gzip.decompress(blob)) for blob in blobs]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": labels or {}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    config_descriptor = registry.push_blob(
        repository, json.dumps(config).encode(), "application/vnd.docker.container.image.v1+json"
    )
    layer_descriptors = [
        registry.push_blob(repository, blob, "application/vnd.docker.image.rootfs.diff.tar.gzip")
        for blob in blobs
    ]
    manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": config_descriptor.to_json(),
        "layers": [d.to_json() for d in layer_descriptors],
    }
    pushed, _ = registry.push_manifest(
        repository, json.dumps(manifest).encode(), DOCKER_MANIFEST, tag=tag
    )
    return pushed

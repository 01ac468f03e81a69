"""Data in object storage (`s3://`, `gs://`, `az://`, `https://`), read through fsspec.

Credentials come from each store's standard environment (AWS_*, GOOGLE_APPLICATION_CREDENTIALS,
AZURE_STORAGE_*), never from the spec, and never appear in a message. Objects are read once,
in blocks, and hashed as the bytes go by: memory stays bounded by the block size whatever
the object's size.
"""

from __future__ import annotations

import hashlib
import io
import re
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import IO, Any

from gitops_mlops import data_url
from gitops_mlops.errors import MlopsError

BLOCK = 8 * 2**20  # bytes per request: the most an open object holds in memory
CONNECT_TIMEOUT = 10  # seconds
READ_TIMEOUT = 60
ATTEMPTS = 3
_SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|KEY|SAS|CREDENTIAL", re.IGNORECASE)


# The stores' own variables: credentials, endpoints, regions, profiles.
STORE_VARIABLES = ("AWS_", "GOOGLE_", "AZURE_")


@dataclass(frozen=True)
class StorageSettings:
    """The object stores' environment, resolved once by the command that reads data and
    passed down: nothing below it reads this process's environment."""

    variables: Mapping[str, str]

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StorageSettings:
        found = {k: v for k, v in env.items() if k.startswith(STORE_VARIABLES)}
        return cls(MappingProxyType(found))


class StorageError(MlopsError):
    """An object could not be read; the message has the URL, never a credential."""


class HashingReader(io.RawIOBase):
    """Reads a file object through, hashing and counting every byte as it goes by."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        count = len(data)
        buffer[:count] = data
        self.sha256.update(data)
        self.size += count
        return count


@dataclass(frozen=True)
class Store:
    """How to reach one URL's store: the fsspec filesystem options, resolved once."""

    url: str
    protocol: str
    options: Mapping[str, Any]
    secrets: tuple[str, ...]  # values to keep out of messages

    @classmethod
    def for_url(cls, url: str, settings: StorageSettings) -> Store:
        env = settings.variables
        protocol = url.partition("://")[0].lower()
        if protocol not in data_url.SCHEMES:
            raise StorageError(f"{data_url.display(url)}: {data_url.problem(url)}")
        secrets = tuple(v for k, v in env.items() if _SECRET_NAME.search(k) and len(v) >= 6)
        return cls(url, protocol, _options(protocol, env), secrets)

    def say(self, text: str) -> str:
        """`text` with every credential we know of blanked out."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def _options(protocol: str, env: Mapping[str, str]) -> dict[str, Any]:
    if protocol == "s3":
        options: dict[str, Any] = {
            "config_kwargs": {
                "connect_timeout": CONNECT_TIMEOUT,
                "read_timeout": READ_TIMEOUT,
                "retries": {"max_attempts": ATTEMPTS, "mode": "standard"},
            },
        }
        client: dict[str, Any] = {}
        if env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL"):
            client["endpoint_url"] = env.get("AWS_ENDPOINT_URL_S3") or env["AWS_ENDPOINT_URL"]
        if env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"):
            client["region_name"] = env.get("AWS_REGION") or env["AWS_DEFAULT_REGION"]
        options["client_kwargs"] = client
        # Explicit keys from the mapping we were given; without them botocore's own chain
        # (profiles, web identity, instance roles) applies.
        if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
            options["key"] = env["AWS_ACCESS_KEY_ID"]
            options["secret"] = env["AWS_SECRET_ACCESS_KEY"]
            if env.get("AWS_SESSION_TOKEN"):
                options["token"] = env["AWS_SESSION_TOKEN"]
        return options
    if protocol == "https":
        import aiohttp

        timeout = aiohttp.ClientTimeout(sock_connect=CONNECT_TIMEOUT, sock_read=READ_TIMEOUT)
        return {"client_kwargs": {"timeout": timeout}}
    return {}  # gcsfs and adlfs read their standard environment themselves


def _filesystem(store: Store) -> tuple[Any, str]:
    scheme = data_url.SCHEMES[store.protocol]
    try:
        import fsspec

        fs = fsspec.filesystem(store.protocol, **store.options)
    except ImportError:
        raise StorageError(
            f"reading {scheme.name}:// URLs needs {scheme.package}: "
            f"pip install 'gitops-mlops[{scheme.extra}]'"
        ) from None
    path = store.url if store.protocol == "https" else store.url.partition("://")[2]
    return fs, path


@contextmanager
def translated(store: Store) -> Iterator[None]:
    """Turn the store's errors (raised here or by a parser reading our stream) into a
    StorageError with the URL and what to do."""
    scheme = data_url.SCHEMES[store.protocol]
    shown = data_url.display(store.url)
    try:
        yield
    except FileNotFoundError as err:
        cause = err.__cause__
        if store.protocol == "https" and cause is not None and _status(cause) != 404:
            # fsspec's HTTP files say "not found" for every failure (TLS, DNS, refused).
            raise StorageError(f"{shown}: cannot read it: {_first_line(store, cause)}") from None
        where = "(the server answers 404)"
        if store.protocol != "https":
            where = "(or its bucket does not exist)"
        raise StorageError(f"{shown}: no such object {where}") from None
    except PermissionError as err:
        raise StorageError(
            f"{shown}: access denied ({_first_line(store, err)}); check the credentials in "
            f"the environment ({scheme.credentials})"
        ) from None
    except (OSError, TimeoutError, ConnectionError) as err:
        raise StorageError(f"{shown}: cannot read it: {_first_line(store, err)}") from None
    except Exception as err:
        # botocore, aiohttp and the fsspec implementations raise their own error types;
        # a parser's own ValueError is not theirs, and is left to the caller.
        if type(err).__module__.split(".")[0] in {
            "botocore",
            "aiobotocore",
            "aiohttp",
            "s3fs",
            "gcsfs",
            "adlfs",
            "azure",
            "google",
            "fsspec",
        }:
            raise StorageError(f"{shown}: cannot read it: {_first_line(store, err)}") from None
        raise


def _status(err: BaseException) -> int | None:
    status = getattr(err, "status", None)
    return status if isinstance(status, int) else None


def _first_line(store: Store, err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return store.say(text)[:300]


@contextmanager
def stream(store: Store) -> Iterator[tuple[IO[bytes], HashingReader]]:
    """The object as a buffered stream to parse from start to end, and the reader that hashes
    it (its digest is complete once the stream has been read to the end)."""
    with translated(store):
        fs, path = _filesystem(store)
        with fs.open(path, "rb", block_size=BLOCK, cache_type="readahead") as raw:
            reader = HashingReader(raw)
            yield io.BufferedReader(reader, buffer_size=2**20), reader


@contextmanager
def spooled(store: Store) -> Iterator[tuple[IO[bytes], str]]:
    """The object copied once into a temporary file (for formats that seek, like Parquet),
    hashed on the way; the file and the sha256 of its bytes."""
    with tempfile.TemporaryFile() as copy, stream(store) as (source, reader):
        while chunk := source.read(BLOCK):
            copy.write(chunk)
        copy.seek(0)
        yield copy, reader.sha256.hexdigest()


@contextmanager
def random_access(store: Store) -> Iterator[IO[bytes]]:
    """The object opened for ranged reads: a Parquet schema reads only the footer."""
    with translated(store):
        fs, path = _filesystem(store)
        with fs.open(path, "rb", block_size=2**16, cache_type="bytes") as handle:
            yield handle


def head(store: Store, limit: int = 2**16) -> bytes:
    """The object's first `limit` bytes (a CSV header), with one ranged read."""
    with translated(store):
        fs, path = _filesystem(store)
        with fs.open(path, "rb", block_size=limit, cache_type="none") as handle:
            data: bytes = handle.read(limit)
            return data

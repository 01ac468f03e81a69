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
from gitops_mlops.integrations import waits

BLOCK = 8 * 2**20  # bytes per request: the most an open object holds in memory
CONNECT_TIMEOUT = 10.0  # seconds
READ_TIMEOUT = 60.0  # seconds without a byte, per read
READ_TIMEOUT_ENV = "MLOPS_STORAGE_READ_TIMEOUT"
ATTEMPTS = 3  # botocore's attempts per S3 request (its "standard" retry mode)
# botocore's standard mode waits a random time below 1 s, then 2 s, between attempts.
BACKOFF = 3.0
_SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|KEY|SAS|CREDENTIAL", re.IGNORECASE)


# The stores' own variables: credentials, endpoints, regions, profiles.
STORE_VARIABLES = ("AWS_", "GOOGLE_", "AZURE_")


@dataclass(frozen=True)
class StorageSettings:
    """The object stores' environment, resolved once by the command that reads data and
    passed down: nothing below it reads this process's environment."""

    variables: Mapping[str, str]
    read_timeout: float = READ_TIMEOUT

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StorageSettings:
        found = {k: v for k, v in env.items() if k.startswith(STORE_VARIABLES)}
        timeout = waits.seconds(env, READ_TIMEOUT_ENV, READ_TIMEOUT, StorageError)
        return cls(MappingProxyType(found), timeout)

    @property
    def worst_wait(self) -> float:
        """The longest one S3 request can wait on a store that stops answering: every
        attempt connects and then waits a read timeout (s3fs's own retries are off)."""
        return ATTEMPTS * (CONNECT_TIMEOUT + self.read_timeout) + BACKOFF


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
        return cls(url, protocol, _options(protocol, settings), secrets)

    def say(self, text: str) -> str:
        """`text` with every credential we know of blanked out, and every URL in it shown
        without its query or user info (a pre-signed URL's signature is a credential)."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return data_url.scrub(text)


def _options(protocol: str, settings: StorageSettings) -> dict[str, Any]:
    env = settings.variables
    if protocol == "s3":
        options: dict[str, Any] = {
            "config_kwargs": {
                "connect_timeout": CONNECT_TIMEOUT,
                "read_timeout": settings.read_timeout,
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

        timeout = aiohttp.ClientTimeout(
            sock_connect=CONNECT_TIMEOUT, sock_read=settings.read_timeout
        )
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
    if store.protocol == "s3":
        # s3fs retries a failed request 5 times (with its own backoff) around botocore's
        # attempts: 5 x 3 x 60 s for each of the HEAD and the GET of a store that accepts
        # connections and never answers. botocore's attempts are the retries we configure.
        # (An attribute, not an option of the constructor; fsspec may hand back a cached
        # instance, which gets the same value.)
        fs.retries = 1
    # The bucket stores take the key itself; the URL's path is percent-encoded.
    path = store.url if store.protocol == "https" else data_url.key(store.url)
    return fs, path


@contextmanager
def translated(store: Store) -> Iterator[None]:
    """Turn the store's errors (raised here or by a parser reading our stream) into a
    StorageError with the URL and what to do."""
    shown = data_url.display(store.url)
    try:
        yield
    except FileNotFoundError as err:
        cause = err.__cause__
        if store.protocol == "https" and cause is not None and _status(cause) != 404:
            # fsspec's HTTP files say "not found" for every failure (TLS, DNS, refused).
            raise _failure(store, cause) from None
        where = "(the server answers 404)"
        if store.protocol != "https":
            where = "(or its bucket does not exist)"
        raise StorageError(f"{shown}: no such object {where}") from None
    except PermissionError as err:
        raise _denied(store, err) from None
    except (OSError, TimeoutError, ConnectionError) as err:
        raise _failure(store, err) from None
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
            raise _failure(store, err) from None
        raise


def _failure(store: Store, err: BaseException) -> StorageError:
    shown = data_url.display(store.url)
    if _status(err) in (401, 403):
        return _denied(store, err)
    if any(t.__name__ in _NO_CREDENTIALS for t in type(err).__mro__):
        scheme = data_url.SCHEMES[store.protocol]
        return StorageError(
            f"{shown}: no credentials found; set them in the environment ({scheme.credentials})"
        )
    return StorageError(f"{shown}: cannot read it: {_first_line(store, err)}")


# botocore's errors for credentials that are absent or incomplete.
_NO_CREDENTIALS = frozenset({"NoCredentialsError", "PartialCredentialsError"})


def _denied(store: Store, err: BaseException) -> StorageError:
    shown = data_url.display(store.url)
    if store.protocol == "https":
        # No credentials of ours go to an https server: the URL itself grants access.
        return StorageError(
            f"{shown}: access denied ({_first_line(store, err)}); the URL must be readable "
            "as it is (a pre-signed URL may have expired)"
        )
    scheme = data_url.SCHEMES[store.protocol]
    return StorageError(
        f"{shown}: access denied ({_first_line(store, err)}); check the credentials in "
        f"the environment ({scheme.credentials})"
    )


def _status(err: BaseException) -> int | None:
    status = getattr(err, "status", None)
    return status if isinstance(status, int) else None


def _first_line(store: Store, err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return store.say(text)[:300]


def _sequential(fs: Any, path: str, protocol: str, block_size: int, cache_type: str) -> Any:
    """The object opened to be read from its start. Over https it is one plain GET streamed
    in (`block_size=0`): a server that ignores `Range` (most static file servers) answers
    it, and it is the read a parser needs anyway. The stores take ranged reads of
    `block_size` bytes."""
    if protocol == "https":
        return fs.open(path, "rb", block_size=0)
    return fs.open(path, "rb", block_size=block_size, cache_type=cache_type)


@contextmanager
def stream(store: Store) -> Iterator[tuple[IO[bytes], HashingReader]]:
    """The object as a buffered stream to parse from start to end, and the reader that hashes
    it (its digest is complete once the stream has been read to the end)."""
    with translated(store):
        fs, path = _filesystem(store)
        with _sequential(fs, path, store.protocol, BLOCK, "readahead") as raw:
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
def from_start(store: Store) -> Iterator[IO[bytes]]:
    """The object opened to read its first bytes (a CSV header and a sample of rows): only
    what is read is fetched, in 64 KiB ranges from a store, as a stream over https (closed
    unread past what was needed)."""
    with translated(store):
        fs, path = _filesystem(store)
        with _sequential(fs, path, store.protocol, 2**16, "bytes") as handle:
            # Buffered: an HTTP stream may return fewer bytes than asked before its end.
            yield io.BufferedReader(handle, buffer_size=2**16)


@contextmanager
def random_access(store: Store) -> Iterator[IO[bytes]]:
    """The object opened for ranged reads: a Parquet schema reads only the footer."""
    with translated(store):
        fs, path = _filesystem(store)
        try:
            with fs.open(path, "rb", block_size=2**16, cache_type="bytes") as handle:
                yield handle
        except ValueError as err:
            if "range requests" not in str(err):
                raise
            # fsspec's HTTP file, on a server that answers a ranged GET with the whole body.
            raise StorageError(
                f"{data_url.display(store.url)}: the server does not answer range requests, "
                "which reading only a Parquet file's footer needs"
            ) from None

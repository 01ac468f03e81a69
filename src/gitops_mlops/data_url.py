"""Data paths that are URLs (`s3://`, `gs://`, `az://`, `https://`): syntax only.

Pure: validation uses it without touching the network or importing fsspec. Reading is
`integrations/storage.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import urlsplit, urlunsplit


@dataclass(frozen=True)
class Scheme:
    name: str
    package: str  # the fsspec implementation it needs
    extra: str  # pip install 'gitops-mlops[EXTRA]'
    credentials: str  # where credentials come from (for messages and the README)


# One entry per scheme we read; adding one is one row here plus a test.
SCHEMES: dict[str, Scheme] = {
    s.name: s
    for s in (
        Scheme("s3", "s3fs", "s3", "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, …"),
        Scheme("gs", "gcsfs", "gs", "GOOGLE_APPLICATION_CREDENTIALS, …"),
        Scheme("az", "adlfs", "az", "AZURE_STORAGE_ACCOUNT_NAME with a key or SAS, …"),
        Scheme("https", "aiohttp", "https", "none: the URL must be readable as it is"),
    )
}
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_BAD_CHARS = re.compile(r"[\s\x00-\x1f\x7f]")


def is_url(text: str) -> bool:
    return bool(_URL.match(text))


def problem(url: str) -> str | None:
    """What is wrong with the URL's syntax, or None. Never echoes credentials."""
    scheme = url.partition("://")[0].lower()
    if scheme not in SCHEMES:
        kinds = ", ".join(f"{s}://" for s in SCHEMES)
        return f"URL scheme {scheme + '://'!r} is not supported; use {kinds} or a local path"
    if _BAD_CHARS.search(url):
        return f"{display(url)!r} contains whitespace or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port raises on a malformed one
    except ValueError as err:
        return f"{display(url)!r} is not a valid URL ({err})"
    if "@" in parts.netloc:
        return (
            f"{display(url)!r} has credentials in it; remove them and set them in the "
            f"environment ({SCHEMES[scheme].credentials})"
        )
    if not parts.hostname:
        return f"{url!r} names no {'host' if scheme == 'https' else 'bucket or container'}"
    if scheme != "https" and (parts.query or parts.fragment):
        return f"{display(url)!r} has a query or fragment; give the object's plain URL"
    if not parts.path.strip("/") or parts.path.endswith("/"):
        return f"{display(url)!r} names no object; give the URL of one CSV or Parquet file"
    return None


def display(url: str) -> str:
    """The URL without user info, query or fragment: safe to print (pre-signed URLs carry
    their signature in the query)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.partition("://")[0] + "://…"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def suffix(url: str) -> str:
    """The object name's extension (`.parquet`), for telling the format."""
    return PurePosixPath(urlsplit(url).path).suffix.lower()

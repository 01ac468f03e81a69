"""Data paths that are URLs (`s3://`, `gs://`, `az://`, `https://`): syntax only.

Pure: validation uses it without touching the network or importing fsspec. Reading is
`integrations/storage.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit, urlunsplit


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
# A percent sign that does not start an escape: the key would not be the one meant.
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# The stores' own naming rules for buckets and containers (checked without the network, so
# a typo fails in `mlops validate` instead of as "no such object" after a round trip).
_BUCKET_RULES: dict[str, tuple[re.Pattern[str], str]] = {
    "s3": (
        re.compile(r"^(?!\d+\.\d+\.\d+\.\d+$)(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"),
        "3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a "
        "letter or digit, no '..', not an IP address",
    ),
    "gs": (
        re.compile(r"^(?!.*\.\.)[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$"),
        "3 to 222 lowercase letters, digits, dots, hyphens and underscores, starting and "
        "ending with a letter or digit, no '..'",
    ),
    "az": (
        re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$"),
        "3 to 63 lowercase letters, digits and single hyphens, starting and ending with a "
        "letter or digit",
    ),
}
# Any URL inside a library's error text (aiohttp puts the requested URL, query included,
# into its messages): replaced by its display form.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>()]+")


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
        kind = "host" if scheme == "https" else "bucket or container"
        return f"{display(url)!r} names no {kind}"
    if scheme != "https" and (parts.query or parts.fragment):
        return f"{display(url)!r} has a query or fragment; give the object's plain URL"
    if scheme in _BUCKET_RULES:
        rule, words = _BUCKET_RULES[scheme]
        if not rule.match(parts.netloc):
            return f"{display(url)!r}: {parts.netloc!r} is not a valid bucket name ({words})"
    if not parts.path.strip("/") or parts.path.endswith("/"):
        return f"{display(url)!r} names no object; give the URL of one CSV or Parquet file"
    if any(segment in (".", "..") for segment in parts.path.split("/")):
        return f"{display(url)!r} has a '.' or '..' segment in its path; give the object's own path"
    if _BAD_ESCAPE.search(parts.path):
        return (
            f"{display(url)!r} has a '%' that starts no escape; the path is percent-encoded "
            "(a space is %20, a '%' is %25)"
        )
    return None


def key(url: str) -> str:
    """The object's key in its bucket or container (`s3://b/a%20b.csv` -> `b/a b.csv`):
    the path is percent-decoded, as in any URL, so that keys with spaces can be named."""
    return unquote(url.partition("://")[2])


def shown(location: str) -> str:
    """A data path as every message, report and card shows it: a URL through `display`
    (no credentials, no pre-signed query), a repository path as written."""
    return display(location) if is_url(location) else location


def scrub(text: str) -> str:
    """A library's message with every URL in it shown through `display`: aiohttp, for one,
    quotes the URL it requested, a pre-signed signature included."""
    return _URL_IN_TEXT.sub(lambda found: display(found.group(0)), text)


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

"""URL syntax checks for data paths: no network, never an echoed credential."""

from __future__ import annotations

import pytest

from gitops_mlops import data_url


@pytest.mark.parametrize("scheme", sorted(data_url.SCHEMES))
def test_every_scheme_accepts_an_object_url(scheme: str) -> None:
    entry = data_url.SCHEMES[scheme]
    assert entry.name == scheme and entry.package and entry.extra and entry.credentials
    url = f"{scheme}://bucket-1/folder/train.parquet"
    assert data_url.is_url(url)
    assert data_url.problem(url) is None
    assert data_url.suffix(url) == ".parquet"


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://host/d.csv", "'http://' is not supported"),
        ("file:///etc/passwd", "'file://' is not supported"),
        ("s3://bucket/", "names no object"),
        ("s3://bucket/dir/", "names no object"),
        ("s3:///d.csv", "names no bucket"),
        ("https:///d.csv", "names no host"),
        ("s3://bucket/d.csv?versionId=1", "has a query or fragment"),
        ("s3://bucket/a b.csv", "whitespace or control characters"),
        ("s3://bucket/a\x00.csv", "whitespace or control characters"),
        ("https://host:99999/d.csv", "is not a valid URL"),
    ],
)
def test_malformed_urls_say_what_is_wrong(url: str, fragment: str) -> None:
    found = data_url.problem(url)
    assert found is not None and fragment in found, found


def test_credentials_in_the_url_are_refused_and_never_echoed() -> None:
    found = data_url.problem("https://user:hunter2@host/d.csv")
    assert found is not None and "credentials" in found
    assert "hunter2" not in found and "user" not in found


def test_display_drops_user_info_and_a_presigned_query() -> None:
    url = "https://u:p@host/d.csv?X-Amz-Signature=deadbeef#x"
    assert data_url.display(url) == "https://host/d.csv"
    assert data_url.problem("https://host/d.csv?X-Amz-Signature=deadbeef") is None


@pytest.mark.parametrize("path", ["data/train.csv", "C:\\data\\x.csv", "./s3:/x", "s3:bucket"])
def test_local_paths_are_not_urls(path: str) -> None:
    assert not data_url.is_url(path)

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
        # The stores' naming rules for buckets (and containers): a port, capitals, `_`, `!`.
        ("s3://data:123/x.csv", "not a valid bucket name"),
        ("s3://Data_Bad!/x.csv", "not a valid bucket name"),
        ("s3://ab/x.csv", "not a valid bucket name"),
        ("s3://a..b/x.csv", "not a valid bucket name"),
        ("s3://192.168.0.1/x.csv", "not a valid bucket name"),
        ("s3://../x.csv", "not a valid bucket name"),
        ("az://my--container/x.csv", "not a valid bucket name"),
        ("gs://-bucket/x.csv", "not a valid bucket name"),
        # A path that climbs out of where it says, or is not the key it looks like.
        ("s3://data/../x.csv", "'..' segment"),
        ("s3://data/a/./x.csv", "'..' segment"),
        ("https://host/a/../x.csv", "'..' segment"),
        ("s3://data/100%.csv", "a '%' that starts no escape"),
    ],
)
def test_malformed_urls_say_what_is_wrong(url: str, fragment: str) -> None:
    found = data_url.problem(url)
    assert found is not None and fragment in found, found


def test_valid_bucket_names_pass() -> None:
    for url in ("s3://my.bucket-1/x.csv", "gs://my_bucket/x.csv", "az://container-1/x.csv"):
        assert data_url.problem(url) is None, url


def test_a_key_is_percent_decoded() -> None:
    """`s3://b/a%20b.csv` names the key `a b.csv` (a raw space is refused as whitespace)."""
    assert data_url.problem("s3://data/weird%20key/a%20b.csv") is None
    assert data_url.key("s3://data/weird%20key/a%20b.csv") == "data/weird key/a b.csv"
    assert data_url.key("s3://data/100%25.csv") == "data/100%.csv"


def test_no_message_echoes_a_query() -> None:
    """Every branch shows the URL through display(), including "names no host"."""
    for url in ("https:///x.csv?sig=SECRETSIG", "https://host/../x.csv?sig=SECRETSIG"):
        found = data_url.problem(url)
        assert found is not None and "SECRETSIG" not in found, found


def test_scrub_shows_every_url_in_a_library_message_without_its_query() -> None:
    text = (
        "403, message='Forbidden', "
        "url='https://h:1/f.csv?X-Amz-Signature=SIG1&X-Amz-Credential=AKIA' (https://u:pw@h/x?a=b)"
    )
    assert data_url.scrub(text) == (
        "403, message='Forbidden', url='https://h:1/f.csv' (https://h/x)"
    )


def test_shown_leaves_a_repository_path_as_written() -> None:
    assert data_url.shown("data/train.csv?x") == "data/train.csv?x"
    assert data_url.shown("https://h/d.csv?sig=1") == "https://h/d.csv"


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

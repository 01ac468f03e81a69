"""Pinning keeps each file's bytes (CRLF, BOM) and never pairs a digest with another name."""

from __future__ import annotations

import pytest

from gitops_mlops.manifests import Image, ManifestError, check_repository, in_style_of, update
from gitops_mlops.spec.model import Target

IMAGE = Image("localhost:5123/acme/iris", "sha256:" + "c" * 64, "v1")


def digest_target(path: str = "image.digest", value: str = "digest") -> Target:
    return Target("values.yaml", "yaml_path", path, value)  # type: ignore[arg-type]


@pytest.mark.parametrize("bom", ["", "\ufeff"])
def test_an_inserted_line_ends_like_the_file_lines(bom: str) -> None:
    text = bom + "images:\r\n  - name: app  # keep me\r\n    newName: old\r\n"
    target = Target("k.yaml", "kustomize_image", "app")
    pinned = update(text, target, IMAGE)
    assert pinned == (
        bom + "images:\r\n  - name: app  # keep me\r\n    newName: localhost:5123/acme/iris\r\n"
        "    digest: sha256:" + "c" * 64 + "\r\n"
    )


def test_a_crlf_file_without_a_final_newline_gets_crlf() -> None:
    text = "kind: X\r\nimages:\r\n  - name: app\r\n    newName: old"
    pinned = update(text, Target("k.yaml", "kustomize_image", "app"), IMAGE)
    assert pinned.endswith("newName: localhost:5123/acme/iris\r\n    digest: sha256:" + "c" * 64)
    assert "\n" not in pinned.replace("\r\n", "")


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        (None, "a: 1\nb: 2\n"),
        ("x: 0\n", "a: 1\nb: 2\n"),
        ("x: 0\r\n", "a: 1\r\nb: 2\r\n"),
        ("\ufeffx: 0\r\n", "\ufeffa: 1\r\nb: 2\r\n"),
        ("\ufeffx: 0\n", "\ufeffa: 1\nb: 2\n"),
    ],
)
def test_a_rewritten_file_keeps_the_style_of_the_one_it_replaces(
    original: str | None, expected: str
) -> None:
    assert in_style_of("a: 1\nb: 2\n", original) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "image:\n  repository: localhost:5000/acme/iris\n  digest: x\n",
            "values.yaml:2:15: image.repository names 'localhost:5000/acme/iris', but the "
            "image pushed is localhost:5123/acme/iris; pinning its digest at image.digest "
            "would run it under another repository's name. To fix, add the target "
            "{file: values.yaml, yaml_path: image.repository, value: repository}",
        ),
        (
            "image:\n  registry: localhost:5000\n  repository: acme/iris\n  digest: x\n",
            "image.repository names 'localhost:5000/acme/iris'",
        ),
        (
            "image:\n  registry: ghcr.io\n  digest: x\n",
            "image.registry names 'ghcr.io'",
        ),
        (
            "image:\n  image: localhost:5000/acme/iris:1.0\n  digest: x\n",
            "image.image names 'localhost:5000/acme/iris'",
        ),
        (  # a second document with the same path is checked too
            "image: {repository: localhost:5123/acme/iris, digest: x}\n---\n"
            "image: {repository: other/name, digest: x}\n",
            "values.yaml:3:21: image.repository names 'other/name'",
        ),
    ],
)
def test_a_digest_beside_another_repository_is_refused(text: str, message: str) -> None:
    with pytest.raises(ManifestError) as raised:
        check_repository(update(text, digest_target(), IMAGE), digest_target(), IMAGE)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    "text",
    [
        "image:\n  repository: localhost:5123/acme/iris\n  digest: x\n",
        "image:\n  registry: localhost:5123\n  repository: acme/iris\n  digest: x\n",
        "image:\n  registry: localhost:5123\n  digest: x\n",
        "image:\n  image: localhost:5123/acme/iris:old\n  digest: x\n",
        "image:\n  digest: x\n",  # no name beside it: nothing to disagree with
        "digest: x\nrepository: localhost:5123/acme/iris\n",
    ],
)
def test_a_digest_beside_the_same_repository_passes(text: str) -> None:
    path = "digest" if text.startswith("digest") else "image.digest"
    check_repository(update(text, digest_target(path), IMAGE), digest_target(path), IMAGE)


def test_a_tag_is_checked_like_a_digest_and_the_full_reference_is_not() -> None:
    text = "image:\n  repository: somewhere/else\n  tag: x\n"
    with pytest.raises(ManifestError, match=r"pinning its tag at image\.tag"):
        check_repository(text, digest_target("image.tag", "tag"), IMAGE)
    check_repository(text, digest_target("image.tag", "reference"), IMAGE)

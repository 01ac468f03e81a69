"""The one guarded YAML loader, as release records and GitOps manifests use it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gitops_mlops import guarded_yaml, manifests, release
from gitops_mlops.errors import MlopsError
from gitops_mlops.manifests import Image, ManifestError
from gitops_mlops.records.metrics import Estimate
from gitops_mlops.records.release import GateSummary, ReleaseRecord
from gitops_mlops.spec.model import Target
from tests.integration.helpers import alias_bomb_record

IMAGE = Image("localhost:5000/acme/iris", "sha256:" + "a" * 64, "0123456789ab")
DIGEST_TARGET = Target(
    file="values.yaml", kind="yaml_path", selector="image.digest", value="digest"
)


def bomb(levels: int, prefix: str = "") -> str:
    rows = [f"{prefix}l0: &l0 [" + ", ".join(["x"] * 10) + "]"]
    rows += [
        f"{prefix}l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, levels)
    ]
    return "\n".join(rows) + "\n"


def test_a_release_record_is_read_as_it_was_written() -> None:
    # safe_dump quotes for YAML 1.1 only: `1234567890e1` is written plain and must come back
    # as the same string (YAML 1.2 would read a float), like every other field.
    record = ReleaseRecord(
        version="1234567890e1",
        image="r@sha256:" + "c" * 64,
        environment="on",
        metrics={"accuracy": Estimate(0.5)},
        gate=GateSummary(passed=True),
    )
    assert ReleaseRecord.from_yaml(record.to_yaml(), "model-release.yaml") == record


def test_an_alias_bomb_in_a_release_record_is_refused_at_its_line() -> None:
    with pytest.raises(MlopsError) as caught:
        ReleaseRecord.from_yaml(alias_bomb_record("staging"), "apps/r.yaml")
    message = str(caught.value)
    assert message.startswith("apps/r.yaml:8:")
    assert "more than 100000 values after expanding aliases" in message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("kind: ModelRelease\nx: !!python/object/apply:os.system [ls]\n", "tag !!python/"),
        ("kind: ModelRelease\nx: !!python/name:os.system\n", "tag !!python/name"),
        ("kind: ModelRelease\nx: !Ref y\n", "tag !Ref"),
        ("kind: ModelRelease\nn: " + "9" * 5000 + "\n", "has 5000 characters"),
        ("kind: ModelRelease\n---\nkind: ModelRelease\n", "more than one YAML document"),
        ("kind: ModelRelease\nx: &a [*a]\n", "refers to the node that contains it"),
        ("kind: ModelRelease\nx: " + "[" * 100 + "]" * 100 + "\n", "nesting is too deep"),
        ("kind: ModelRelease\nx: [\n", "YAML syntax error"),
    ],
    ids=[
        "python-apply",
        "python-name",
        "custom",
        "huge-int",
        "two-docs",
        "recursive",
        "deep",
        "syntax",
    ],
)
def test_release_records_get_every_guard(text: str, fragment: str) -> None:
    with pytest.raises(MlopsError) as caught:
        ReleaseRecord.from_yaml(text, "r.yaml")
    assert fragment in str(caught.value)
    assert str(caught.value).startswith("r.yaml:")


def test_an_oversized_release_record_file_is_not_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "record.yaml"
    path.write_bytes(b"kind: ModelRelease\n#" + b"x" * (2 * 1024 * 1024))
    with pytest.raises(MlopsError, match="over 1048576 bytes"):
        release.read_record(path)


def test_a_manifest_alias_bomb_is_refused_before_anything_is_written() -> None:
    text = "image:\n  digest: old\n" + bomb(7, "")
    with pytest.raises(ManifestError) as caught:
        manifests.update(text, DIGEST_TARGET, IMAGE)
    assert "values.yaml:" in str(caught.value)
    assert "expanding exponentially" in str(caught.value)


def test_manifests_keep_their_freedoms() -> None:
    # Several documents, standard tags and ordinary aliases are fine in other people's files.
    text = (
        "defaults: &d {replicas: 2}\nimage:\n  digest: old\n  built: !!timestamp 2024-01-01\n"
        "copy: *d\n---\nkind: ConfigMap\n"
    )
    updated = manifests.update(text, DIGEST_TARGET, IMAGE)
    assert updated == text.replace("digest: old", f"digest: {IMAGE.digest}")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("image: {digest: old}\nx: !!python/object/apply:os.system [ls]\n", "tag !!python/"),
        ("image: {digest: old}\nx: !Custom y\n", "tag !Custom"),
        ("image: {digest: old}\nx: &a [*a]\n", "refers to the node that contains it"),
        ("image: {digest: old}\nx: " + "[" * 100 + "]" * 100 + "\n", "nesting is too deep"),
    ],
    ids=["python", "custom", "recursive", "deep"],
)
def test_manifests_get_the_guards(text: str, fragment: str) -> None:
    with pytest.raises(ManifestError) as caught:
        manifests.update(text, DIGEST_TARGET, IMAGE)
    assert str(caught.value).startswith("values.yaml:2:")
    assert fragment in str(caught.value)


def test_limits_are_parameters_of_the_one_loader() -> None:
    small = guarded_yaml.Limits(max_bytes=10)
    with pytest.raises(guarded_yaml.YamlError, match="limited to 10 bytes"):
        guarded_yaml.compose("a: 1234567890\n", limits=small)
    nodes = guarded_yaml.compose(bomb(3), yaml.SafeLoader, multi=True)
    assert len(nodes) == 1  # 1,000 values: under the limit
    with pytest.raises(guarded_yaml.YamlError, match="more than 999 values"):
        guarded_yaml.compose(bomb(3), limits=guarded_yaml.Limits(max_nodes=999))

"""Manifest updates change only the bytes of the values they pin (byte-level comparisons)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gitops_mlops.errors import SpecError
from gitops_mlops.manifests import UPDATERS, Image, ManifestError, plain_is_safe, update
from gitops_mlops.spec.model import Target
from gitops_mlops.spec.schema import schema
from gitops_mlops.stages.validate import load

CORPUS = Path(__file__).resolve().parent.parent / "manifests"
IMAGE = Image("localhost:5000/acme/iris-classifier", "sha256:" + "1" * 64, "58776e3cb416")


def target(file: str, **kind: str) -> Target:
    value = kind.pop("value", None)
    ((key, selector),) = kind.items()
    return Target(file=file, kind=key, selector=selector, value=value)  # type: ignore[arg-type]


CASES = {
    "kustomize-block": (target("k.yaml", kustomize_image="iris-classifier"), IMAGE),
    "kustomize-new-keys": (target("k.yaml", kustomize_image="iris-classifier"), IMAGE),
    "kustomize-flow": (target("k.yaml", kustomize_image="iris-classifier"), IMAGE),
    "helm-digest": (target("v.yaml", yaml_path="image.digest", value="digest"), IMAGE),
    "helm-empty-digest": (target("v.yaml", yaml_path="image.digest", value="digest"), IMAGE),
    "helm-tag-numeric": (
        target("v.yaml", yaml_path="image.tag", value="tag"),
        Image(IMAGE.repository, IMAGE.digest, "123456789012"),
    ),
    "deployment-multidoc": (target("d.yaml", container="server"), IMAGE),
    "cronjob": (target("c.yaml", container="server"), IMAGE),
    "yaml-path-index": (target("d.yaml", yaml_path="spec.template.spec.containers.0.image"), IMAGE),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_only_the_pinned_bytes_change(name: str) -> None:
    before = (CORPUS / f"{name}.before.yaml").read_text()
    after = (CORPUS / f"{name}.after.yaml").read_text()
    spec_target, image = CASES[name]
    assert update(before, spec_target, image) == after


@pytest.mark.parametrize("name", sorted(CASES))
def test_updating_twice_changes_nothing(name: str) -> None:
    spec_target, image = CASES[name]
    once = update((CORPUS / f"{name}.before.yaml").read_text(), spec_target, image)
    assert update(once, spec_target, image) == once


@pytest.mark.parametrize("name", sorted(CASES))
def test_results_still_parse_with_the_same_other_values(name: str) -> None:
    before = list(yaml.safe_load_all((CORPUS / f"{name}.before.yaml").read_text()))
    after = list(yaml.safe_load_all((CORPUS / f"{name}.after.yaml").read_text()))
    assert len(before) == len(after)
    assert str(after).count(IMAGE.digest) >= 1 or "123456789012" in str(after)


def test_type_ambiguous_values_keep_their_type_around_the_edit() -> None:
    after = yaml.safe_load((CORPUS / "helm-digest.after.yaml").read_text())
    assert after["image"]["tag"] == "1.20"
    assert after["feature"] == {
        "enabled": True,
        "mode": True,
    }  # untouched, still YAML 1.1 `yes`/`on`
    numeric = yaml.safe_load((CORPUS / "helm-tag-numeric.after.yaml").read_text())
    assert numeric["image"]["tag"] == "123456789012"  # quoted: a plain 123456789012 is a number


@pytest.mark.parametrize(
    ("value", "safe"),
    [
        ("sha256:abc", True),
        ("1.20", False),
        ("yes", False),
        ("on", False),
        ("0x1f", False),
        ("1e3", False),
        ("123456789012", False),
        ("58776e3cb416", True),
        ("ghcr.io/a/b@sha256:f", True),
        ("", False),
        (" lead", False),
        ("# not a comment", False),
    ],
)
def test_plain_is_safe(value: str, safe: bool) -> None:
    assert plain_is_safe(value) is safe


@pytest.mark.parametrize(
    ("text", "spec_target", "fragment"),
    [
        (
            "images: [{name: other}]\n",
            target("k.yaml", kustomize_image="iris"),
            "no `images:` entry",
        ),
        ("kind: Kustomization\n", target("k.yaml", kustomize_image="iris"), "no `images:` entry"),
        ("image: {repository: r}\n", target("v.yaml", yaml_path="image.digest"), "does not exist"),
        ("a: [1]\n", target("v.yaml", yaml_path="a.3"), "does not exist"),
        ("image: {digest: {a: 1}}\n", target("v.yaml", yaml_path="image.digest"), "a single value"),
        (
            "image:\n  digest: |\n    x\n",
            target("v.yaml", yaml_path="image.digest"),
            "block scalars",
        ),
        ("kind: Deployment\nspec: {}\n", target("d.yaml", container="server"), "no workload"),
        ("a: [\n", target("v.yaml", yaml_path="a"), "v.yaml:2:1: YAML syntax error"),
    ],
)
def test_targets_that_do_not_resolve(text: str, spec_target: Target, fragment: str) -> None:
    with pytest.raises(ManifestError, match=fragment):
        update(text, spec_target, IMAGE)


def test_every_updater_kind_has_a_before_and_after_case() -> None:
    assert {t.kind for t, _ in CASES.values()} == set(UPDATERS)
    for name in CASES:
        for side in ("before", "after"):
            assert (CORPUS / f"{name}.{side}.yaml").is_file()


def test_the_schema_offers_exactly_the_registered_kinds() -> None:
    definition = schema()["$defs"]["target"]
    assert definition["oneOf"] == [{"required": [key]} for key in UPDATERS]
    properties = definition["properties"]
    assert set(properties) == {"file", "value", *UPDATERS}
    for key, updater in UPDATERS.items():
        assert properties[key]["description"] == updater.description, key
        assert key in definition["description"], key


@pytest.mark.parametrize("kind", sorted(UPDATERS))
def test_every_kind_reaches_the_updater_from_a_spec(kind: str, tmp_path: Path) -> None:
    """A spec target of each kind becomes a Target the registry handles; `value:` is
    accepted exactly where the updater takes one."""
    for with_value in (False, True):
        extra = ", value: digest" if with_value else ""
        spec = tmp_path / f"{kind}-{with_value}.yaml"
        spec.write_text(
            "apiVersion: mlops/v1\nkind: ModelPipeline\nmetadata: {name: m}\n"
            "task: classification\ndata: {train: {builtin: iris}}\n"
            "model: {estimator: sklearn.svm.SVC}\n"
            "promotion:\n  environments:\n    - name: staging\n      targets:\n"
            f"        - {{file: a.yaml, {kind}: x{extra}}}\n"
        )
        if with_value and not UPDATERS[kind].takes_value:
            with pytest.raises(SpecError, match="value applies to"):
                load(spec)
            continue
        built = load(spec)
        assert built.promotion is not None
        (got,) = built.promotion.environments[0].targets
        assert (got.kind, got.selector) == (kind, "x")
        assert got.value == ("digest" if with_value else None)

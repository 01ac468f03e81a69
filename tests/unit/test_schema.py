"""The published schema: valid 2020-12, documented, shipped, and in step with the typed model."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from gitops_mlops.spec import model
from gitops_mlops.spec.document import load_file
from gitops_mlops.spec.schema import schema, schema_text
from tests.conftest import ROOT, SPECS, run_cli


def properties(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every named property schema in the schema, with its path."""
    if isinstance(node, dict):
        for name, sub in node.get("properties", {}).items():
            yield f"{path}.{name}", sub
        for key, value in node.items():
            yield from properties(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from properties(item, f"{path}[{i}]")


def test_schema_is_valid_against_the_2020_12_metaschema() -> None:
    assert schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema())


def test_every_property_has_a_description() -> None:
    undocumented = [path for path, sub in properties(schema()) if not sub.get("description")]
    assert undocumented == []


def test_every_object_forbids_unknown_keys() -> None:
    def objects(node: Any) -> Iterator[dict[str, Any]]:
        if isinstance(node, dict):
            if "properties" in node:
                yield node
            for value in node.values():
                yield from objects(value)
        elif isinstance(node, list):
            for item in node:
                yield from objects(item)

    assert all(obj.get("additionalProperties") is False for obj in objects(schema()))


def test_top_level_schema_file_is_the_one_shipped_in_the_package() -> None:
    assert (ROOT / "schemas" / "mlops.v1.schema.json").read_text() == schema_text()


def test_mlops_schema_prints_it() -> None:
    result = run_cli("schema")
    assert result.code == 0
    assert json.loads(result.out) == schema()


def spec_blocks_in_readme() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)
    return [b for b in blocks if "apiVersion: mlops/v1" in b]


def example_specs() -> list[Path]:
    return sorted(ROOT.glob("examples/**/mlops.yaml")) + sorted((SPECS / "valid").glob("*.yaml"))


def test_readme_has_an_example_spec() -> None:
    assert spec_blocks_in_readme()


@pytest.mark.parametrize("index", range(len(spec_blocks_in_readme())))
def test_readme_examples_validate(index: int, tmp_path: Path) -> None:
    spec = tmp_path / "mlops.yaml"
    spec.write_text(spec_blocks_in_readme()[index])
    jsonschema.validate(load_file(spec).data, schema())
    result = run_cli("validate", str(spec))
    assert result.code == 0, result.out


@pytest.mark.parametrize("path", example_specs(), ids=lambda p: p.parent.name + "/" + p.stem)
def test_examples_validate_against_the_bare_schema(path: Path) -> None:
    jsonschema.validate(load_file(path).data, schema())


def test_schema_defaults_are_the_typed_models_defaults() -> None:
    """A minimal spec built into the typed model carries the defaults the schema documents."""
    spec = model.build(
        {
            "task": "classification",
            "metadata": {"name": "x"},
            "data": {"train": {"builtin": "iris"}},
            "model": {"estimator": "sklearn.svm.SVC", "search": {"space": {"C": [1]}}},
            "container": {"image": "x"},
            "promotion": {"environments": [{"name": "e"}]},
        },
        Path("mlops.yaml"),
    )
    props = schema()["properties"]
    sections: dict[str, tuple[Any, dict[str, Any]]] = {
        "split": (spec.data.split, props["data"]["properties"]["split"]["properties"]),
        "model": (spec.model, props["model"]["properties"]),
        "search": (spec.model.search, props["model"]["properties"]["search"]["properties"]),
        "gate": (spec.gate, props["gate"]["properties"]),
        "container": (spec.container, props["container"]["properties"]),
        "promotion": (spec.promotion, props["promotion"]["properties"]),
        "environment": (
            spec.promotion.environments[0] if spec.promotion else None,
            schema()["$defs"]["environment"]["properties"],
        ),
    }
    confidence = props["evaluation"]["properties"]["confidence"]["anyOf"][1]["properties"]
    latency = props["evaluation"]["properties"]["latency"]["anyOf"][1]["properties"]
    sections["confidence"] = (spec.evaluation.confidence, confidence)
    sections["latency"] = (spec.evaluation.latency, latency)
    checked = 0
    for name, (built, documented) in sections.items():
        names = {f.name for f in fields(built)}
        for key, sub in documented.items():
            if "default" in sub and key in names:
                assert getattr(built, key) == type(getattr(built, key))(sub["default"]), (name, key)
                checked += 1
    assert checked >= 15

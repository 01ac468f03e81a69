"""The published JSON Schema, and its errors turned into located, actionable messages."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import jsonschema

from gitops_mlops.errors import Diagnostic
from gitops_mlops.spec.document import Document, PathKey

SCHEMA_RESOURCE = "mlops.v1.schema.json"

_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "number": "a number",
    "integer": "an integer",
    "boolean": "true or false",
    "null": "null",
}


def schema_text() -> str:
    return (resources.files("gitops_mlops") / "schemas" / SCHEMA_RESOURCE).read_text("utf-8")


@cache
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(schema_text())
    return loaded


@cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema())


@dataclass(frozen=True)
class Checked:
    """The schema's verdict on a document: what is wrong, and which parts it concerns."""

    diagnostics: list[Diagnostic]
    # Parts with a schema error (a missing required key counts as its own path): semantic
    # checks read everything else, so every problem of a file is reported in one pass.
    invalid: frozenset[PathKey]


def check(doc: Document) -> list[Diagnostic]:
    """Every schema violation in `doc`, each at the key or value it concerns."""
    return check_parts(doc).diagnostics


def check_parts(doc: Document) -> Checked:
    found: list[Diagnostic] = []
    invalid: set[PathKey] = set()
    for error in _validator().iter_errors(doc.data):
        found.extend(_diagnostics(doc, error, ()))
        invalid.update(_blamed(error))
    # A `required` error comes once per missing key, each naming every missing key.
    return Checked(list(dict.fromkeys(found)), frozenset(invalid))


def _blamed(error: jsonschema.ValidationError) -> Iterator[PathKey]:
    """The parts of the document an error makes unusable, mirroring `_diagnostics`."""
    path: PathKey = tuple(error.absolute_path)
    keyword = error.validator
    instance = _instance(error)
    if keyword == "additionalProperties":
        allowed = _subschema(error).get("properties", {})
        yield from ((*path, key) for key in instance if key not in allowed)
    elif keyword == "required":
        yield from ((*path, key) for key in _value(error) if key not in instance)
    elif keyword == "dependentRequired":
        for key, needs in _value(error).items():
            if key in instance:
                yield from ((*path, n) for n in needs if n not in instance)
    elif keyword in ("oneOf", "anyOf"):
        branches: list[dict[str, Any]] = _value(error)
        if all(set(b) == {"required"} for b in branches):
            return  # which of the keys is meant is unknown; each present one is still usable
        for index, branch in enumerate(branches):
            if _type_matches(branch, instance):
                for sub in error.context or []:
                    if sub.relative_schema_path and sub.relative_schema_path[0] == index:
                        yield from _blamed(sub)
                return
        yield path
    else:
        yield path


_USER_INFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s\"]*@")
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_ ()-]*$")


def display_path(path: PathKey) -> str:
    """`gate.thresholds[0].metric`; odd keys quoted (`params["a.b"]`) so the path stays one line."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not _PLAIN_KEY.match(part):
            text += f"[{json.dumps(part)}]"
        else:
            text += f".{part}" if text else part
    return text or "(top level)"


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _value(error: jsonschema.ValidationError) -> Any:
    """The keyword's value in the schema (jsonschema types it loosely)."""
    return error.validator_value


def _instance(error: jsonschema.ValidationError) -> Any:
    return error.instance


def _subschema(error: jsonschema.ValidationError) -> dict[str, Any]:
    return error.schema if isinstance(error.schema, dict) else {}


def _diagnostics(
    doc: Document, error: jsonschema.ValidationError, prefix: PathKey
) -> Iterator[Diagnostic]:
    path: PathKey = (*prefix, *error.absolute_path)
    keyword = error.validator
    if keyword == "additionalProperties":
        yield from _unknown_keys(doc, error, path)
        return
    if keyword in ("oneOf", "anyOf"):
        yield from _alternatives(doc, error, path)
        return
    at_key = keyword in ("required", "dependentRequired", "minProperties")
    loc = doc.key_location(path) if at_key else doc.value_location(path)
    if keyword == "required":  # name every missing key, not only the first
        where = display_path(path)
        for key in [k for k in _value(error) if k not in _instance(error)]:
            message = f"{where} is missing required key {key!r}"
            yield Diagnostic(doc.file, loc.line, loc.column, where, message)
        return
    yield Diagnostic(doc.file, loc.line, loc.column, display_path(path), _message(error, path))


def _unknown_keys(
    doc: Document, error: jsonschema.ValidationError, path: PathKey
) -> Iterator[Diagnostic]:
    allowed = sorted(_subschema(error).get("properties", {}))
    where = display_path(path)
    for key in _instance(error):
        if key in allowed:
            continue
        hint = did_you_mean(key, allowed) or f"; allowed keys: {', '.join(allowed)}"
        loc = doc.key_location((*path, key))
        yield Diagnostic(
            doc.file,
            loc.line,
            loc.column,
            display_path((*path, key)),
            f"unknown key {key!r} in {where}{hint}",
        )


def _alternatives(
    doc: Document, error: jsonschema.ValidationError, path: PathKey
) -> Iterator[Diagnostic]:
    branches: list[dict[str, Any]] = _value(error)
    loc = doc.key_location(path)
    where = display_path(path)
    if all(set(b) == {"required"} for b in branches):
        options = " | ".join(" + ".join(b["required"]) for b in branches)
        instance = _instance(error) if isinstance(_instance(error), dict) else {}
        matched = [b for b in branches if all(k in instance for k in b["required"])]
        if error.validator == "oneOf" and len(matched) > 1:
            message = f"{where} sets more than one of: {options}; keep only one"
        else:
            message = f"{where} needs one of: {options}"
        yield Diagnostic(doc.file, loc.line, loc.column, where, message)
        return
    # Alternatives of different types (e.g. `false` or a mapping): explain the branch whose
    # type matches the value, else say which types are accepted.
    for index, branch in enumerate(branches):
        if _type_matches(branch, _instance(error)):
            for sub in error.context or []:
                if sub.relative_schema_path and sub.relative_schema_path[0] == index:
                    # absolute_path of a sub-error already includes the parent's path.
                    yield from _diagnostics(doc, sub, ())
            return
    accepted = " or ".join(_describe(b) for b in branches)
    vloc = doc.value_location(path)
    yield Diagnostic(
        doc.file,
        vloc.line,
        vloc.column,
        where,
        f"{where} must be {accepted}, not {_show(_instance(error))}",
    )


def _type_matches(branch: dict[str, Any], value: Any) -> bool:
    if "const" in branch:
        return bool(branch["const"] == value and type(branch["const"]) is type(value))
    kind = branch.get("type")
    return kind == "object" and isinstance(value, dict)


def _describe(branch: dict[str, Any]) -> str:
    if "const" in branch:
        return json.dumps(branch["const"])
    return _TYPE_NAMES.get(str(branch.get("type")), "a value of another form")


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = json.dumps(value)
    if isinstance(value, str):
        # A URL's user info may be a password (tcp://user:pw@host:8786): never echoed.
        text = _USER_INFO.sub(r"\1***@", text)
    return text if len(text) <= 60 else text[:57] + "..."


def _message(error: jsonschema.ValidationError, path: PathKey) -> str:
    where = display_path(path)
    value = _value(error)
    instance = _instance(error)
    keyword = error.validator
    if keyword == "dependentRequired":
        pairs = [
            (k, [r for r in v if r not in instance]) for k, v in value.items() if k in instance
        ]
        key, needs = next((k, n) for k, n in pairs if n)
        return f"{key!r} in {where} needs {needs[0]!r} too"
    if keyword == "type":
        wanted: list[str] = value if isinstance(value, list) else [value]
        names = " or ".join(_TYPE_NAMES.get(t, t) for t in wanted)
        return f"{where} must be {names}, not {_show(instance)}"
    if keyword == "enum":
        options = ", ".join(json.dumps(v) for v in value)
        hint = (
            did_you_mean(instance, [v for v in value if isinstance(v, str)])
            if isinstance(instance, str)
            else ""
        )
        return f"{where} must be one of {options}, not {_show(instance)}{hint}"
    if keyword == "const":
        return f"{where} must be {json.dumps(value)}, not {_show(instance)}"
    if keyword == "pattern":
        description = _subschema(error).get("description", "")
        return f"{where} {_show(instance)} is not of the expected form. {description}".strip()
    bounds = {
        "minimum": ">=",
        "maximum": "<=",
        "exclusiveMinimum": ">",
        "exclusiveMaximum": "<",
    }
    if keyword in bounds:
        return f"{where} must be {bounds[keyword]} {value}, not {_show(instance)}"
    if keyword == "minItems":
        return f"{where} needs at least {value} item{'s' if value != 1 else ''}"
    if keyword == "uniqueItems":
        return f"{where} lists the same item more than once"
    if keyword == "minLength":
        return f"{where} must not be empty"
    if keyword == "maxLength":
        return f"{where} must be at most {value} characters long"
    if keyword == "minProperties":
        return f"{where} needs at least {value} entr{'ies' if value != 1 else 'y'}"
    return f"{where}: {error.message}"  # pragma: no cover - keywords the schema does not use

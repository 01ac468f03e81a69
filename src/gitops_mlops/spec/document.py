"""Load a spec into plain data while keeping the line and column of every node.

The text is read by the one guarded YAML loader (`gitops_mlops.guarded_yaml`: size, a single
document, depth, alias expansion, tags, numbers), with the YAML 1.2 core schema: `on`, `yes`,
`no` stay strings (GitHub's `on:` is the classic victim of YAML 1.1) and `1e3` is a float.
We then build the Python values ourselves, so that:
- every key and value keeps its location for error messages;
- duplicate keys, non-string keys and merge keys are errors, not silently accepted;
- an explicit tag that does not fit its value (`!!int abc`) is an error, not a crash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gitops_mlops import guarded_yaml
from gitops_mlops.guarded_yaml import CORE_PATTERNS, CORE_TAGS, CoreLoader

__all__ = ["CoreLoader", "Document", "DocumentError", "Location", "load_bytes", "load_file"]

MAX_FILE_BYTES = guarded_yaml.MAX_BYTES
MAX_NODES = guarded_yaml.MAX_NODES
MAX_DEPTH = guarded_yaml.MAX_DEPTH
# Spec integers feed numpy and scikit-learn (seeds, counts, ports): 64 bits at most.
MAX_INT = 2**63 - 1

PathKey = tuple[str | int, ...]
DocumentError = guarded_yaml.YamlError  # a file that cannot be turned into a document


@dataclass(frozen=True)
class Location:
    line: int
    column: int


@dataclass
class Document:
    """Plain data plus where each part of it came from."""

    file: str
    data: dict[str, Any]
    digest: str = ""  # sha256 of the file's bytes
    values: dict[PathKey, Location] = field(default_factory=dict)
    keys: dict[PathKey, Location] = field(default_factory=dict)

    def value_location(self, path: PathKey) -> Location:
        """Where the value at `path` starts; falls back to the nearest ancestor."""
        for prefix in _prefixes(path):
            if prefix in self.values:
                return self.values[prefix]
        return Location(1, 1)

    def key_location(self, path: PathKey) -> Location:
        """Where the key naming `path` is; falls back to the value location."""
        if path in self.keys:
            return self.keys[path]
        return self.value_location(path)


def _prefixes(path: PathKey) -> Iterator[PathKey]:
    for end in range(len(path), -1, -1):
        yield path[:end]


def load_file(path: Path, display: str | None = None) -> Document:
    """Read and parse `path`; raise DocumentError with a location on any problem."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise DocumentError("file not found; pass the path of an mlops.yaml") from None
    except OSError as err:
        raise DocumentError(f"cannot read the file: {err.strerror}") from None
    if not path.is_file():
        raise DocumentError("not a regular file; pass the path of an mlops.yaml")
    if size > MAX_FILE_BYTES:
        raise DocumentError(
            f"file is {size} bytes; specs are limited to {MAX_FILE_BYTES} bytes (1 MiB)"
        )
    return load_bytes(path.read_bytes(), display or str(path))


def load_bytes(raw: bytes, file: str) -> Document:
    text = guarded_yaml.decode(raw)
    if not text.strip():
        raise DocumentError("file is empty; a spec starts with `apiVersion: mlops/v1`")
    nodes = guarded_yaml.compose(text, CoreLoader, tags=CORE_TAGS)
    if not nodes:
        raise DocumentError("file holds no YAML document (only comments or `---`)")
    root = nodes[0]
    doc = Document(file=file, data={}, digest=hashlib.sha256(raw).hexdigest())
    data = _Builder(doc).build(root, ())
    if not isinstance(data, dict):
        mark = root.start_mark
        raise DocumentError(
            f"the top level must be a mapping (apiVersion: ..., kind: ...), not a {_kind(data)}",
            mark.line + 1,
            mark.column + 1,
        )
    doc.data = data
    return doc


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "list"
    if value is None:
        return "null value"
    return type(value).__name__ if not isinstance(value, str) else "string"


class _Builder:
    """Turns a guarded node graph into dicts, lists and scalars, recording locations."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc

    def build(self, node: yaml.Node, path: PathKey) -> Any:
        mark = node.start_mark
        self.doc.values.setdefault(path, Location(mark.line + 1, mark.column + 1))
        if isinstance(node, yaml.ScalarNode):
            return _scalar(node)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        assert isinstance(node, yaml.MappingNode)
        return self._mapping(node, path)

    def _mapping(self, node: yaml.MappingNode, path: PathKey) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            kmark = key_node.start_mark
            if not isinstance(key_node, yaml.ScalarNode):
                raise DocumentError(
                    "mapping keys must be plain names, not lists or mappings",
                    kmark.line + 1,
                    kmark.column + 1,
                )
            key = str(key_node.value)
            if key == "<<" and not key_node.style:  # a plain `<<`, not the quoted string "<<"
                raise DocumentError(
                    "merge keys (<<) are not supported; write the keys out",
                    kmark.line + 1,
                    kmark.column + 1,
                )
            here = Location(kmark.line + 1, kmark.column + 1)
            key_path = (*path, key)
            if key in result:
                first = self.doc.keys[key_path]
                raise DocumentError(
                    f"duplicate key {key!r} (first defined at line {first.line}); "
                    "remove one of them",
                    here.line,
                    here.column,
                )
            self.doc.keys[key_path] = here
            result[key] = self.build(value_node, key_path)
        return result


def _scalar(node: yaml.ScalarNode) -> Any:
    """The value of a scalar; the guard has already refused every tag outside the core."""
    text: str = node.value
    tag = node.tag
    if tag == "tag:yaml.org,2002:str":
        return text
    pattern = CORE_PATTERNS[tag]
    if not pattern.match(text) and not (tag.endswith(":null") and text == ""):
        name = tag.rpartition(":")[2]
        mark = node.start_mark
        raise DocumentError(
            f"{text!r} is not a YAML {name} (tag !!{name}); remove the tag or fix the value",
            mark.line + 1,
            mark.column + 1,
        )
    if tag == "tag:yaml.org,2002:null":
        return None
    if tag == "tag:yaml.org,2002:bool":
        return text.lower() == "true"
    if tag == "tag:yaml.org,2002:int":
        number = int(text, 0) if text.startswith(("0x", "0o")) else int(text)
        if abs(number) > MAX_INT:
            mark = node.start_mark
            raise DocumentError(
                f"integer {text} is too large; spec integers must lie between -{MAX_INT} and "
                f"{MAX_INT}",
                mark.line + 1,
                mark.column + 1,
            )
        return number
    # Python spells YAML's `.inf` / `.nan` without the dot.
    return float(text.lower().replace(".inf", "inf").replace(".nan", "nan"))

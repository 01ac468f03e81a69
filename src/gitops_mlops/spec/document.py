"""Load a YAML file into plain data while keeping the line and column of every node.

PyYAML composes a node graph (with marks) and we build the Python values ourselves, so that:
- every key and value keeps its location for error messages;
- duplicate keys, non-string keys, tags and multi-document streams are errors, not silently
  accepted;
- alias expansion is bounded (a "billion laughs" file fails fast instead of eating memory);
- scalars follow the YAML 1.2 core schema: `on`, `yes`, `no` stay strings (GitHub's `on:`
  is the classic victim of YAML 1.1) and `1e3` is a float.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

MAX_FILE_BYTES = 1024 * 1024
MAX_NODES = 100_000
MAX_DEPTH = 64

PathKey = tuple[str | int, ...]

try:  # libyaml parses several times faster; the pure-Python parser behaves the same.
    _BaseLoader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _BaseLoader = yaml.SafeLoader


class _CoreLoader(_BaseLoader):  # type: ignore[valid-type,misc]
    """A loader whose implicit types are those of the YAML 1.2 core schema."""

    # Own table (PyYAML copies the parent's on first add); filled below.
    yaml_implicit_resolvers: ClassVar[dict[str, list[tuple[str, re.Pattern[str]]]]] = {}


_CORE_RESOLVERS = [
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", "~nN"),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+0123456789.",
    ),
]
for _tag, _pattern, _first in _CORE_RESOLVERS:
    _CoreLoader.add_implicit_resolver(_tag, re.compile(_pattern), list(_first))
CoreLoader = _CoreLoader  # for other modules that need YAML 1.2 scalars (a SafeLoader subclass)
# The empty plain scalar resolves through the `None` first-character slot.
_CoreLoader.yaml_implicit_resolvers.setdefault("", []).append(
    ("tag:yaml.org,2002:null", re.compile(r"^$"))
)


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


class DocumentError(Exception):
    """A file that cannot be turned into a document, at a location."""

    def __init__(self, message: str, line: int = 1, column: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


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
    text = _decode(raw)
    if not text.strip():
        raise DocumentError("file is empty; a spec starts with `apiVersion: mlops/v1`")
    root = _compose(text)
    if root is None:
        raise DocumentError("file holds no YAML document (only comments or `---`)")
    doc = Document(file=file, data={}, digest=hashlib.sha256(raw).hexdigest())
    builder = _Builder(doc)
    data = builder.build(root, (), 0)
    if not isinstance(data, dict):
        mark = root.start_mark
        raise DocumentError(
            f"the top level must be a mapping (apiVersion: ..., kind: ...), not a {_kind(data)}",
            mark.line + 1,
            mark.column + 1,
        )
    doc.data = data
    return doc


def _decode(raw: bytes) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError as err:
            raise DocumentError(f"invalid UTF-16 ({err.reason})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        raise DocumentError(
            f"byte 0x{raw[err.start]:02x} is not valid UTF-8; save the file as UTF-8",
            line,
            column,
        ) from None


def _compose(text: str) -> yaml.Node | None:
    loader = _CoreLoader(text)
    try:
        return loader.get_single_node()  # type: ignore[no-any-return]
    except yaml.MarkedYAMLError as err:
        raise _syntax_error(err, text) from None
    except yaml.reader.ReaderError as err:
        before = text[: err.position]
        line, column = before.count("\n") + 1, err.position - (before.rfind("\n") + 1) + 1
        code = err.character if isinstance(err.character, int) else ord(err.character)
        raise DocumentError(
            f"control character U+{code:04X} is not allowed in YAML; remove it", line, column
        ) from None
    except yaml.YAMLError as err:  # pragma: no cover - unmarked errors are rare
        raise DocumentError(f"YAML error: {err}") from None
    except RecursionError:
        raise DocumentError(f"nesting is too deep (more than {MAX_DEPTH} levels)") from None
    finally:
        loader.dispose()


def _syntax_error(err: yaml.MarkedYAMLError, text: str) -> DocumentError:
    mark = err.problem_mark or err.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = err.problem or "invalid YAML"
    lines = text.splitlines()
    if line <= len(lines) and lines[line - 1][column - 1 : column] == "\t":
        return DocumentError(
            "tab character where YAML expects spaces; indent with spaces", line, column
        )
    if "expected a single document" in f"{err.context} {problem}":
        return DocumentError(
            "more than one YAML document (`---`); a spec is one document", line, column
        )
    if "found undefined alias" in problem:
        return DocumentError(
            "an alias (*name) refers to no anchor; define the &name anchor before using it",
            line,
            column,
        )
    context = f" {err.context}" if err.context else ""
    return DocumentError(f"YAML syntax error:{context} {problem}".strip(), line, column)


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "list"
    if value is None:
        return "null value"
    return type(value).__name__ if not isinstance(value, str) else "string"


class _Builder:
    """Turns composed nodes into dicts, lists and scalars, recording locations."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.nodes = 0
        self.active: set[int] = set()

    def build(self, node: yaml.Node, path: PathKey, depth: int) -> Any:
        mark = node.start_mark
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise DocumentError(
                f"more than {MAX_NODES} values after expanding aliases; "
                "an alias (*name) may be expanding exponentially",
                mark.line + 1,
                mark.column + 1,
            )
        if depth > MAX_DEPTH:
            raise DocumentError(
                f"nesting is too deep (more than {MAX_DEPTH} levels)",
                mark.line + 1,
                mark.column + 1,
            )
        self.doc.values.setdefault(path, Location(mark.line + 1, mark.column + 1))
        if id(node) in self.active:
            raise DocumentError(
                "an alias refers to the node that contains it (recursive YAML)",
                mark.line + 1,
                mark.column + 1,
            )
        if isinstance(node, yaml.ScalarNode):
            return _scalar(node)
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [
                    self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)
                ]
            assert isinstance(node, yaml.MappingNode)
            return self._mapping(node, path, depth)
        finally:
            self.active.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: PathKey, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        _check_tag(node, "tag:yaml.org,2002:map")
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
            result[key] = self.build(value_node, key_path, depth + 1)
        return result


def _check_tag(node: yaml.Node, expected: str) -> None:
    if node.tag != expected:
        mark = node.start_mark
        raise DocumentError(
            f"YAML tag {node.tag!r} is not supported; remove it", mark.line + 1, mark.column + 1
        )


def _scalar(node: yaml.ScalarNode) -> Any:
    text: str = node.value
    tag = node.tag
    if tag == "tag:yaml.org,2002:str":
        return text
    if tag == "tag:yaml.org,2002:null":
        return None
    if tag == "tag:yaml.org,2002:bool":
        return text.lower() == "true"
    if tag == "tag:yaml.org,2002:int":
        return int(text, 0) if text.startswith(("0x", "0o")) else int(text)
    if tag == "tag:yaml.org,2002:float":
        # Python spells YAML's `.inf` / `.nan` without the dot.
        return float(text.lower().replace(".inf", "inf").replace(".nan", "nan"))
    _check_tag(node, "tag:yaml.org,2002:str")
    return text  # pragma: no cover - _check_tag raised

"""The one YAML loader for every document the tool reads: specs, release records, manifests.

YAML lets a small file describe a huge or hostile document, so every document is composed
(parsed into a node graph, which shares aliased nodes and so stays as small as the text) and
checked before anything is built from it:

- size: the text is at most `Limits.max_bytes`;
- one document, unless the caller reads a multi-document stream (GitOps manifests);
- depth: at most `Limits.max_depth` levels of nesting;
- alias expansion: at most `Limits.max_nodes` values once every alias (*name) is expanded, so
  a "billion laughs" file fails in milliseconds instead of eating gigabytes;
- no alias that refers to the node containing it (a recursive document);
- tags: only the standard `tag:yaml.org,2002:` ones a safe loader knows (never `!!python/…`
  nor a custom tag), on scalars, lists and mappings alike;
- numbers that Python cannot convert (a 5000-digit integer) are located errors.

Specs need the YAML 1.2 core schema (`on`, `yes`, `no` stay strings): `CoreLoader`. Release
records are written by PyYAML's `safe_dump`, which quotes for YAML 1.1, so they are read back
with YAML 1.1 resolution (`SafeLoader`), as written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

import yaml

MAX_BYTES = 1024 * 1024
MAX_NODES = 100_000
MAX_DEPTH = 64
MAX_INT_CHARACTERS = 32

try:  # libyaml parses several times faster; the pure-Python parser behaves the same.
    _FastSafeLoader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _FastSafeLoader = yaml.SafeLoader

SafeLoader = _FastSafeLoader  # YAML 1.1 resolution, as PyYAML's safe_dump writes


class _CoreLoader(_FastSafeLoader):  # type: ignore[valid-type,misc]
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
CORE_PATTERNS = {tag: re.compile(pattern) for tag, pattern, _ in _CORE_RESOLVERS}
for _tag, _pattern, _first in _CORE_RESOLVERS:
    _CoreLoader.add_implicit_resolver(_tag, CORE_PATTERNS[_tag], list(_first))
# The empty plain scalar resolves through the `None` first-character slot.
_CoreLoader.yaml_implicit_resolvers.setdefault("", []).append(
    ("tag:yaml.org,2002:null", re.compile(r"^$"))
)
CoreLoader = _CoreLoader  # a SafeLoader subclass with YAML 1.2 scalars

_STANDARD = "tag:yaml.org,2002:"
# What a safe loader constructs without running code: the core types, plus YAML 1.1's
# timestamps, binary, sets and ordered maps (a hand-edited release record may hold a date).
SAFE_TAGS = frozenset(
    _STANDARD + name
    for name in (
        "str",
        "int",
        "float",
        "bool",
        "null",
        "seq",
        "map",
        "timestamp",
        "binary",
        "set",
        "omap",
        "pairs",
        "merge",
        "value",
    )
)
CORE_TAGS = frozenset(_STANDARD + n for n in ("str", "int", "float", "bool", "null", "seq", "map"))


@dataclass(frozen=True)
class Limits:
    max_bytes: int = MAX_BYTES
    max_nodes: int = MAX_NODES
    max_depth: int = MAX_DEPTH


class YamlError(Exception):
    """A document that cannot be read safely, at a 1-based line and column."""

    def __init__(self, message: str, line: int = 1, column: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column

    def located(self, source: str) -> str:
        return f"{source}:{self.line}:{self.column}: {self.message}"


def _at(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def decode(raw: bytes) -> str:
    """The text of a file: UTF-8 (with or without BOM) or UTF-16 with a BOM."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError as err:
            raise YamlError(f"invalid UTF-16 ({err.reason})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        raise YamlError(
            f"byte 0x{raw[err.start]:02x} is not valid UTF-8; save the file as UTF-8",
            line,
            column,
        ) from None


def compose(
    text: str,
    loader: type[yaml.SafeLoader] = CoreLoader,
    *,
    multi: bool = False,
    limits: Limits = Limits(),
    tags: frozenset[str] = SAFE_TAGS,
) -> list[yaml.Node]:
    """The checked node graph of each document in `text` (one, unless `multi`)."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limits.max_bytes:
        raise YamlError(
            f"the file is {size} bytes; YAML documents are limited to {limits.max_bytes} bytes"
        )
    nodes = _parse(text, loader, multi)
    guard = _Guard(limits, tags)
    for node in nodes:
        guard.walk(node)
    return nodes


def load(
    text: str,
    loader: type[yaml.SafeLoader] = SafeLoader,
    *,
    limits: Limits = Limits(),
) -> Any:
    """Plain data (dicts, lists, scalars) of a single-document `text`; None when it is empty.

    Aliased values are shared, not copied; the guard has bounded how far they expand.
    """
    nodes = compose(text, loader, limits=limits)
    if not nodes:
        return None
    builder = loader("")
    try:
        return builder.construct_document(nodes[0])
    except yaml.constructor.ConstructorError as err:
        mark = err.problem_mark or err.context_mark
        where = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise YamlError(f"cannot read the value: {err.problem}", *where) from None
    finally:
        builder.dispose()


def _parse(text: str, loader: type[yaml.SafeLoader], multi: bool) -> list[yaml.Node]:
    parser = loader(text)
    try:
        if not multi:
            single = parser.get_single_node()
            return [] if single is None else [single]
        found: list[yaml.Node] = []
        while parser.check_node():
            node = parser.get_node()
            if node is not None:
                found.append(node)
        return found
    except yaml.MarkedYAMLError as err:
        raise _syntax_error(err, text) from None
    except yaml.reader.ReaderError as err:
        before = text[: err.position]
        line, column = before.count("\n") + 1, err.position - (before.rfind("\n") + 1) + 1
        code = err.character if isinstance(err.character, int) else ord(err.character)
        raise YamlError(
            f"control character U+{code:04X} is not allowed in YAML; remove it", line, column
        ) from None
    except yaml.YAMLError as err:  # pragma: no cover - unmarked errors are rare
        raise YamlError(f"YAML error: {err}") from None
    except RecursionError:
        raise YamlError(f"nesting is too deep (more than {MAX_DEPTH} levels)") from None
    finally:
        parser.dispose()


def _syntax_error(err: yaml.MarkedYAMLError, text: str) -> YamlError:
    mark = err.problem_mark or err.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = err.problem or "invalid YAML"
    lines = text.splitlines()
    if line <= len(lines) and lines[line - 1][column - 1 : column] == "\t":
        return YamlError(
            "tab character where YAML expects spaces; indent with spaces", line, column
        )
    if "expected a single document" in f"{err.context} {problem}":
        return YamlError("more than one YAML document (`---`); expected one document", line, column)
    if "found undefined alias" in problem:
        return YamlError(
            "an alias (*name) refers to no anchor; define the &name anchor before using it",
            line,
            column,
        )
    if "maximum nesting depth" in problem:
        return YamlError(f"nesting is too deep (more than {MAX_DEPTH} levels)", line, column)
    context = f" {err.context}" if err.context else ""
    return YamlError(f"YAML syntax error:{context} {problem}".strip(), line, column)


class _Guard:
    """Walks a node graph as if every alias were expanded, stopping at the first problem."""

    def __init__(self, limits: Limits, tags: frozenset[str]) -> None:
        self.limits = limits
        self.tags = tags
        self.seen = 0

    def walk(self, root: yaml.Node) -> None:
        # Iterative, with the chain of open collections kept to detect recursive aliases.
        stack: list[tuple[yaml.Node, int, tuple[int, ...]]] = [(root, 0, ())]
        while stack:
            node, depth, open_ids = stack.pop()
            self.seen += 1
            if self.seen > self.limits.max_nodes:
                raise YamlError(
                    f"more than {self.limits.max_nodes} values after expanding aliases; "
                    "an alias (*name) may be expanding exponentially",
                    *_at(node),
                )
            if depth > self.limits.max_depth:
                raise YamlError(
                    f"nesting is too deep (more than {self.limits.max_depth} levels)", *_at(node)
                )
            self._tag(node)
            if isinstance(node, yaml.ScalarNode):
                check_number(node)
                continue
            if id(node) in open_ids:
                raise YamlError(
                    "an alias refers to the node that contains it (recursive YAML)", *_at(node)
                )
            inside = (*open_ids, id(node))
            children: list[yaml.Node] = (
                list(node.value)
                if isinstance(node, yaml.SequenceNode)
                else [part for pair in node.value for part in pair]
            )
            stack.extend((child, depth + 1, inside) for child in reversed(children))

    def _tag(self, node: yaml.Node) -> None:
        if node.tag not in self.tags:
            raise YamlError(
                f"YAML tag {show_tag(node.tag)} is not supported; remove it", *_at(node)
            )


def show_tag(tag: str) -> str:
    """A tag as it is written: `!!python/object/apply:os.system`, `!Ref`."""
    return "!!" + tag[len(_STANDARD) :] if tag.startswith(_STANDARD) else tag


def check_number(node: yaml.ScalarNode) -> None:
    """Refuse integers too long to convert (Python stops at 4300 digits; nothing needs 33)."""
    if node.tag == _STANDARD + "int" and len(node.value) > MAX_INT_CHARACTERS:
        raise YamlError(
            f"integer {node.value[:12]}… has {len(node.value)} characters; "
            f"integers are limited to {MAX_INT_CHARACTERS}",
            *_at(node),
        )

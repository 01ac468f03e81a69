"""Hand-made skops files, as an attacker writes them: each tries to run code while loading."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

PROTOCOL = 2


def _json(value: Any) -> dict[str, Any]:
    return {
        "__class__": type(value).__name__,
        "__module__": "builtins",
        "__loader__": "JsonNode",
        "content": json.dumps(value),
        "is_json": True,
    }


def _tuple(*items: dict[str, Any]) -> dict[str, Any]:
    return {
        "__class__": "tuple",
        "__module__": "builtins",
        "__loader__": "TupleNode",
        "content": list(items),
    }


def _empty_dict() -> dict[str, Any]:
    return {
        "__class__": "dict",
        "__module__": "builtins",
        "__loader__": "DictNode",
        "content": {},
        "key_types": {
            "__class__": "list",
            "__module__": "builtins",
            "__loader__": "ListNode",
            "content": [],
        },
    }


def archive(schema: dict[str, Any], files: dict[str, bytes] | None = None) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        target.writestr("schema.json", json.dumps({**schema, "protocol": PROTOCOL}))
        for name, data in (files or {}).items():
            target.writestr(name, data)
    return out.getvalue()


def python_code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').write('the payload ran')"


def runstring(marker: Path) -> bytes:
    """numpy.testing._private.utils.runstring(code, {}) calls exec: the issue's exploit."""
    return archive(
        {
            "__class__": "runstring",
            "__module__": "numpy.testing._private.utils",
            "__loader__": "ConstructorFromReduceNode",
            "content": _tuple(_json(python_code(marker)), _empty_dict()),
        }
    )


def loss_call(module: str, name: str, *args: Any) -> bytes:
    """A LossNode: skops calls `module.name(*args)` to build it."""
    return archive(
        {
            "__class__": name,
            "__module__": module,
            "__loader__": "LossNode",
            "__reduce__": {"args": _tuple(*(_json(a) for a in args))},
            "content": _json(None),
        }
    )


def node(loader: str, module: str, name: str, **extra: Any) -> bytes:
    """A file whose root node is built by `loader` from `module.name`."""
    return archive({"__class__": name, "__module__": module, "__loader__": loader, **extra})


def method(module: str, name: str, func: str) -> bytes:
    owner = {"__class__": name, "__module__": module, "__loader__": "ObjectNode"}
    return node("MethodNode", module, name, content={"func": func, "obj": owner})


def deeply_nested(depth: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        target.writestr("schema.json", "[" * depth + "]" * depth)
    return out.getvalue()

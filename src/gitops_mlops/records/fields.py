"""Typed access to the fields of one JSON (or YAML) object, for the records' readers.

A field with the wrong type is an MlopsError naming the file and the field; a missing
optional field takes its default, so files written by older versions still read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeGuard, TypeVar

from gitops_mlops.errors import MlopsError


def kind_of(value: object) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


Choice = TypeVar("Choice", bound=str)


# True and False are ints in Python; in a record they are never a count or a score.
def _is_integer(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


class Fields:
    """One object of a record file: `source` names the file, `where` the object in it."""

    def __init__(self, raw: object, source: str, what: str, where: str = "") -> None:
        if not isinstance(raw, Mapping):
            place = f" at {where}" if where else ""
            raise MlopsError(f"{source}: {what}{place} must be a mapping, found {kind_of(raw)}")
        self.raw: Mapping[str, Any] = raw
        self.source = source
        self.what = what
        self.where = where

    def _name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def bad(self, key: str, expected: str) -> MlopsError:
        found = kind_of(self.raw.get(key))
        return MlopsError(
            f"{self.source}: {self.what} field {self._name(key)!r} must be {expected}, "
            f"found {found}; the file is damaged: write it again (rerun the stage)"
        )

    def has(self, key: str) -> bool:
        return self.raw.get(key) is not None

    def text(self, key: str, default: str = "", scalar: bool = False) -> str:
        """A string; with `scalar`, numbers are accepted as written (hand-edited YAML)."""
        value = self.raw.get(key)
        if value is None:
            return default
        if isinstance(value, str):
            return value
        if scalar and isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise self.bad(key, "a string")

    def opt_text(self, key: str, scalar: bool = False) -> str | None:
        return self.text(key, scalar=scalar) if self.has(key) else None

    def integer(self, key: str, default: int = 0) -> int:
        value = self.raw.get(key)
        if value is None:
            return default
        if _is_integer(value):
            return value
        raise self.bad(key, "an integer")

    def opt_integer(self, key: str) -> int | None:
        return self.integer(key) if self.has(key) else None

    def number(self, key: str, default: float = 0.0) -> float:
        value = self.opt_number(key)
        return default if value is None else value

    def opt_number(self, key: str) -> float | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if _is_number(value):
            return float(value)
        raise self.bad(key, "a number")

    def flag(self, key: str, default: bool = False) -> bool:
        value = self.raw.get(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        raise self.bad(key, "true or false")

    def opt_flag(self, key: str) -> bool | None:
        return self.flag(key) if self.has(key) else None

    def texts(self, key: str) -> tuple[str, ...]:
        value = self.raw.get(key)
        if value is None:
            return ()
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise self.bad(key, "a list of strings")

    def integers(self, key: str) -> tuple[int, ...]:
        value = self.raw.get(key)
        if value is None:
            return ()
        if isinstance(value, list) and all(_is_integer(v) for v in value):
            return tuple(value)
        raise self.bad(key, "a list of integers")

    def obj(self, key: str) -> Fields | None:
        """A nested object, or None when the field is missing or null."""
        value = self.raw.get(key)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise self.bad(key, "a mapping")
        return Fields(value, self.source, self.what, self._name(key))

    def objects(self, key: str) -> tuple[Fields, ...]:
        """A list of objects, each named by its index (`rows[2]`); () when missing or null."""
        value = self.raw.get(key)
        if value is None:
            return ()
        if not isinstance(value, list):
            raise self.bad(key, "a list")
        return tuple(
            Fields(item, self.source, self.what, f"{self._name(key)}[{i}]")
            for i, item in enumerate(value)
        )

    def one_of(self, key: str, choices: Sequence[Choice], default: str = "") -> Choice:
        """A string that must be one of `choices` (a missing field: `default`, checked too)."""
        value = self.text(key, default)
        if value not in choices:
            raise self.bad(key, f"one of {', '.join(choices)}")
        return choices[choices.index(value)]  # the choice itself, typed as one (a Literal)

    def table(self, key: str) -> dict[str, Any]:
        """A mapping of names to anything (each value read by the caller)."""
        value = self.raw.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise self.bad(key, "a mapping of names")
        return dict(value)

    def numbers_by_name(self, key: str) -> dict[str, float]:
        """A mapping of names to numbers (seconds, scores)."""
        return {k: float(v) for k, v in self._values(key, _is_number, "a number").items()}

    def integers_by_name(self, key: str) -> dict[str, int]:
        """A mapping of names to integers (counts)."""
        return dict(self._values(key, _is_integer, "an integer"))

    def _values(self, key: str, valid: Callable[[object], bool], expected: str) -> dict[str, Any]:
        table = self.table(key)
        for name, value in table.items():
            if not valid(value):
                raise Fields(table, self.source, self.what, self._name(key)).bad(name, expected)
        return table

    def at(self, key: str, name: str) -> Fields:
        """The object `name` inside the mapping `key` (for tables of objects)."""
        return Fields(self.table(key)[name], self.source, self.what, f"{self._name(key)}.{name}")

    def unknown(self, known: frozenset[str]) -> dict[str, Any]:
        """The fields this version does not know, in file order."""
        return {k: v for k, v in self.raw.items() if k not in known}

"""Repository-relative globs (`inputs:`): `*` within a folder, `**` across folders.

Pure: a pattern becomes a regular expression over POSIX paths relative to the repository
root, so planning and the run cache match the same files the same way, without touching disk.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache


class GlobError(ValueError):
    """A pattern that cannot be used; the message says why and what to write instead."""


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def problem(pattern: str) -> str | None:
    """Why `pattern` is not a usable repository-relative glob, or None when it is."""
    try:
        compile_glob(pattern)
    except GlobError as err:
        return str(err)
    return None


@lru_cache(maxsize=1024)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """The pattern as one regular expression; GlobError saying why it cannot be used.

    Validation and matching both come here, so a pattern `mlops validate` accepts is one
    `mlops plan` and the run cache can use.
    """
    _check_whole(pattern)
    out: list[str] = []
    parts = pattern.split("/")
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            # Any number of folders (zero included); at the end, anything below.
            out.append(".*" if last else "(?:[^/]+/)*")
            continue
        if "**" in part:
            raise GlobError(f"{pattern!r}: '**' must be a whole folder name, as in libs/**/x.py")
        out.append(_part(part, pattern) + ("" if last else "/"))
    return re.compile("".join(out) + r"\Z")


def _check_whole(pattern: str) -> None:
    if _CONTROL.search(pattern):
        raise GlobError(f"{pattern!r} has a control character (a tab, a newline…); remove it")
    if pattern.startswith(("/", "~")) or re.match(r"^[A-Za-z]:[\\/]", pattern):
        raise GlobError(f"{pattern!r} is absolute; give a glob relative to the repository root")
    if "\\" in pattern:
        raise GlobError(f"{pattern!r} has a backslash; separate folders with '/'")
    parts = pattern.split("/")
    if ".." in parts or "." in parts:
        raise GlobError(f"{pattern!r} has '.' or '..' parts; give a path inside the repository")
    if "" in parts:
        raise GlobError(
            f"{pattern!r} has an empty folder name ('//', or a trailing '/'); write dir/**"
        )


def _part(part: str, pattern: str) -> str:
    """One folder name's pattern: `*`, `?` and `[...]` classes as fnmatch reads them."""
    regex, i = "", 0
    while i < len(part):
        char = part[i]
        if char == "*":
            regex += "[^/]*"
        elif char == "?":
            regex += "[^/]"
        elif char == "[":
            body, i = _class(part, i, pattern)
            regex += body
            continue
        else:
            regex += re.escape(char)
        i += 1
    return regex


def _class(part: str, start: int, pattern: str) -> tuple[str, int]:
    """The `[...]` class at `start`: (its regular expression, the index after it).

    As in fnmatch: `!` first negates, a `]` first is a member, `a-z` is a range. An
    unclosed class and a range that runs backwards (which would match nothing) are refused.
    """
    i = start + 1
    negate = i < len(part) and part[i] == "!"
    i += negate
    members: list[str] = []
    first = True
    while i < len(part) and (first or part[i] != "]"):
        low, first = part[i], False
        if i + 2 < len(part) and part[i + 1] == "-" and part[i + 2] != "]":
            high = part[i + 2]
            if high < low:
                raise GlobError(
                    f"{pattern!r}: the range [{low}-{high}] runs backwards; write [{high}-{low}]"
                )
            members.append(f"{_in_class(low)}-{_in_class(high)}")
            i += 3
        else:
            members.append(_in_class(low))
            i += 1
    if i >= len(part):
        raise GlobError(
            f"{pattern!r} has an unclosed [...] class; close it, or write [[] for a '['"
        )
    # A class never matches '/': the pattern's folders are its '/'-separated parts.
    return f"[{'^/' if negate else ''}{''.join(members)}]", i + 1


def _in_class(char: str) -> str:
    return "\\" + char if char in "\\]^-[&~|" else char


def matches(pattern: str, path: str) -> bool:
    return compile_glob(pattern).match(path) is not None


def select(patterns: Iterable[str], paths: Iterable[str]) -> list[str]:
    """The paths (repository-relative, '/'-separated) any pattern matches, in order."""
    wanted = tuple(patterns)
    if not wanted:
        return []
    return list(_select(wanted, paths if isinstance(paths, tuple) else tuple(paths)))


@lru_cache(maxsize=64)
def _select(patterns: tuple[str, ...], paths: tuple[str, ...]) -> tuple[str, ...]:
    # One alternation, one match per path; many specs share the same `inputs:` and file list.
    either = re.compile("|".join(f"(?:{compile_glob(p).pattern})" for p in patterns))
    return tuple(p for p in paths if either.match(p))


def under(folder: str, path: str) -> bool:
    """Whether `path` is inside `folder` (both repository-relative; '' is the root)."""
    return folder in ("", ".") or path == folder or path.startswith(folder + "/")

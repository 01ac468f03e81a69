"""Repository-relative globs (`inputs:`): `*` within a folder, `**` across folders.

Pure: a pattern becomes a regular expression over POSIX paths relative to the repository
root, so planning and the run cache match the same files the same way, without touching disk.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import PurePosixPath


class GlobError(ValueError):
    """A pattern that cannot be used; the message says why and what to write instead."""


def problem(pattern: str) -> str | None:
    """Why `pattern` is not a usable repository-relative glob, or None when it is."""
    if pattern.startswith(("/", "~")) or re.match(r"^[A-Za-z]:[\\/]", pattern):
        return f"{pattern!r} is absolute; give a glob relative to the repository root"
    if "\\" in pattern:
        return f"{pattern!r} has a backslash; separate folders with '/'"
    parts = pattern.split("/")
    if ".." in parts or "." in parts:
        return f"{pattern!r} has '.' or '..' parts; give a path inside the repository"
    if "" in parts:
        return f"{pattern!r} has an empty folder name ('//', or a trailing '/'); write dir/**"
    for part in parts:
        if "**" in part and part != "**":
            return f"{pattern!r}: '**' must be a whole folder name, as in libs/**/x.py"
        if part.count("[") != part.count("]") or re.search(r"\[\]|\[!\]", part):
            return f"{pattern!r} has an unclosed or empty [...] class"
    return None


@lru_cache(maxsize=1024)
def compile_glob(pattern: str) -> re.Pattern[str]:
    reason = problem(pattern)
    if reason is not None:
        raise GlobError(reason)
    out: list[str] = []
    parts = pattern.split("/")
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            # Any number of folders (zero included); at the end, anything below.
            out.append(".*" if last else "(?:[^/]+/)*")
            continue
        out.append(_part(part) + ("" if last else "/"))
    return re.compile("".join(out) + r"\Z")


def _part(part: str) -> str:
    regex, i = "", 0
    while i < len(part):
        char = part[i]
        if char == "*":
            regex += "[^/]*"
        elif char == "?":
            regex += "[^/]"
        elif char == "[":
            end = part.index("]", i + 1)
            body = part[i + 1 : end]
            negate = body.startswith("!")
            body = re.sub(r"([\\\]^])", r"\\\1", body[1:] if negate else body)
            regex += f"[{'^' if negate else ''}{body}]"
            i = end
        else:
            regex += re.escape(char)
        i += 1
    return regex


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
    return folder in ("", ".") or PurePosixPath(path).is_relative_to(folder)

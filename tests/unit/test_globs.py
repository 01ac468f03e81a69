"""`inputs:` globs: a pattern validation accepts is one planning and the run cache can use.

Validation (`globs.problem`) and matching (`globs.compile_glob`) read a pattern the same way,
so a spec that `mlops validate` passes never makes `mlops plan` crash; and a pattern matches
exactly the paths the documented rules say, checked here against an independent
implementation of those rules (fnmatch per folder name, `**` for any number of folders).
"""

from __future__ import annotations

import fnmatch
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitops_mlops.globs import GlobError, compile_glob, matches, problem

PATTERN_CHARS = "ab*?[]!-^\\/.z]\t"
PATH_CHARS = "abz-.^]![/"


@given(st.text(alphabet=PATTERN_CHARS, min_size=1, max_size=9))
@settings(max_examples=3000, deadline=None)
def test_a_pattern_is_either_refused_with_a_reason_or_compiles(pattern: str) -> None:
    reason = problem(pattern)
    if reason is None:
        compile_glob(pattern)  # never raises for an accepted pattern
    else:
        assert pattern in reason or repr(pattern) in reason
        with pytest.raises(GlobError):
            compile_glob(pattern)


@pytest.mark.parametrize(
    "pattern",
    ["][", "a]b[", "[z-a]", "[b-a].csv", "x/[]", "[!]", "[", "a\tb", "a\nb", "a\x7fb", "a/b\x00"],
)
def test_patterns_that_used_to_pass_validation_and_crash_the_plan_are_refused(
    pattern: str,
) -> None:
    assert problem(pattern) is not None
    with pytest.raises(GlobError):
        compile_glob(pattern)


def _reference(pattern: str, path: str) -> bool:
    """The documented rules, implemented independently: `**` is any number of whole folder
    names (at the end: anything below), every other part is fnmatch on one name."""

    @cache
    def walk(i: int, j: int) -> bool:
        parts, names = pattern.split("/"), path.split("/")
        if i == len(parts):
            return j == len(names)
        if parts[i] == "**":
            if i == len(parts) - 1:
                return j < len(names)  # something below
            return any(walk(i + 1, k) for k in range(j, len(names) + 1))
        if j == len(names):
            return False
        return _one_name(parts[i], names[j]) and walk(i + 1, j + 1)

    return walk(0, 0)


def _one_name(part: str, name: str) -> bool:
    # fnmatch is close to our rules, but its `[` without `]` and its `[!]` differ, and it
    # treats `\` as literal: only patterns our validation accepts reach here.
    return fnmatch.fnmatchcase(name, part)


@given(
    st.text(alphabet="ab*?[]!-z/", min_size=1, max_size=8),
    st.text(alphabet=PATH_CHARS, min_size=1, max_size=8),
)
@settings(max_examples=3000, deadline=None)
def test_matching_follows_the_documented_rules(pattern: str, path: str) -> None:
    if problem(pattern) is not None or "" in path.split("/"):
        return
    assert matches(pattern, path) is _reference(pattern, path), (pattern, path)

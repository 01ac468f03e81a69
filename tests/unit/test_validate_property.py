"""Property: whatever mutation a valid spec suffers, validate answers 0 or 2, never crashes."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitops_mlops.spec.document import load_file
from tests.conftest import SPECS, run_cli

BASES = [load_file(p).data for p in sorted((SPECS / "valid").glob("*.yaml"))]
TEXTS = [p.read_text() for p in sorted((SPECS / "valid").glob("*.yaml"))]
# MLOPS_PROPERTY_EXAMPLES=3000 for a longer hunt than CI's.
SETTINGS = settings(
    max_examples=int(os.environ.get("MLOPS_PROPERTY_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
LOCATED = re.compile(r"^.+:\d+:\d+: .+$")

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["iris", "push", "accuracy", "sklearn.svm.SVC", "../x", "/abs", "staging"]),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def containers(node: Any) -> list[Any]:
    found = [node] if isinstance(node, dict | list) else []
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else []
    for child in children:
        found += containers(child)
    return found


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    import copy

    data = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 4))):
        target = draw(st.sampled_from(containers(data)))
        if isinstance(target, dict) and target:
            key = draw(st.sampled_from(sorted(target)))
            action = draw(st.sampled_from(["delete", "replace", "rename", "add"]))
            if action == "delete":
                del target[key]
            elif action == "replace":
                target[key] = draw(values)
            elif action == "rename":
                target[key[:-1] or "x"] = target.pop(key)
            else:
                target[draw(st.text(min_size=1, max_size=8))] = draw(values)
        elif isinstance(target, list) and target:
            index = draw(st.integers(0, len(target) - 1))
            target[index] = draw(values)
        elif isinstance(target, list):
            target.append(draw(values))
    return data


def assert_clean(result_code: int, out: str, err: str) -> None:
    assert result_code in (0, 2), out + err
    assert "Traceback" not in out + err and "internal error" not in err
    if result_code == 2:
        assert all(LOCATED.match(row) for row in out.splitlines()), out


@SETTINGS
@given(data=mutated())
def test_structural_mutations(data: Any, tmp_path_factory: Any) -> None:
    spec: Path = tmp_path_factory.mktemp("spec") / "mlops.yaml"
    spec.write_text(yaml.safe_dump(data, allow_unicode=True))
    result = run_cli("validate", str(spec))
    assert_clean(result.code, result.out, result.err)


@SETTINGS
@given(
    text=st.sampled_from(TEXTS),
    edits=st.lists(
        st.tuples(st.floats(0, 1), st.integers(0, 3), st.text(max_size=3)), min_size=1, max_size=4
    ),
)
def test_textual_mutations(
    text: str, edits: list[tuple[float, int, str]], tmp_path_factory: Any
) -> None:
    for where, cut, insert in edits:
        at = int(where * len(text))
        text = text[:at] + insert + text[at + cut :]
    spec: Path = tmp_path_factory.mktemp("spec") / "mlops.yaml"
    spec.write_text(text, encoding="utf-8", errors="surrogatepass")
    result = run_cli("validate", str(spec))
    assert_clean(result.code, result.out, result.err)

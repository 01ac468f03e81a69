"""What a test that needs a tool does without it (tests/required.py): skipped with words
that say what is missing and how to get it, or failed with the same words under the
tool's MLOPS_REQUIRE_* variable. One helper decides it for every such tool."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests import chromium, mermaid_cli

ROOT = Path(__file__).resolve().parents[2]


def outcome(required: str) -> type[BaseException]:
    return pytest.fail.Exception if required else pytest.skip.Exception


@pytest.mark.parametrize("required", ["", "1"])
def test_without_chromium(required: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHROMIUM", str(tmp_path / "no-chromium"))
    monkeypatch.setenv("MLOPS_REQUIRE_BROWSER", required)
    words = "Chromium is not installed (apt-get install chromium; .ci/run does)"
    with pytest.raises(outcome(required), match=f"^{re.escape(words)}$"):
        chromium.require()


@pytest.mark.parametrize("required", ["", "1"])
def test_without_node_for_mermaid(
    required: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no node on it
    monkeypatch.setenv("MLOPS_REQUIRE_MERMAID", required)
    words = "Node.js is not installed (apt-get install nodejs npm; .ci/run does)"
    with pytest.raises(outcome(required), match=f"^{re.escape(words)}$"):
        mermaid_cli.require()


def test_every_require_variable_is_decided_by_the_one_helper() -> None:
    """Each MLOPS_REQUIRE_* that .ci/run sets is handed to skip_or_fail, and no other test
    module reads one from the environment to decide for itself."""
    exported = set(
        re.findall(r"^export (MLOPS_REQUIRE_\w+)=1", (ROOT / ".ci" / "run").read_text(), re.M)
    )
    sources = {
        str(path.relative_to(ROOT)): path.read_text(encoding="utf-8")
        for path in (ROOT / "tests").rglob("*.py")
        if path != Path(__file__)
    }
    handed = {
        name
        for text in sources.values()
        for name in re.findall(r"skip_or_fail\([^\n]*\"(MLOPS_REQUIRE_\w+)\"\)", text)
    }
    assert (
        exported
        == handed
        == {
            "MLOPS_REQUIRE_BROWSER",
            "MLOPS_REQUIRE_DOCKER",
            "MLOPS_REQUIRE_MERMAID",
        }
    )
    reads = re.compile(r"environ\b[^\n]*MLOPS_REQUIRE_")
    assert sorted(name for name, text in sources.items() if reads.search(text)) == []

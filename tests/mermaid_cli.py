"""The real Mermaid renderer, for tests of the charts a person sees in a pull request.

`@mermaid-js/mermaid-cli` (`mmdc`) runs Mermaid in headless Chromium through puppeteer. It is
an npm package installed outside this repository, by `.ci/run`, from .ci/mermaid/ (exact
versions, a lock file) into `$MLOPS_MERMAID_DIR` (default ~/.cache/mlops-mermaid), with
Debian's Chromium as the browser (`PUPPETEER_EXECUTABLE_PATH`, default /usr/bin/chromium;
puppeteer downloads none). Where Node, mmdc or Chromium is missing the tests skip saying
which; with `MLOPS_REQUIRE_MERMAID=1` (set by `.ci/run`) they fail instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.required import skip_or_fail

# Chromium's sandbox needs an unprivileged user; CI runs as root.
PUPPETEER_CONFIG = {"args": ["--no-sandbox"]} if os.geteuid() == 0 else {}
BLOCK = re.compile(r"^```mermaid\n(.*?)\n```$", re.DOTALL | re.MULTILINE)


@dataclass(frozen=True)
class MermaidCli:
    mmdc: Path
    chromium: str

    def render(self, markdown: str, folder: Path) -> list[str]:
        """Every ```mermaid block of `markdown` drawn as SVG, in order, in one browser.

        mmdc exits non-zero on the first block that does not parse or render: the test fails
        with Mermaid's own message.
        """
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "puppeteer.json"
        config.write_text(json.dumps(PUPPETEER_CONFIG))
        source = folder / "charts.md"
        source.write_text(markdown, encoding="utf-8")
        done = self.run(source, folder / "drawn.md", config)
        assert done.returncode == 0, f"Mermaid refused a chart:\n{done.stdout}\n{done.stderr}"
        drawn = sorted(folder.glob("drawn-*.svg"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
        return [svg.read_text(encoding="utf-8") for svg in drawn]

    def run(self, source: Path, output: Path, config: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                *(str(self.mmdc), "--puppeteerConfigFile", str(config), "--quiet"),
                *("--input", str(source), "--output", str(output), "--outputFormat", "svg"),
            ],
            capture_output=True,
            text=True,
            env=os.environ | {"PUPPETEER_EXECUTABLE_PATH": self.chromium},
            timeout=300,
            check=False,
        )


def folder() -> Path:
    configured = os.environ.get("MLOPS_MERMAID_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "mlops-mermaid"


def find() -> tuple[MermaidCli | None, str]:
    chromium = os.environ.get("PUPPETEER_EXECUTABLE_PATH") or shutil.which("chromium") or ""
    mmdc = folder() / "node_modules" / ".bin" / "mmdc"
    if shutil.which("node") is None:
        return None, "Node.js is not installed (apt-get install nodejs npm; .ci/run does)"
    if not chromium or not Path(chromium).is_file():
        return None, "Chromium is not installed (apt-get install chromium; .ci/run does)"
    if not mmdc.is_file():
        return None, (
            f"@mermaid-js/mermaid-cli is not installed in {folder()} "
            "(.ci/run installs it from .ci/mermaid/; or set MLOPS_MERMAID_DIR)"
        )
    return MermaidCli(mmdc, chromium), ""


def require() -> MermaidCli:
    found, why = find()
    if found is None:
        skip_or_fail(why, "MLOPS_REQUIRE_MERMAID")
    return found


def blocks(markdown: str) -> list[str]:
    return BLOCK.findall(markdown)

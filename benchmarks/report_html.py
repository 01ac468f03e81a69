"""What report.html adds to a run: its time and its size, on the iris and diabetes-csv examples.

    python benchmarks/report_html.py [--repeats 5]

For each example: one pull request run up to the gate (`mlops run SPEC --until gate`, a fresh
process, timed), then, side by side in fresh processes and alternating:

- page: writing report.html alone (`stages.report.write_html`: read the records, import
  matplotlib, draw every plot, write the file), timed inside the process, wall and CPU;
- report step: `mlops report RUN_DIR`, the whole step as the report action runs it.

It prints the page's size and its CPU time as a share of the run's (wall times too, but on
a shared machine CPU time is the steadier figure).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ("iris", "diabetes-csv")
PAGE = """
import json, resource, sys, time
from pathlib import Path
from gitops_mlops.rundir import RunDir
from gitops_mlops.stages.report import write_html
from gitops_mlops.stages.validate import load
run = RunDir(Path(sys.argv[1]))
spec = load(run.spec_path())
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
wall, started = time.perf_counter(), cpu()
page = write_html(spec, run)
print(json.dumps({"wall": time.perf_counter() - wall, "cpu": cpu() - started,
                  "bytes": page.stat().st_size}))
"""


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _mlops(*args: str) -> tuple[float, float]:
    """Wall and CPU seconds of `mlops ARGS` in a fresh process."""
    started, cpu = time.perf_counter(), _children_cpu()
    done = subprocess.run(
        [sys.executable, "-m", "gitops_mlops", *args],
        capture_output=True,
        text=True,
        check=False,
        env=_env(),
    )
    if done.returncode not in (0, 4):  # 4: the gate failed, the run is still complete
        raise SystemExit(f"mlops {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return time.perf_counter() - started, _children_cpu() - cpu


def _env() -> dict[str, str]:
    # No GitHub: the report step prints the report instead of commenting.
    return {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}


def _page(run: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", PAGE, str(run)],
        capture_output=True,
        text=True,
        check=True,
        env=_env(),
    )
    found: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def measure(example: str, folder: Path, repeats: int) -> dict[str, float]:
    run = folder / example
    spec = ROOT / "examples" / example / "mlops.yaml"
    run_s, run_cpu_s = _mlops("run", str(spec), "--until", "gate", "--out", str(run))
    pages, steps = [], []
    for _ in range(repeats):
        pages.append(_page(run))
        steps.append(_mlops("report", str(run))[0])
    return {
        "run_s": run_s,
        "run_cpu_s": run_cpu_s,
        "page_s": statistics.median(p["wall"] for p in pages),
        "page_cpu_s": statistics.median(p["cpu"] for p in pages),
        "report_step_s": statistics.median(steps),
        "bytes": pages[-1]["bytes"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="mlops-report-html-"))
    try:
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(
            f"{'example':<14}{'run to gate':>12}{'(CPU)':>8}{'page':>8}{'(CPU)':>8}"
            f"{'report step':>13}{'page/run CPU':>14}{'size':>10}"
        )
        for example in EXAMPLES:
            found = measure(example, folder, args.repeats)
            print(
                f"{example:<14}{found['run_s']:>11.2f}s{found['run_cpu_s']:>7.2f}s"
                f"{found['page_s']:>7.2f}s{found['page_cpu_s']:>7.2f}s"
                f"{found['report_step_s']:>12.2f}s"
                f"{found['page_cpu_s'] / found['run_cpu_s']:>14.1%}{found['bytes'] / 1024:>8.0f} KB"
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

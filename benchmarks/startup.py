"""Serving image start to ready, and image sizes, for each runtime, side by side in one run.

    python benchmarks/startup.py [--starts 20] [--base-image IMAGE]
    python benchmarks/startup.py --profile onnx|sklearn   # where that image's start goes

Trains the iris example once and builds it with `mlops build` as the `onnx` image
(`container.runtime: auto` converts the forest) and as the `sklearn` image. Then, taking
turns so that the machine's load falls on all alike, it starts each image --starts times
and times from the engine's `create` request to the first `200` from `/v2/health/ready`
(polled every 5 ms on a host port chosen beforehand), with the container's default
settings: one worker per CPU. Beside them, the floor: the same ONNX image running a bare
Python HTTP responder instead of the server (the engine's create/start, the port
forwarding, the interpreter's start), so the server's own share is the difference. Wall
time grows with the machine's load; the CPU time each container used until it was ready
(from its cgroup) does not, so the table has both.
Needs a Docker engine and the base image (.ci/base-image.sh).
Targets (issue 14), for the ONNX image (what `container.runtime: auto` ships for the iris
forest): start to ready <= 1 s, median; <= 300 MB. The sklearn image is the fallback for
models ONNX cannot match; its start is shown beside them, not judged (it imports
scikit-learn, SciPy and pandas and loads the model from skops in each worker).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from gitops_mlops.cli import main as mlops
from gitops_mlops.integrations import docker

ROOT = Path(__file__).resolve().parent.parent
# Answers any request with 200 once it listens: what a server could do at best.
FLOOR = (
    "import socket\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('0.0.0.0', 8080)); s.listen(64)\n"
    "while True:\n"
    "    c, _ = s.accept(); c.recv(65536)\n"
    "    c.sendall(b'HTTP/1.1 200 OK\\r\\nContent-Length: 0\\r\\nConnection: close\\r\\n\\r\\n')\n"
    "    c.close()\n"
)
# The server's start, as its command does it, under -X importtime: imports, the model's
# check, the runtime's preload, the app, and one worker's model load.
PROFILED = (
    "import time; t = time.perf_counter()\n"
    "from pathlib import Path\n"
    "from gitops_mlops.serving import __main__ as main, runtimes\n"
    "model = Path('/model'); runtime = runtimes.of(model); runtime.check(model)\n"
    "runtime.preload(); main.prepare_workers(); runtime.load(model)\n"
    "print(f'server start without the socket: {time.perf_counter() - t:.3f} s')\n"
)


def build(folder: Path, runtime: str, base: str) -> dict[str, Any]:
    """`mlops build` of the iris example with `container.runtime: runtime`."""
    project = folder / runtime
    shutil.copytree(ROOT / "examples" / "iris", project / "iris")
    shutil.copytree(ROOT / "examples" / "gitops", project / "gitops")
    spec = project / "iris" / "mlops.yaml"
    text = spec.read_text().replace("acme/iris-classifier", f"bench/startup-{runtime}")
    spec.write_text(text.replace("size_budget_mb:", f"runtime: {runtime}\n  size_budget_mb:"))
    run = project / "run"
    assert mlops(["run", str(spec), "--until", "evaluate", "--out", str(run)]) == 0
    assert mlops(["build", str(run), "--base-image", base]) == 0
    record: dict[str, Any] = json.loads((run / "build.json").read_text())
    assert record["runtime"]["runtime"] == runtime, record["runtime"]
    return record


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"GET /v2/health/ready HTTP/1.1\r\nHost: bench\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:  # not listening yet (the engine's proxy then resets the connection)
        return False


def cpu_seconds(container_id: str) -> float | None:
    """CPU time the container's processes have used (its cgroup's account), or None where
    the host's cgroup files cannot be read. Unlike wall time, it does not grow with the
    machine's load: on an idle machine the start takes about this long (a little less, as
    the workers load the model in parallel)."""
    root = Path("/sys/fs/cgroup")
    v1 = root / "cpuacct" / "docker" / container_id / "cpuacct.usage"
    if v1.is_file():
        return int(v1.read_text()) / 1e9
    for folder in (
        root / "system.slice" / f"docker-{container_id}.scope",
        root / "docker" / container_id,
    ):
        if (folder / "cpu.stat").is_file():
            usage = (folder / "cpu.stat").read_text().split()
            return int(usage[usage.index("usage_usec") + 1]) / 1e6
    return None


def start_to_ready(
    client: Any, image: str, command: list[str] | None
) -> tuple[float, float | None]:
    """(seconds from the create request to ready, CPU seconds the container used by then)."""
    port = free_port()
    started = time.perf_counter()
    container = client.containers.run(
        image, command, detach=True, ports={"8080/tcp": ("127.0.0.1", port)}
    )
    try:
        while not ready(port):
            if time.perf_counter() - started > 60:
                logs = container.logs(tail=20).decode(errors="replace")
                raise TimeoutError(f"{image} not ready after 60 s:\n{logs}")
            time.sleep(0.005)
        return time.perf_counter() - started, cpu_seconds(container.id)
    finally:
        container.remove(force=True)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def benchmark(client: Any, images: dict[str, dict[str, Any]], starts: int) -> bool:
    runs: dict[str, tuple[str, list[str] | None]] = {
        f"{name} image": (record["reference"], None) for name, record in images.items()
    }
    runs["floor: bare Python responder"] = (images["onnx"]["reference"], ["python", "-c", FLOOR])
    times: dict[str, list[float]] = {label: [] for label in runs}
    cpu: dict[str, list[float]] = {label: [] for label in runs}
    load = os.getloadavg()[0]
    for _ in range(starts):
        for label, (image, command) in runs.items():
            wall, used = start_to_ready(client, image, command)
            times[label].append(wall)
            if used is not None:
                cpu[label].append(used)
    load = max(load, os.getloadavg()[0])
    floor = statistics.median(times["floor: bare Python responder"])
    cpus = os.cpu_count()
    print(f"\n{starts} starts each, taking turns; load average up to {load:.1f} on {cpus} CPUs")
    print(
        "| image | size MB | start to ready, median s | p95 s | min s | over the floor "
        "| CPU s to ready, median |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, values in times.items():
        name = label.removesuffix(" image")
        size = f"{images[name]['size_bytes'] / 2**20:.0f}" if name in images else ""
        median = statistics.median(values)
        cpu_median = f"{statistics.median(cpu[label]):.3f}" if cpu[label] else "n/a"
        print(
            f"| {label} | {size} | {median:.3f} | {p95(values):.3f} | {min(values):.3f} "
            f"| {median - floor:+.3f} | {cpu_median} |"
        )
    onnx_s = statistics.median(times["onnx image"])
    onnx_mb = images["onnx"]["size_bytes"] / 2**20
    met = onnx_s <= 1.0 and onnx_mb <= 300
    print(
        f"\ntargets for the ONNX image (start to ready <= 1 s, median: {onnx_s:.3f} s; "
        f"<= 300 MB: {onnx_mb:.0f} MB): {'met' if met else 'NOT met'}"
    )
    return met


def profile(client: Any, image: str) -> None:
    """An image's server start under -X importtime: the slowest imports."""
    out = client.containers.run(
        image, ["python", "-X", "importtime", "-c", PROFILED], remove=True, stderr=True
    ).decode(errors="replace")
    rows = []
    for line in out.splitlines():
        if line.startswith("import time:") and "|" in line and "self [us]" not in line:
            own, total, name = line.removeprefix("import time:").split("|")
            rows.append((int(total), int(own), name.rstrip()))
        elif line and not line.startswith("import time:"):
            print(line)
    print(f"{len(rows)} modules imported; the slowest (cumulative ms, own ms):")
    for total, own, name in sorted(rows, reverse=True)[:30]:
        print(f"{total / 1000:8.1f} {own / 1000:8.1f}  {name}")
    found = {name.strip() for _, _, name in rows}
    print("sklearn, scipy or pandas imported:", sorted(found & {"sklearn", "scipy", "pandas"}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--base-image",
        default=os.environ.get("MLOPS_BASE_IMAGE", "127.0.0.1:5000/mlops/python:3.11-bookworm"),
    )
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--profile", choices=("onnx", "sklearn"), help="profile this image")
    args = parser.parse_args()
    client, why = docker.connect(os.environ)
    if client is None:
        print(why)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        runtimes = (args.profile,) if args.profile else ("onnx", "sklearn")
        images = {name: build(Path(tmp), name, args.base_image) for name in runtimes}
    if args.profile:
        profile(client, images[args.profile]["reference"])
        return 0
    return 0 if benchmark(client, images, args.starts) else 1


if __name__ == "__main__":
    sys.exit(main())

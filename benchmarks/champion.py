"""What re-evaluating the champion on the candidate's test rows adds to a pull request run.

    python benchmarks/champion.py [--repeats 5] [--registry 127.0.0.1:5000]

For the iris and diabetes-csv examples: train once (`mlops run --until evaluate`), push the
model bundle as the top layer of an image (where `mlops build` puts it: `/model/`) to the
registry through the distribution API, and write the release record that pins it. The
champion is the candidate's own bundle here: fetching and predicting cost the same whichever
model it is, and the paired resampling does not depend on the predictions' values.

Each measurement is the gate step as the gate action runs it, `mlops gate RUN_DIR` in a
fresh process (it reads the run's records and, to re-evaluate the champion, the test rows
again), side by side:

- before: the same release record stripped of its model digest, so the comparison falls
  back to the recorded metrics at once (what the gate step cost before this feature);
- cold: the record, with the champion cache empty (fetch over the distribution API, check
  the digest, load with trusted types, read the test rows, predict, paired bootstrap);
- warm: the same with the champion already cached by digest (read, re-hash, load, predict).

Most of a fresh process's cost is importing scikit-learn, skops and pandas, which
`mlops run` (train, evaluate and gate in one process, as on a laptop) has already done; so
also, in one process with those loaded and the test rows in memory: the gate step with the
warm champion against the one falling back ("in mlops run").

"adds" is that step's wall time minus the one before it (CPU time too: the machine may
be shared). Target (issue 13): <= 2 s warm.
Prints `skip` and exits 0 when the registry does not answer.
"""

from __future__ import annotations

import argparse
import gzip
import importlib
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ("iris", "diabetes-csv")
TARGET_WARM = 2.0


def _layer(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def release(run: Path, host: str, folder: Path) -> tuple[Path, Path, str]:
    """Push the run's bundle as an image; the release record and one without its digest."""
    from gitops_mlops.integrations.registry import DOCKER_MANIFEST, Registry, sha256_digest
    from gitops_mlops.records.release import ReleaseRecord

    registry = Registry(host, {})
    repository = f"bench/champion-{uuid.uuid4().hex[:10]}"
    model = run / "model"
    blob = _layer({f"model/{p.name}": p.read_bytes() for p in sorted(model.iterdir())})
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(gzip.decompress(blob))]},
    }
    pushed_config = registry.push_blob(
        repository, json.dumps(config).encode(), "application/vnd.docker.container.image.v1+json"
    )
    pushed_layer = registry.push_blob(
        repository, blob, "application/vnd.docker.image.rootfs.diff.tar.gzip"
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": pushed_config.to_json(),
        "layers": [pushed_layer.to_json()],
    }
    image, _ = registry.push_manifest(
        repository, json.dumps(manifest).encode(), DOCKER_MANIFEST, tag="v1"
    )
    bundle = json.loads((model / "manifest.json").read_text())
    measured = json.loads((run / "metrics.json").read_text())
    fields = {
        "apiVersion": "mlops/v1",
        "kind": "ModelRelease",
        "model": bundle["name"],
        "environment": "production",
        "version": bundle["model_version"],
        "image": f"{host}/{repository}@{image.digest}",
        "model_digest": bundle["model_digest"],
        "metrics": measured["metrics"],
        "slices": measured["slices"],
    }
    pinned, bare = folder / "release.yaml", folder / "release-no-digest.yaml"
    pinned.write_text(ReleaseRecord.from_mapping(fields, "bench").to_yaml())
    del fields["model_digest"]
    bare.write_text(ReleaseRecord.from_mapping(fields, "bench").to_yaml())
    return pinned, bare, f"{repository}@{image.digest}"


@dataclass(frozen=True)
class Measured:
    baseline: float  # wall seconds of `mlops gate` falling back to the recorded metrics
    champion: float  # wall seconds of `mlops gate` re-evaluating the champion
    cpu: float  # CPU seconds the champion's re-evaluation added
    timings: dict[str, float]  # comparison.json's split: fetch, predict, compare

    @property
    def added(self) -> float:
        return self.champion - self.baseline


def gate(mlops: list[str], run: Path, record: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of `mlops gate RUN --champion RECORD` in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [*mlops, "gate", str(run), "--champion", str(record)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    took = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 4):  # 4: the gate failed, still a complete gate step
        raise SystemExit(f"mlops gate failed:\n{done.stdout}{done.stderr}")
    return took, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def measure(
    mlops: list[str], run: Path, records: tuple[Path, Path], cache: Path, cold: bool
) -> Measured:
    """The baseline gate step, then the one with the champion (its cache emptied first when
    `cold`), each in a fresh process as in the gate action."""
    pinned, bare = records
    env = dict(os.environ) | {"MLOPS_CHAMPION_CACHE": str(cache)}
    base_wall, base_cpu = gate(mlops, run, bare, env)
    if cold:
        shutil.rmtree(cache, ignore_errors=True)
    wall, cpu = gate(mlops, run, pinned, env)
    compared = json.loads((run / "comparison.json").read_text())
    if compared["mode"] != "paired" or compared["cached"] == cold:
        raise SystemExit(f"not the comparison meant to be measured: {compared}")
    return Measured(base_wall, wall, cpu - base_cpu, compared["timings"])


def in_run(run: Path, pinned: Path, bare: Path, cache: Path) -> None:
    """`mlops run`'s gate step (run in a fresh process by `--in-run`): the libraries loaded
    and the test rows in memory, as after train and evaluate; prints the seconds the warm
    champion adds to the gate step."""
    from gitops_mlops import datasets
    from gitops_mlops.pipeline import gate_run
    from gitops_mlops.release import read_record
    from gitops_mlops.reporting.progress import Progress
    from gitops_mlops.rundir import RunDir
    from gitops_mlops.serving.model import import_skops
    from gitops_mlops.stages.validate import load

    run_dir = RunDir(run)
    spec = load(run_dir.spec_path())
    importlib.import_module((spec.model.estimator or "sklearn").rpartition(".")[0])  # as train
    import_skops()
    data, measured = datasets.load(spec), run_dir.read_metrics()
    env = dict(os.environ) | {"MLOPS_CHAMPION_CACHE": str(cache)}
    quiet = Progress(io.StringIO(), {})
    took = []
    for record in (bare, pinned, bare, pinned):  # the first pair warms what both import
        started = time.perf_counter()
        gate_run(spec, run_dir, read_record(record), env, measured, "bench", data, quiet)
        took.append(time.perf_counter() - started)
    print(json.dumps(took[3] - took[2]))


def in_run_added(run: Path, records: tuple[Path, Path], cache: Path) -> float:
    done = subprocess.run(
        [sys.executable, __file__, "--in-run", str(run), *map(str, records), str(cache)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"measurement failed:\n{done.stdout}{done.stderr}")
    return float(done.stdout.strip().splitlines()[-1])


def registry_answers(host: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}/v2/", timeout=3) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--registry", default="127.0.0.1:5000")
    parser.add_argument("--in-run", nargs=4, metavar=("RUN", "RECORD", "BARE", "CACHE"))
    args = parser.parse_args()
    if args.in_run:
        in_run(*(Path(p) for p in args.in_run))
        return 0
    if not registry_answers(args.registry):
        print(f"skip: no registry answers on {args.registry} (.ci/run starts one)")
        return 0
    found = shutil.which("mlops")
    mlops = [found] if found else [sys.executable, "-m", "gitops_mlops"]
    lines = [
        f"{'example':13} {'rows':>5} {'gate before':>11} {'cold adds':>10} {'warm adds':>10} "
        f"{'warm CPU':>9} {'in mlops run':>12}  warm split"
    ]
    met = True
    with tempfile.TemporaryDirectory(prefix="bench-champion-") as tmp:
        work = Path(tmp)
        shutil.copytree(ROOT / "examples" / "gitops", work / "gitops")
        for name in EXAMPLES:
            shutil.copytree(ROOT / "examples" / name, work / name)
            run = work / f"run-{name}"
            spec = str(work / name / "mlops.yaml")
            subprocess.run(
                [*mlops, "run", spec, "--until", "evaluate", "--out", str(run)],
                check=True,
                capture_output=True,
            )
            pinned, bare, image = release(run, args.registry, work / name)
            records, cache = (pinned, bare), work / f"cache-{name}"
            colds = [measure(mlops, run, records, cache, cold=True) for _ in range(args.repeats)]
            warms = [measure(mlops, run, records, cache, cold=False) for _ in range(args.repeats)]
            base = statistics.median(m.baseline for m in colds + warms)
            cold = statistics.median(m.added for m in colds)
            warm = statistics.median(m.added for m in warms)
            cpu = statistics.median(m.cpu for m in warms)
            inline = statistics.median(
                in_run_added(run, records, cache) for _ in range(args.repeats)
            )
            split = {
                k: statistics.median(m.timings[k] for m in warms)
                for k in ("fetch", "predict", "compare")
            }
            rows = json.loads((run / "metrics.json").read_text())["n_test"]
            met &= warm <= TARGET_WARM
            lines.append(
                f"{name:13} {rows:5} {base:9.2f} s {cold:+8.2f} s {warm:+8.2f} s {cpu:+7.2f} s "
                f"{inline:+10.2f} s  " + ", ".join(f"{k} {v:.2f} s" for k, v in split.items())
            )
            print(f"{name}: champion {image}", file=sys.stderr)
    print("\n".join(lines))
    print(
        f"medians of {args.repeats} pairs of fresh processes; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs. Target: warm adds <= "
        f"{TARGET_WARM:g} s: " + ("met" if met else "NOT met")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

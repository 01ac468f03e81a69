"""`mlops run --cache DIR`: hits restore and gate, misses train and store, damage is a miss."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.fake_github import git
from tests.fleet_repo import commit_all, local_gitops, model_repo, spec_text, write

GITOPS = "../../../gitops"  # from models/<name>/ to the GitOps repository beside the repo


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    local_gitops(tmp_path / "gitops")
    return model_repo(tmp_path / "models-repo", GITOPS)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repositories and the cache after one first run of churn, made once per module
    (a run trains): tests that start from a filled cache copy them (`primed`)."""
    base = tmp_path_factory.mktemp("seeded")
    local_gitops(base / "gitops")
    repo = model_repo(base / "models-repo", GITOPS)
    code, out = run(repo, base / "cache", base / "run1")
    assert code == 0 and "train     ok" in out, out
    return base


@pytest.fixture
def primed(seeded: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(models repository, cache) copied from `seeded`: the cache holds churn's entry."""
    for name in ("gitops", "models-repo", "cache"):
        shutil.copytree(seeded / name, tmp_path / name, symlinks=True)
    return tmp_path / "models-repo", tmp_path / "cache"


def run(repo: Path, cache: Path, out: Path, name: str = "churn") -> tuple[int, str]:
    result = run_cli(
        "run",
        str(repo / "models" / name / "mlops.yaml"),
        "--until",
        "gate",
        "--cache",
        str(cache),
        "--out",
        str(out),
    )
    assert "Traceback" not in result.out + result.err
    return result.code, result.out + result.err


def entries(cache: Path) -> list[Path]:
    return sorted((cache / "v1").iterdir()) if (cache / "v1").is_dir() else []


def test_a_rerun_is_a_hit_that_restores_the_model_and_gates_again(
    repo: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    code, first = run(repo, cache, tmp_path / "run1")
    assert code == 0, first
    assert "train     ok" in first and "cached" not in first
    [entry] = entries(cache)
    code, second = run(repo, cache, tmp_path / "run2")
    assert code == 0, second
    assert f"train     cached {entry.name}" in second and "evaluate  cached" in second
    assert "gate      ok" in second
    one = json.loads((tmp_path / "run1" / "model" / "manifest.json").read_text())
    two = json.loads((tmp_path / "run2" / "model" / "manifest.json").read_text())
    assert two["model_version"] == one["model_version"]
    assert two["files"] == one["files"] and two["cache_key"] == entry.name
    for name in ("metrics.json", "predictions.npz"):  # what the gate and comparison read
        same = (tmp_path / "run1" / name).read_bytes()
        assert (tmp_path / "run2" / name).read_bytes() == same


def test_a_threshold_change_hits_and_the_new_gate_decides(
    primed: tuple[Path, Path], tmp_path: Path
) -> None:
    repo, cache = primed
    write(repo, {"models/churn/mlops.yaml": spec_text("churn", GITOPS, threshold=0.999)})
    commit_all(repo, "a threshold nobody meets")
    code, out = run(repo, cache, tmp_path / "run2")
    assert "train     cached" in out
    assert code == 4, out  # the gate ran on the restored metrics, with the new threshold
    manifest = json.loads((tmp_path / "run2" / "model" / "manifest.json").read_text())
    assert manifest["git_commit"] == git("rev-parse", "HEAD", cwd=repo).strip()  # this run's


def test_a_shared_library_change_misses(primed: tuple[Path, Path], tmp_path: Path) -> None:
    repo, cache = primed
    write(repo, {"libs/features/scaling.py": "def scale(x):\n    return -x\n"})
    commit_all(repo, "new features")
    code, out = run(repo, cache, tmp_path / "run2")
    assert code == 0 and "cached" not in out and "run cache: miss" in out
    assert len(entries(cache)) == 2


@pytest.mark.parametrize("damage", ["flip-model-byte", "drop-entry-json", "truncate-metrics"])
def test_a_corrupt_or_partial_entry_is_a_miss_not_a_crash(
    primed: tuple[Path, Path], tmp_path: Path, damage: str
) -> None:
    repo, cache = primed
    [entry] = entries(cache)
    if damage == "flip-model-byte":
        model = entry / "model" / "model.skops"
        raw = bytearray(model.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        model.write_bytes(bytes(raw))
    elif damage == "drop-entry-json":
        (entry / "entry.json").unlink()
    else:
        metrics = entry / "metrics.json"
        metrics.write_bytes(metrics.read_bytes()[:10])
    code, out = run(repo, cache, tmp_path / "run2")
    assert code == 0, out
    assert "cached" not in out and "train     ok" in out


def test_a_foreign_file_named_in_the_entry_is_refused(
    primed: tuple[Path, Path], tmp_path: Path
) -> None:
    repo, cache = primed
    [entry] = entries(cache)
    listing = json.loads((entry / "entry.json").read_text())
    listing["files"]["../../../escape"] = "0" * 64
    (entry / "entry.json").write_text(json.dumps(listing))
    code, out = run(repo, cache, tmp_path / "run2")
    assert code == 0 and "cached" not in out


def mount(folder: Path, options: str) -> Iterator[Path]:
    folder.mkdir(parents=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    yield from mount(tmp_path / "ro-cache", "ro,size=1m")


@pytest.fixture
def full(tmp_path: Path) -> Iterator[Path]:
    yield from mount(tmp_path / "full-cache", "size=8k")


def test_a_read_only_cache_costs_the_store_not_the_run(
    repo: Path, tmp_path: Path, read_only: Path
) -> None:
    code, out = run(repo, read_only, tmp_path / "run1")
    assert code == 0, out
    assert "run cache: not stored (Read-only file system" in out
    assert (tmp_path / "run1" / "model" / "model.skops").is_file()


def test_a_full_cache_costs_the_store_and_leaves_no_half_entry(
    repo: Path, tmp_path: Path, full: Path
) -> None:
    code, out = run(repo, full, tmp_path / "run1")
    assert code == 0, out
    assert "run cache: not stored (No space left on device" in out
    assert entries(full) == []  # neither the entry nor its private folder remains
    code, out = run(repo, full, tmp_path / "run2")
    assert code == 0 and "cached" not in out


def test_a_spec_that_disappeared_after_the_plan_is_a_clear_error(
    repo: Path, tmp_path: Path
) -> None:
    result = run_cli("run", str(repo / "models" / "gone" / "mlops.yaml"), "--cache", "c")
    assert result.code == 2
    assert "models/gone/mlops.yaml" in result.out and "Traceback" not in result.out + result.err


# --- entries crafted by someone else -------------------------------------------------------


def _relist(entry: Path) -> None:
    """Make entry.json and the bundle's manifest agree with the files as they are now, as
    an attacker who can write the cache would."""
    from gitops_mlops import bundle

    manifest = json.loads((entry / "model" / "manifest.json").read_text())
    bundle.write_manifest(entry / "model", {k: v for k, v in manifest.items() if k != "files"})
    listing = json.loads((entry / "entry.json").read_text())
    names = [name for name in listing["files"] if (entry / name).exists()]
    listing["files"] = {name: bundle.sha256_file(entry / name) for name in names}
    (entry / "entry.json").write_text(json.dumps(listing))


@pytest.mark.parametrize("where", ["model-folder", "whole-entry", "metrics-file"])
def test_a_symbolic_link_in_the_cache_is_a_miss(
    primed: tuple[Path, Path], tmp_path: Path, where: str
) -> None:
    """An entry is read only from real files in the cache: a link could make the run
    restore (and later ship) any file on the runner."""
    repo, cache = primed
    [entry] = entries(cache)
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(entry, elsewhere)
    if where == "model-folder":
        shutil.rmtree(entry / "model")
        (entry / "model").symlink_to(elsewhere / "model")
    elif where == "whole-entry":
        shutil.rmtree(entry)
        entry.symlink_to(elsewhere)
    else:
        (entry / "metrics.json").unlink()
        (entry / "metrics.json").symlink_to(elsewhere / "metrics.json")
    code, out = run(repo, cache, tmp_path / "run2")
    assert code == 0, out
    assert "cached" not in out and "train     ok" in out
    assert "symbolic link" in out


def test_an_entry_restores_only_the_bundle_and_the_metrics(
    primed: tuple[Path, Path], tmp_path: Path
) -> None:
    """The listing names what to copy into the run: anything beyond the bundle and the
    metrics (a verdict, a report, a release record) would be taken as this run's."""
    repo, cache = primed
    [entry] = entries(cache)
    (entry / "verdict.json").write_text('{"passed": true, "rows": []}')
    listing = json.loads((entry / "entry.json").read_text())
    listing["files"]["verdict.json"] = ""
    (entry / "entry.json").write_text(json.dumps(listing))
    _relist(entry)
    code, out = run(repo, cache, tmp_path / "run2")
    assert code == 0, out
    assert "cached" not in out and "verdict.json" in out


def test_an_untrusted_model_in_a_crafted_entry_is_never_built(
    primed: tuple[Path, Path], tmp_path: Path
) -> None:
    """A model whose manifest matches but whose types are not trusted: a hit restores files
    and gates on metrics without loading the model; every command that loads or ships it
    checks its types first and refuses it, and its code never runs."""
    from tests.hostile_models import runstring

    repo, cache = primed
    [entry] = entries(cache)
    marker = tmp_path / "pwned"
    (entry / "model" / "model.skops").write_bytes(runstring(marker))
    _relist(entry)
    code, out = run(repo, cache, tmp_path / "run2")
    assert code == 0 and "train     cached" in out, out
    for command in (["evaluate", str(tmp_path / "run2")], ["serve", str(tmp_path / "run2")]):
        result = run_cli(*command)
        assert result.code != 0, (command, result.out)
        assert "not trusted" in result.out + result.err, result.out + result.err
    assert not marker.exists()


def test_every_file_of_a_command_trainers_folder_is_in_its_key(repo: Path) -> None:
    """A training program imports its own modules: changing one must retrain, not restore
    what the old code trained."""
    folder = repo / "models" / "scripted"
    spec = spec_text("iris", GITOPS).replace("name: iris", "name: scripted")
    spec = spec.replace(
        "  estimator: sklearn.linear_model.LogisticRegression\n  params: {max_iter: 2000}\n",
        "  command: [python, train.py]\n",
    )
    write(
        repo,
        {
            "models/scripted/mlops.yaml": spec,
            "models/scripted/train.py": "from helpers import C\n",
            "models/scripted/helpers.py": "C = 1.0\n",
        },
    )
    commit_all(repo, "a scripted model")
    before = _key(repo, "scripted")
    write(repo, {"models/scripted/helpers.py": "C = 0.1\n"})
    commit_all(repo, "another C")
    after = _key(repo, "scripted")
    assert after != before
    (folder / "notes.md").write_text("untracked: not part of the repository\n")
    assert _key(repo, "scripted") == after


def _key(repo: Path, name: str) -> str:
    result = run_cli("plan", str(repo), "--all", "--format", "json")
    assert result.code == 0, result.out + result.err
    rows = json.loads(result.out)["include"]
    return str(next(r["cache_key"] for r in rows if r["name"] == name))


def test_the_packages_of_allowed_modules_are_in_the_key() -> None:
    """A model built from a package's classes (`model.allow_modules`) changes with that
    package's version, which the key must therefore hold."""
    from importlib import metadata

    from gitops_mlops.fleet.cache import module_versions

    found = module_versions(("tritonclient.http", "no_such_module_anywhere"))
    assert found == {
        "tritonclient.http": f"tritonclient-{metadata.version('tritonclient')}",
        "no_such_module_anywhere": "absent",
    }


def test_a_hit_does_not_import_the_training_stack(
    primed: tuple[Path, Path], tmp_path: Path
) -> None:
    """A hit validates, restores and gates: importing numpy, scikit-learn or the serving
    runtimes would cost it most of its start-up (benchmarks/fleet.py)."""
    repo, cache = primed
    spec = str(repo / "models" / "churn" / "mlops.yaml")
    options = ["--until", "gate", "--cache", str(cache), "--out", str(tmp_path / "run2")]
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "gitops_mlops", "run", spec, *options],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and "train     cached" in done.stdout, done.stdout + done.stderr
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert "gitops_mlops.pipeline" in imported  # the timing lines are there to read
    heavy = {m for m in imported if m.split(".")[0] in ("numpy", "sklearn", "scipy", "pandas")}
    assert not heavy, sorted(heavy)[:5]


def test_a_hit_compares_with_the_champion_on_the_same_rows(
    primed: tuple[Path, Path], seeded: Path, tmp_path: Path
) -> None:
    """The entry keeps the test rows' predictions, so a hit's gate re-evaluates the champion
    on those rows (paired), as the run that stored it did, and does not fall back."""
    repo, cache = primed
    spec = str(repo / "models" / "churn" / "mlops.yaml")
    out = tmp_path / "run2"
    champion = ["--champion", str(seeded / "run1")]
    result = run_cli(
        "run", spec, "--until", "gate", "--cache", str(cache), "--out", str(out), *champion
    )
    assert result.code == 0 and "train     cached" in result.out, result.out + result.err
    assert "re-evaluated on the same" in result.out, result.out
    assert json.loads((out / "comparison.json").read_text())["mode"] == "paired"

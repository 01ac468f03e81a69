"""`mlops run --cache DIR`: hits restore and gate, misses train and store, damage is a miss."""

from __future__ import annotations

import json
import subprocess
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
    same = (tmp_path / "run1" / "metrics.json").read_bytes()
    assert (tmp_path / "run2" / "metrics.json").read_bytes() == same


def test_a_threshold_change_hits_and_the_new_gate_decides(repo: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert run(repo, cache, tmp_path / "run1")[0] == 0
    write(repo, {"models/churn/mlops.yaml": spec_text("churn", GITOPS, threshold=0.999)})
    commit_all(repo, "a threshold nobody meets")
    code, out = run(repo, cache, tmp_path / "run2")
    assert "train     cached" in out
    assert code == 4, out  # the gate ran on the restored metrics, with the new threshold
    manifest = json.loads((tmp_path / "run2" / "model" / "manifest.json").read_text())
    assert manifest["git_commit"] == git("rev-parse", "HEAD", cwd=repo).strip()  # this run's


def test_a_shared_library_change_misses(repo: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert run(repo, cache, tmp_path / "run1")[0] == 0
    write(repo, {"libs/features/scaling.py": "def scale(x):\n    return -x\n"})
    commit_all(repo, "new features")
    code, out = run(repo, cache, tmp_path / "run2")
    assert code == 0 and "cached" not in out and "run cache: miss" in out
    assert len(entries(cache)) == 2


@pytest.mark.parametrize("damage", ["flip-model-byte", "drop-entry-json", "truncate-metrics"])
def test_a_corrupt_or_partial_entry_is_a_miss_not_a_crash(
    repo: Path, tmp_path: Path, damage: str
) -> None:
    cache = tmp_path / "cache"
    assert run(repo, cache, tmp_path / "run1")[0] == 0
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


def test_a_foreign_file_named_in_the_entry_is_refused(repo: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert run(repo, cache, tmp_path / "run1")[0] == 0
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

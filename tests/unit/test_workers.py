"""How many worker processes the server starts: the CPUs it may use, capped by cgroup quotas."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops_mlops.serving import workers


@pytest.mark.parametrize(
    ("cpu_max", "v1", "expected"),
    [
        ("max 100000", None, None),  # cgroup v2, no quota
        ("150000 100000", None, 1.5),  # docker run --cpus 1.5
        ("50000 100000", None, 0.5),
        (None, ("-1", "100000"), None),  # cgroup v1, no quota
        (None, ("200000", "100000"), 2.0),
        (None, None, None),
    ],
)
def test_quota_from_cgroup_files(
    cpu_max: str | None, v1: tuple[str, str] | None, expected: float | None
) -> None:
    assert workers.quota(cpu_max, *(v1 or (None, None))) == expected


def test_the_tightest_quota_of_the_cgroup_and_its_parents_counts(tmp_path: Path) -> None:
    leaf = tmp_path / "kubepods.slice" / "pod" / "container"
    leaf.mkdir(parents=True)
    (tmp_path / "kubepods.slice" / "cpu.max").write_text("400000 100000\n")
    (leaf.parent / "cpu.max").write_text("max 100000\n")
    (leaf / "cpu.max").write_text("250000 100000\n")
    proc = "0::/kubepods.slice/pod/container\n"
    assert sorted(workers._cgroup_v2_quotas(proc, tmp_path)) == [2.5, 4.0]
    assert workers._cgroup_v2_quotas("0::/\n", tmp_path) == []
    assert workers._cgroup_v2_quotas("12:cpu,cpuacct:/docker/abc\n", tmp_path) == []


def test_available_cpus_is_at_least_one_and_at_most_the_affinity() -> None:
    import os

    assert 1 <= workers.available_cpus() <= len(os.sched_getaffinity(0))

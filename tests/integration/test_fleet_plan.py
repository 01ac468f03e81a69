"""`mlops plan` on a real git repository of three models, and the cache key it reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gitops_mlops.globs import matches, problem
from tests.conftest import run_cli
from tests.fake_github import git
from tests.fleet_repo import commit_all, model_repo, spec_text, write


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return model_repo(tmp_path / "models-repo", "acme/gitops")


def plan(repo: Path, *args: str | Path) -> dict[str, Any]:
    result = run_cli("plan", str(repo), *map(str, args), "--format", "json")
    assert result.code == 0, result.out + result.err
    loaded: dict[str, Any] = json.loads(result.out)
    return loaded


def names(planned: dict[str, Any]) -> list[str]:
    return [row["name"] for row in planned["include"]]


def keys(planned: dict[str, Any]) -> dict[str, str]:
    return {r["name"]: r["cache_key"] for r in planned["include"] + planned["excluded"]}


def change(repo: Path, files: dict[str, str]) -> str:
    base = git("rev-parse", "HEAD", cwd=repo).strip()
    write(repo, files)
    commit_all(repo, "change")
    return base


def test_a_change_to_one_spec_plans_that_model_only(repo: Path) -> None:
    base = change(repo, {"models/iris/mlops.yaml": spec_text("iris", "acme/gitops", 0.7)})
    planned = plan(repo, "--base", base)
    assert names(planned) == ["iris"]
    assert planned["include"][0] == {
        "spec": "models/iris/mlops.yaml",
        "name": "iris",
        "cache_key": planned["include"][0]["cache_key"],
        "reason": "the spec changed",
        "promote_to": "staging",
    }
    assert {r["name"]: r["reason"] for r in planned["excluded"]} == {
        "churn": "nothing it uses changed",
        "fraud": "nothing it uses changed",
    }


def test_a_change_to_the_shared_library_plans_the_two_models_using_it(repo: Path) -> None:
    before = keys(plan(repo, "--all"))
    base = change(repo, {"libs/features/scaling.py": "def scale(x):\n    return 2 * x\n"})
    planned = plan(repo, "--base", base)
    assert names(planned) == ["churn", "fraud"]
    assert planned["include"][0]["reason"] == (
        "inputs libs/features/** matched libs/features/scaling.py"
    )
    after = keys(planned)
    assert after["churn"] != before["churn"] and after["fraud"] != before["fraud"]
    assert after["iris"] == before["iris"]


def test_a_readme_change_plans_nothing_and_the_matrix_is_empty(repo: Path) -> None:
    base = change(repo, {"README.md": "Our models, documented\n"})
    assert plan(repo, "--base", base)["include"] == []
    text = run_cli("plan", str(repo), "--base", base)
    assert text.code == 0 and text.out.strip().endswith("0 of 3 models to run"), text.out


def test_a_file_in_the_models_folder_plans_it(repo: Path) -> None:
    base = change(repo, {"models/fraud/notes.md": "why the threshold is 0.8\n"})
    planned = plan(repo, "--base", base)
    assert names(planned) == ["fraud"]
    assert planned["include"][0]["reason"] == "a file in its folder changed: models/fraud/notes.md"


def test_a_threshold_change_plans_the_model_with_the_same_cache_key(repo: Path) -> None:
    before = keys(plan(repo, "--all"))
    base = change(repo, {"models/churn/mlops.yaml": spec_text("churn", "acme/gitops", 0.5)})
    planned = plan(repo, "--base", base)
    assert names(planned) == ["churn"]
    assert keys(planned) == before  # the gate changed, not the model


def test_model_evaluation_and_data_changes_change_the_key(repo: Path) -> None:
    before = keys(plan(repo, "--all"))
    text = spec_text("churn", "acme/gitops")
    edits = {
        "model": text.replace("max_iter: 2000", "max_iter: 3000"),
        "evaluation": text.replace("metrics: [accuracy]", "metrics: [accuracy, f1_macro]"),
        "data": text.replace("seed: 1}", "seed: 2}"),
    }
    seen = {before["churn"]}
    for edited in edits.values():
        write(repo, {"models/churn/mlops.yaml": edited})
        commit_all(repo, "edit")
        key = keys(plan(repo, "--all"))["churn"]
        assert key not in seen
        seen.add(key)


def test_container_and_promotion_changes_keep_the_key(repo: Path) -> None:
    before = keys(plan(repo, "--all"))
    text = spec_text("churn", "acme/gitops")
    text = text.replace("localhost:5000/fleet/churn", "ghcr.io/acme/churn")
    text = text.replace("repository: acme/gitops", "repository: acme/other-gitops")
    write(repo, {"models/churn/mlops.yaml": text})
    commit_all(repo, "move the image")
    assert keys(plan(repo, "--all"))["churn"] == before["churn"]


def test_data_files_are_dependencies(repo: Path) -> None:
    rows = "a,b,y\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(40))
    text = spec_text("iris", "acme/gitops").replace(
        "train: {builtin: iris}", "train: {path: ../../data/iris.csv, target: y}"
    )
    write(repo, {"models/iris/mlops.yaml": text, "data/iris.csv": rows})
    commit_all(repo, "iris from a file")
    before = keys(plan(repo, "--all"))["iris"]
    base = change(repo, {"data/iris.csv": rows + "41,2,1\n"})
    planned = plan(repo, "--base", base)
    assert names(planned) == ["iris"]
    assert planned["include"][0]["reason"] == "a file it trains from changed: data/iris.csv"
    assert planned["include"][0]["cache_key"] != before


def test_untracked_and_ignored_specs_are_not_planned(repo: Path) -> None:
    write(
        repo,
        {
            ".mlops/runs/x/mlops.yaml": spec_text("iris", "acme/gitops"),
            "scratch/mlops.yaml": "not even yaml: [",
        },
    )
    assert names(plan(repo, "--all")) == ["churn", "fraud", "iris"]


def test_two_specs_with_one_name_are_an_error_naming_both(repo: Path) -> None:
    write(repo, {"models/copy/mlops.yaml": spec_text("iris", "acme/gitops")})
    commit_all(repo, "copy")
    result = run_cli("plan", str(repo), "--all")
    assert result.code == 2
    lines = result.out.splitlines()
    assert lines[0].startswith("models/copy/mlops.yaml:3:")
    assert "also used by models/iris/mlops.yaml" in lines[0]
    assert lines[1].startswith("models/iris/mlops.yaml:3:")
    assert "also used by models/copy/mlops.yaml" in lines[1]


def test_an_invalid_spec_fails_the_plan_where_it_is(repo: Path) -> None:
    write(repo, {"models/iris/mlops.yaml": spec_text("iris", "acme/gitops") + "colour: red\n"})
    commit_all(repo, "typo")
    result = run_cli("plan", str(repo), "--all")
    assert result.code == 2
    assert result.out.startswith("models/iris/mlops.yaml:"), result.out


def test_an_unknown_base_says_how_to_fetch_it(repo: Path) -> None:
    result = run_cli("plan", str(repo), "--base", "origin/nowhere")
    assert result.code == 1
    assert "fetch-depth: 0" in result.err and "Traceback" not in result.err


def test_without_a_base_or_on_a_new_branch_every_model_runs(repo: Path) -> None:
    assert names(plan(repo)) == ["churn", "fraud", "iris"]
    assert names(plan(repo, "--base", "0" * 40)) == ["churn", "fraud", "iris"]


def test_in_a_pull_request_the_base_branch_is_the_default(repo: Path) -> None:
    git("update-ref", "refs/remotes/origin/main", "HEAD", cwd=repo)
    git("checkout", "--quiet", "-b", "feature", cwd=repo)
    change(repo, {"models/fraud/mlops.yaml": spec_text("fraud", "acme/gitops", 0.5)})
    env = {"GITHUB_BASE_REF": "main", "PATH": "/usr/bin:/bin"}
    result = run_cli("plan", str(repo), "--format", "json", env=env)
    assert result.code == 0, result.err
    assert names(json.loads(result.out)) == ["fraud"]


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("libs/features/**", "libs/features/a.py", True),
        ("libs/features/**", "libs/features/deep/er/a.py", True),
        ("libs/features/**", "libs/featuresX/a.py", False),
        ("libs/*.py", "libs/a.py", True),
        ("libs/*.py", "libs/sub/a.py", False),
        ("libs/**/a.py", "libs/a.py", True),
        ("libs/**/a.py", "libs/x/y/a.py", True),
        ("data/[ab].csv", "data/a.csv", True),
        ("data/[!ab].csv", "data/a.csv", False),
        ("data/?.csv", "data/c.csv", True),
    ],
)
def test_globs(pattern: str, path: str, expected: bool) -> None:
    assert matches(pattern, path) is expected


@pytest.mark.parametrize(
    "pattern", ["/etc/**", "../x/**", "libs//a", "libs/", "a**/b", "data/[ab.csv", "libs\\x"]
)
def test_unusable_globs_say_why(pattern: str) -> None:
    assert problem(pattern)


def test_a_spec_or_folder_restricts_the_plan_and_model_picks_one(repo: Path) -> None:
    write(repo, {"models/iris/mlops.yaml": "broken: [\n"})
    commit_all(repo, "break iris")
    only = plan(repo / "models" / "churn" / "mlops.yaml", "--all")
    assert names(only) == ["churn"]  # the broken spec elsewhere is not read
    assert names(plan(repo / "models" / "fraud", "--all")) == ["fraud"]
    assert names(
        plan(repo / "models" / "churn", repo / "models" / "fraud", "--model", "fraud")
    ) == ["fraud"]
    result = run_cli("plan", str(repo / "models" / "churn"), "--model", "nope")
    assert result.code == 1 and "(models: churn)" in result.err


# --- odd layouts and hostile input -----------------------------------------------------------


def test_a_spec_at_the_root_owns_only_what_no_nested_spec_owns(repo: Path) -> None:
    """A file belongs to the folder of the nearest spec above it: a spec at the repository
    root (or above other specs) is not retrained for every change to the models below it."""
    root = spec_text("iris", "acme/gitops").replace("name: iris", "name: everything")
    nested = spec_text("iris", "acme/gitops").replace("name: iris", "name: churn-eu")
    write(repo, {"mlops.yaml": root, "models/churn/eu/mlops.yaml": nested})
    commit_all(repo, "a root spec and a nested one")
    base = change(repo, {"models/churn/eu/weights.txt": "1\n"})
    planned = plan(repo, "--base", base)
    assert names(planned) == ["churn-eu"]
    base = change(repo, {"models/churn/notes.md": "x\n"})
    assert names(plan(repo, "--base", base)) == ["churn"]
    base = change(repo, {"tools/helper.py": "x = 1\n"})
    planned = plan(repo, "--base", base)
    assert names(planned) == ["everything"]
    assert planned["include"][0]["reason"] == "a file in its folder changed: tools/helper.py"
    assert planned["include"][0]["spec"] == "mlops.yaml"


def test_control_characters_in_changed_paths_cannot_inject_workflow_commands(repo: Path) -> None:
    """`mlops plan` prints in the workflow's log, where a line starting with `::` is a
    command to the runner; a pull request's file names must not be able to start one."""
    evil = "models/fraud/a\n::error title=pwned::injected\r\x1b[2J.txt"
    base = change(repo, {evil: "x\n"})
    result = run_cli("plan", str(repo), "--base", base)
    assert result.code == 0, result.err
    assert not any(line.startswith("::") for line in result.out.splitlines()), result.out
    assert "\r" not in result.out and "\x1b" not in result.out
    assert "models/fraud/a\\n::error title=pwned::injected\\r\\x1b[2J.txt" in result.out
    as_json = plan(repo, "--base", base)  # JSON escapes by itself: the path stays exact
    assert as_json["include"][0]["reason"] == f"a file in its folder changed: {evil}"


def test_a_shallow_clone_without_the_merge_base_says_how_to_fetch_it(
    repo: Path, tmp_path: Path
) -> None:
    base = change(repo, {"models/iris/notes.md": "1\n"})
    change(repo, {"models/iris/notes.md": "2\n"})
    shallow = tmp_path / "shallow"
    git("clone", "--quiet", "--depth", "1", repo.as_uri(), str(shallow))
    git("fetch", "--quiet", "--depth", "1", "origin", base, cwd=shallow)  # base, no history
    result = run_cli("plan", str(shallow), "--base", base)
    assert result.code == 1, result.out
    assert "no common history" in result.err and "fetch-depth: 0" in result.err, result.err
    assert "Traceback" not in result.err


def test_a_spec_that_is_a_symbolic_link_is_refused_where_it_is(repo: Path) -> None:
    """A link can name any file on the runner; its text would end up in error messages."""
    outside = repo.parent / "outside.yaml"
    outside.write_text(spec_text("iris", "acme/gitops").replace("name: iris", "name: linked"))
    (repo / "models" / "linked").mkdir()
    (repo / "models" / "linked" / "mlops.yaml").symlink_to(outside)
    commit_all(repo, "a linked spec")
    result = run_cli("plan", str(repo), "--all")
    assert result.code == 2, result.out + result.err
    assert result.out.startswith("models/linked/mlops.yaml:1:1: ")
    assert "symbolic link" in result.out


def test_a_deleted_or_moved_spec_is_listed_as_gone(repo: Path) -> None:
    """Deleting a model's folder runs nothing for it and says so; a move plans the spec at
    its new place (same name: same images and release records) and lists the old path."""
    base = git("rev-parse", "HEAD", cwd=repo).strip()
    git("rm", "--quiet", "-r", "models/fraud", cwd=repo)
    git("mv", "models/churn", "models/churn-v2", cwd=repo)
    commit_all(repo, "retire fraud, move churn")
    planned = plan(repo, "--base", base)
    assert names(planned) == ["churn"]
    assert planned["include"][0]["spec"] == "models/churn-v2/mlops.yaml"
    gone = [r["spec"] for r in planned["removed"]]
    assert gone == ["models/churn/mlops.yaml", "models/fraud/mlops.yaml"]
    assert "nothing to run" in planned["removed"][0]["reason"]
    text = run_cli("plan", str(repo), "--base", base).out
    assert "gone  models/fraud/mlops.yaml  (deleted or moved by this change" in text
    iris = run_cli("plan", str(repo / "models" / "iris"), "--base", base, "--format", "json")
    assert json.loads(iris.out)["removed"] == []  # outside the folders planned


def test_more_models_than_a_matrix_runs_is_a_clear_error(repo: Path) -> None:
    files = {
        f"models/m{i:03d}/mlops.yaml": spec_text("iris", "acme/gitops").replace(
            "name: iris", f"name: m{i:03d}"
        )
        for i in range(257)
    }
    write(repo, files)
    commit_all(repo, "many models")
    result = run_cli("plan", str(repo), "--all", "--format", "json")
    assert result.code == 1 and "at most 256 jobs" in result.err, result.err
    assert run_cli("plan", str(repo / "models" / "m000"), "--all", "--format", "json").code == 0


def test_a_tracked_link_in_the_inputs_is_keyed_by_its_target_never_followed(
    repo: Path,
) -> None:
    """A link that `inputs:` matches may point out of the repository: the key holds the
    link's target text (what git stores), so retargeting it is a change, and the file it
    points to is never read."""
    outside = repo.parent / "secret.txt"
    outside.write_text("one\n")
    (repo / "libs" / "features" / "link.txt").symlink_to(outside)
    commit_all(repo, "a link")
    before = keys(plan(repo, "--all"))
    outside.write_text("two\n")
    assert keys(plan(repo, "--all")) == before  # not followed
    (repo / "libs" / "features" / "link.txt").unlink()
    (repo / "libs" / "features" / "link.txt").symlink_to(repo.parent / "other.txt")
    commit_all(repo, "retarget")
    after = keys(plan(repo, "--all"))
    assert after["churn"] != before["churn"] and after["iris"] == before["iris"]

"""A model monorepo for the fleet tests: three specs, a shared library, a GitOps repository.

    models/churn/mlops.yaml      inputs: [libs/features/**]
    models/fraud/mlops.yaml      inputs: [libs/features/**]
    models/iris/mlops.yaml       no inputs
    libs/features/scaling.py     shared code
    README.md

Each spec trains fast (logistic regression on a bundled dataset, no bootstrap, no latency)
and promotes to staging (`on: push`) and production (`on: dispatch`, `requires: staging`)
in `promotion.repository`, a GitOps repository that is a local path or owner/name.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.fake_github import git

MODELS = {"churn": "wine", "fraud": "breast_cancer", "iris": "iris"}
SHARED = ("churn", "fraud")


def spec_text(name: str, repository: str, threshold: float = 0.8, inputs: bool = True) -> str:
    dataset = MODELS[name]
    shared = "inputs: [libs/features/**]\n" if inputs and name in SHARED else ""
    return f"""apiVersion: mlops/v1
kind: ModelPipeline
metadata: {{name: {name}}}
task: classification
{shared}data:
  train: {{builtin: {dataset}}}
  split: {{test_size: 0.3, seed: 1}}
model:
  estimator: sklearn.linear_model.LogisticRegression
  params: {{max_iter: 2000}}
evaluation:
  metrics: [accuracy]
  confidence: false
  latency: false
gate:
  champion: production
  thresholds:
    - {{metric: accuracy, min: {threshold}}}
container:
  image: localhost:5000/fleet/{name}
promotion:
  repository: {repository}
  environments:
    - name: staging
      on: push
      targets:
        - {{file: apps/{name}/staging/values.yaml, yaml_path: image.digest}}
    - name: production
      on: dispatch
      requires: staging
      targets:
        - {{file: apps/{name}/production/values.yaml, yaml_path: image.digest}}
"""


def gitops_layout() -> dict[str, str]:
    files = {"README.md": "GitOps repository\n"}
    for name in MODELS:
        for env in ("staging", "production"):
            files[f"apps/{name}/{env}/values.yaml"] = (
                f"image:\n  repository: localhost:5000/fleet/{name}\n  digest: ''\n"
            )
    return files


def write(folder: Path, files: dict[str, str]) -> None:
    for path, text in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(text)


def commit_all(folder: Path, message: str) -> str:
    git("add", "-A", cwd=folder)
    git("commit", "--quiet", "--allow-empty", "-m", message, cwd=folder)
    return git("rev-parse", "HEAD", cwd=folder).strip()


def model_repo(folder: Path, repository: str) -> Path:
    """The models repository, committed on `main`; `repository` is each spec's GitOps repo
    as written in the spec (relative to the spec's folder, or owner/name)."""
    folder.mkdir(parents=True, exist_ok=True)
    git("init", "--quiet", "-b", "main", cwd=folder)
    files = {f"models/{n}/mlops.yaml": spec_text(n, repository) for n in MODELS}
    files["libs/features/scaling.py"] = "def scale(x):\n    return x\n"
    files["README.md"] = "Our models\n"
    files[".gitignore"] = ".mlops/\n"
    write(folder, files)
    commit_all(folder, "three models")
    return folder


@contextmanager
def checked_out(folder: Path, repository: str) -> Iterator[tuple[Path, Path]]:
    """(models repository, local GitOps repository) made in `folder`, with the models
    repository as the working directory meanwhile (as in CI); `repository` as model_repo."""
    gitops = local_gitops(folder / "gitops")
    repo = model_repo(folder / "repo", repository)
    with working_directory(repo):
        yield repo, gitops


@contextmanager
def working_directory(folder: Path) -> Iterator[None]:
    """`folder` as the working directory meanwhile (contextlib.chdir is Python 3.11+)."""
    here = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(here)


def local_gitops(folder: Path) -> Path:
    """A local GitOps repository (a plain git repository on `main`)."""
    folder.mkdir(parents=True, exist_ok=True)
    git("init", "--quiet", "-b", "main", cwd=folder)
    write(folder, gitops_layout())
    commit_all(folder, "layout")
    return folder

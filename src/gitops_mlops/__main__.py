"""`python -m gitops_mlops` is the same as the `mlops` console script."""

from gitops_mlops.cli import entry

entry()

#!/usr/bin/env bash
# Install gitops-mlops from this action's own checkout into a venv under $RUNNER_TEMP, once
# per job (the other actions call this too; the second call finds the venv and returns).
# System Pythons refuse a bare `pip install`, hence the venv.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${RUNNER_TEMP:?}/gitops-mlops"
if [ ! -x "$venv/bin/mlops" ]; then
  "${MLOPS_PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$here[ml]"
fi
echo "$venv/bin" >> "$GITHUB_PATH"
export PATH="$venv/bin:$PATH"

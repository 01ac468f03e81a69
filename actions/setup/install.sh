#!/usr/bin/env bash
# Make the mlops CLI available. Sourced by every action of this repository (composite actions
# cannot `uses:` their siblings by relative path), so PATH applies to the calling step too.
# - MLOPS_VENV set: use that venv (a self-hosted runner with the CLI preinstalled);
# - else install from this action's own checkout into a venv under $RUNNER_TEMP, once per job.
# System Pythons refuse a bare `pip install`, hence the venv.
set -euo pipefail
mlops_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
mlops_venv="${MLOPS_VENV:-${RUNNER_TEMP:?}/gitops-mlops}"
if [ ! -x "$mlops_venv/bin/mlops" ]; then
  "${MLOPS_PYTHON:-python3}" -m venv "$mlops_venv"
  "$mlops_venv/bin/python" -m pip install --quiet --disable-pip-version-check "$mlops_root[ml]"
fi
echo "$mlops_venv/bin" >> "$GITHUB_PATH"
export PATH="$mlops_venv/bin:$PATH"

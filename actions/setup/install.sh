#!/usr/bin/env bash
# Make the mlops CLI available. Sourced by every action of this repository (composite actions
# cannot `uses:` their siblings by relative path), so PATH applies to the calling step too.
# - MLOPS_VENV set and holding the CLI: use that venv as it is (a self-hosted runner with the
#   CLI, and whatever extras it needs, preinstalled);
# - else install from this action's own checkout into a venv under $RUNNER_TEMP, once per job,
#   with the optional features MLOPS_EXTRAS names (comma- or space-separated: dask, s3, gs,
#   az, https, mlflow). A later action that asks for more installs those on top.
# System Pythons refuse a bare `pip install`, hence the venv.
set -euo pipefail
mlops_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
mlops_venv="${MLOPS_VENV:-${RUNNER_TEMP:?}/gitops-mlops}"
# Only names from this list reach pip's argument: the value comes from a workflow input.
mlops_extras="ml"
IFS=', ' read -r -a mlops_requested <<< "${MLOPS_EXTRAS:-}"
for mlops_extra in "${mlops_requested[@]}"; do
  case "$mlops_extra" in
    "") ;;
    dask|s3|gs|az|https|mlflow)
      case ",$mlops_extras," in *",$mlops_extra,"*) ;; *) mlops_extras="$mlops_extras,$mlops_extra" ;; esac ;;
    *)
      echo "::error::setup: extras: '${mlops_extra//[^A-Za-z0-9_.-]/?}' is not one of dask, s3, gs, az, https, mlflow (MLOPS_EXTRAS=${MLOPS_EXTRAS//[^A-Za-z0-9_., -]/?})" >&2
      exit 2 ;;
  esac
done
mlops_marker="$mlops_venv/.gitops-mlops-extras"
mlops_install=0
if [ ! -x "$mlops_venv/bin/mlops" ]; then
  "${MLOPS_PYTHON:-python3}" -m venv "$mlops_venv"
  mlops_install=1
elif [ -z "${MLOPS_VENV:-}" ]; then
  # Installed by an earlier action of this job: add what it did not install.
  mlops_installed="$(cat "$mlops_marker" 2>/dev/null || echo ml)"
  for mlops_extra in ${mlops_extras//,/ }; do
    case ",$mlops_installed," in *",$mlops_extra,"*) ;; *) mlops_install=1 ;; esac
  done
  if [ "$mlops_install" = 1 ]; then mlops_extras="$mlops_installed,$mlops_extras"; fi
fi
if [ "$mlops_install" = 1 ]; then
  "$mlops_venv/bin/python" -m pip install --quiet --disable-pip-version-check "$mlops_root[$mlops_extras]"
  echo "$mlops_extras" > "$mlops_marker"
fi
echo "$mlops_venv/bin" >> "$GITHUB_PATH"
export PATH="$mlops_venv/bin:$PATH"

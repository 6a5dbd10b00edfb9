#!/usr/bin/env bash
# The GPU campaign in one command: install into a fresh venv, then measure within the budget.
#
#   bash benchmarks/gpu_campaign.sh [TOTAL_SECONDS]      # default 540: 9 minutes in all
#
# Environment: WHEELS=DIR installs from a folder of wheels with no index (machines
# without internet); SKIP_INSTALL=1 uses the current Python as it is;
# MIXUP_JAX_DATA_DIR as for the tests. Results: benchmarks/results/<gpu name>/.
set -euo pipefail
cd "$(dirname "$0")/.."
total="${1:-540}"
export PYTHONUNBUFFERED=1
export MIXUP_JAX_DATA_DIR="${MIXUP_JAX_DATA_DIR:-$(cd .. && pwd)/shared/data}"

if [[ "${SKIP_INSTALL:-0}" != 1 ]]; then
  venv="$(mktemp -d)/venv"
  python3 -m venv --system-site-packages "$venv"
  . "$venv/bin/activate"
  if [[ -n "${WHEELS:-}" ]]; then
    pip install -q --no-index --find-links "$WHEELS" -e ".[experiments]" "jax[cuda12]" torch
  else
    pip install -q -e ".[experiments]" "jax[cuda12]" torch
  fi
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
# What the install took comes out of the measuring budget, with 20 s to spare.
python benchmarks/gpu_campaign.py --budget_s "$(( total - SECONDS - 20 ))"

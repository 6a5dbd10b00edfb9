#!/usr/bin/env bash
# The GPU campaign in one command: install into a fresh venv, then measure within the budget.
#
#   bash benchmarks/gpu_campaign.sh [TOTAL_SECONDS]      # default 540: 9 minutes in all
#
# It runs on the GPU image's own jax (CUDA), flax, optax, orbax, chex, torch and timm, as
# they are: nothing there is upgraded or replaced. Only the packages the image lacks
# (among NEEDED below) are installed, into a venv that sees the image's packages, and
# the project is imported from this checkout (PYTHONPATH), not installed. Inside an
# active venv, that venv is used instead.
#
# Environment: WHEELS=DIR installs the missing packages from a folder of wheels with no
# index (the GPU machines have no network); make that folder, on a machine with internet
# and the GPU image's Python version, with
#   pip download -d wheels --only-binary=:all: --python-version 3.11 \
#       grain ml_collections tensorflow-datasets absl-py "etils[epath]" matplotlib
# (about 40 MB; it must travel with the command). DRY_RUN=1 runs every part at tiny
# sizes on whatever device there is (the suite runs exactly this path on a CPU);
# MIXUP_JAX_DATA_DIR as for the tests. Results: benchmarks/results/<gpu name>/, or
# OUT=DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
total="${1:-540}"
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export MIXUP_JAX_DATA_DIR="${MIXUP_JAX_DATA_DIR:-$(cd .. && pwd)/shared/data}"

# import name -> pip name of what the campaign needs beyond the image's packages.
NEEDED="grain:grain ml_collections:ml_collections tensorflow_datasets:tensorflow-datasets \
absl:absl-py etils.epath:etils[epath] matplotlib:matplotlib"
if [[ -z "${VIRTUAL_ENV:-}" ]]; then  # the image's Python: a venv that sees its packages
  venv="$(mktemp -d)/venv"
  python3 -m venv --system-site-packages "$venv"
  . "$venv/bin/activate"
fi
missing=()
for pair in $NEEDED; do
  python -c "import ${pair%%:*}" 2>/dev/null || missing+=("${pair#*:}")
done
if (( ${#missing[@]} )); then
  echo "installing what the image lacks: ${missing[*]}"
  if [[ -n "${WHEELS:-}" ]]; then
    pip install -q --no-index --find-links "$WHEELS" "${missing[@]}"
  else
    pip install -q "${missing[@]}"
  fi
fi
python -c "import jax, torch; print('jax', jax.__version__, jax.devices(), '| torch', torch.__version__)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
# What the install took comes out of the measuring budget, with 20 s to spare.
extra=()
[[ "${DRY_RUN:-0}" == 1 ]] && extra+=(--dry-run)
[[ -n "${OUT:-}" ]] && extra+=(--out "$OUT")
python benchmarks/gpu_campaign.py --budget_s "$(( total - SECONDS - 20 ))" ${extra[@]+"${extra[@]}"}

#!/usr/bin/env bash
# The device check: every GPU measurement and the CUDA tests in one go (<= 500 s of sections on one H100), into
# <dir>, which gets three files (what a device call brings back): device_check.json (also printed at the end),
# device_check.log (this console) and device_check_logs.tar.gz (every section's logs and benchmark JSONs); the
# sections work in a scratch dir under $TMPDIR, removed at the end.
#   bash scripts/device_check.sh <dir>              # a CUDA machine
#   bash scripts/device_check.sh --cpu-smoke <dir>  # the same sections at toy size on the CPU (~1 min)
# On the offline GPU machine (torch, torchvision, timm, pandas, matplotlib, pytest; no Hydra, no network): carry
# wheels made here with ../shared/offline-wheels.sh (.whl/) and the Fashion-MNIST files (data/fashion-mnist/);
# they are installed into /tmp/site below. W&B is disabled in every run. Sections: scripts/device_check.py.
set -uo pipefail
cd "$(dirname "$0")/.."
smoke=()
if [ "${1:-}" = --cpu-smoke ]; then smoke=(--cpu-smoke); shift; fi
dir=${1:?usage: scripts/device_check.sh [--cpu-smoke] <dir>}
# A second check into the same <dir> (a rerun after a timeout) starts clean: the first one's files are moved
# aside, never mixed in or deleted (every section's runs would otherwise be refused as finished runs).
if [ -d "$dir" ] && [ -n "$(ls -A "$dir")" ]; then
  old="$dir.old-$(date +%Y%m%d-%H%M%S)"; mv "$dir" "$old"; echo "moved the previous $dir to $old"
fi
mkdir -p "$dir"
py=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
if ! "$py" -c "import hydra, hydra_plugins.hydra_joblib_launcher" 2>/dev/null && [ -d .whl ]; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 WANDB_MODE=disabled WANDB_SILENT=true
"$py" scripts/device_check.py "${smoke[@]}" "$dir" 2>&1 | tee "$dir/device_check.log"

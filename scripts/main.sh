#!/usr/bin/env bash
# Set up (idempotent) and run the main job: the sample concept through the DVC pipeline, offline backend.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"  # dvc.yaml's stage command is `s9 stage …`
export DVC_NO_ANALYTICS=1
s9 plan       # what will be generated, and what it would cost
s9 repro      # every stale scene in parallel, recorded in dvc.lock as `dvc repro` would
dvc status    # DVC's own word: nothing is stale now
s9 status

#!/usr/bin/env bash
# Set up (idempotent), lint, then run the whole test suite, slow tests included, on all cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/system-deps.sh
.venv/bin/ruff check s9 tests bench
.venv/bin/python -m pytest -n auto --durations=15 "$@"

#!/usr/bin/env bash
# Create .venv (once) and install s9 with its test tools into it. Safe to run again: pip skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade "pip>=23"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]"

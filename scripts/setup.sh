#!/usr/bin/env bash
# Create .venv (once) and install s9 with its test tools into it. Safe to run again: pip skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
# Some machines' pip config names index folders that do not exist; hide only that warning.
quiet_pip() { .venv/bin/python -m pip --quiet --disable-pip-version-check "$@" 2> >(grep -v "is ignored: it is neither" >&2); }
quiet_pip install --upgrade "pip>=23"
# constraints.txt pins every package to the versions the offline renderer's bytes were checked with.
quiet_pip install -c constraints.txt -e ".[test]"

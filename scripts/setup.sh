#!/usr/bin/env bash
# Create .venv (once) and install s9 with its test tools into it. Safe to run again: when pyproject.toml,
# constraints.txt and this script are what the last install used (a stamp under .venv/), it does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
STAMP=.venv/.s9-installed
want=$(cat pyproject.toml constraints.txt scripts/setup.sh | sha256sum | cut -d' ' -f1)
# The install is editable (code edits need no reinstall); only the project's metadata and pins need one.
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x .venv/bin/s9 ] \
        && .venv/bin/python -c "import s9" 2>/dev/null; then
    exit 0
fi
# Some machines' pip config names index folders that do not exist; hide only that warning.
quiet_pip() { .venv/bin/python -m pip --quiet --disable-pip-version-check "$@" 2> >(grep -v "is ignored: it is neither" >&2); }
quiet_pip install --upgrade "pip>=23"
# constraints.txt pins every package to the versions the offline renderer's bytes were checked with.
quiet_pip install -c constraints.txt -e ".[test]"
echo "$want" > "$STAMP"

#!/usr/bin/env bash
# The system programs some tests drive, installed from Debian's packages only when missing (idempotent):
# chromium (the review page is checked in a real headless browser) and tmux (terminal screens are read).
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
    apt=(apt-get)
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    apt=(sudo apt-get)
else
    echo "note: ${missing[*]} not installed and no root to install them: the tests that need them are skipped" >&2
    exit 0
fi
echo "installing ${missing[*]} (Debian packages) for the browser and terminal tests" >&2
"${apt[@]}" update -qq
DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq "${missing[@]}" >/dev/null

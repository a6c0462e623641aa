#!/usr/bin/env bash
# Prepares the Python interop peer: a virtualenv under target/ with the `websockets` package.
# Prints the venv's python path on success; exits 3 when no python3 interpreter is available.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/target/pyenv"
py="$venv/bin/python"
command -v python3 >/dev/null 2>&1 || { echo "python3 not found" >&2; exit 3; }
if [ ! -x "$py" ]; then
    python3 -m venv "$venv" >&2
fi
if ! "$py" -c 'import websockets' 2>/dev/null; then
    "$py" -m pip install --quiet --disable-pip-version-check 'websockets>=13,<17' >&2
fi
echo "$py"

#!/usr/bin/env bash
# Makes Node's socket.io server and socket.io-client available for tests/socketio.rs: Node and
# npm from the system package manager when missing, the two packages from the npm registry
# into a folder of their own under target/ (not committed). Idempotent.
# Prints the folder (its node_modules holds both) on success; on failure says why on stderr and
# exits non-zero.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${WSRELAY_SOCKETIO_DIR:-$root/target/socketio}"
if [ -f "$dir/node_modules/socket.io/package.json" ] && [ -f "$dir/node_modules/socket.io-client/package.json" ]; then
    echo "$dir"; exit 0
fi
command -v node >/dev/null 2>&1 || "$root/scripts/apt-install.sh" nodejs
command -v npm >/dev/null 2>&1 || "$root/scripts/apt-install.sh" npm
mkdir -p "$dir"
cd "$dir"
[ -f package.json ] || echo '{"name":"wsrelay-socketio-test","private":true}' > package.json
# A lock on the folder: concurrent test runs install once.
exec 9>"$dir/.install.lock"
flock 9
if [ ! -f node_modules/socket.io-client/package.json ] || [ ! -f node_modules/socket.io/package.json ]; then
    npm install --no-audit --no-fund --loglevel=error socket.io@4 socket.io-client@4 >&2
fi
echo "$dir"

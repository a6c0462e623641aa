#!/usr/bin/env bash
# Makes Node.js and the `ws` package available for the Node client tests: `node` and `npm`
# from the system package manager (Debian's `nodejs` and `npm`) when missing, and `ws` from the
# npm registry into target/node-ws (not committed). Idempotent.
# Prints two lines on success: the node binary's path, then the node_modules folder to put in
# NODE_PATH. On failure says why on stderr and exits non-zero (3: cannot install at all).
# npm's and apt-get's output goes to stderr so the first (slow) install is visible.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="$root/target/node-ws"
apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "$1 is not installed and apt-get is not available" >&2; exit 3
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "$1 is not installed and installing it needs root" >&2; exit 3
    fi
    export DEBIAN_FRONTEND=noninteractive
    echo "install-node-ws.sh: installing Debian's $1 package" >&2
    if ! apt-get install -y -q --no-install-recommends "$1" >&2; then
        apt-get update -q >&2 || true
        apt-get install -y -q --no-install-recommends "$1" >&2
    fi
}
command -v node >/dev/null 2>&1 || apt_install nodejs
command -v node >/dev/null 2>&1 || { echo "the nodejs package installed but node is missing" >&2; exit 4; }
if [ ! -f "$dir/node_modules/ws/package.json" ]; then
    command -v npm >/dev/null 2>&1 || apt_install npm
    command -v npm >/dev/null 2>&1 || { echo "the npm package installed but npm is missing" >&2; exit 4; }
    mkdir -p "$dir"
    echo "install-node-ws.sh: installing ws from the npm registry into $dir" >&2
    npm install --prefix "$dir" --no-audit --no-fund --loglevel=warn 'ws@^8' >&2 \
        || { echo "npm could not install ws (is the registry reachable?)" >&2; exit 3; }
fi
command -v node
echo "$dir/node_modules"

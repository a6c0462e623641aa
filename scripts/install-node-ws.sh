#!/usr/bin/env bash
# Makes Node.js and the `ws` package available for the Node client test: `node` and `npm` from
# Debian's `nodejs` and `npm` packages (through apt-install.sh) when missing, and `ws` from the
# npm registry into target/node-ws (not committed). Idempotent.
# Prints two lines on success: the node binary's path, then the node_modules folder to put in
# NODE_PATH. On failure says why on stderr and exits non-zero (3: cannot install here).
# npm's output goes to stderr so the first install is visible.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="$(dirname "$here")/target/node-ws"
command -v node >/dev/null 2>&1 || "$here/apt-install.sh" nodejs
command -v node >/dev/null 2>&1 || { echo "the nodejs package installed but node is missing" >&2; exit 4; }
if [ ! -f "$dir/node_modules/ws/package.json" ]; then
    command -v npm >/dev/null 2>&1 || "$here/apt-install.sh" npm
    command -v npm >/dev/null 2>&1 || { echo "the npm package installed but npm is missing" >&2; exit 4; }
    mkdir -p "$dir"
    echo "install-node-ws.sh: installing ws from the npm registry into $dir" >&2
    npm install --prefix "$dir" --no-audit --no-fund --loglevel=warn 'ws@^8' >&2 \
        || { echo "npm could not install ws (is the registry reachable?)" >&2; exit 3; }
fi
command -v node
echo "$dir/node_modules"

#!/usr/bin/env bash
# Makes headless Chromium available for the browser tests, from the system package manager
# (Debian's `chromium` package). Idempotent: does nothing when Chromium is already installed.
# Prints the chromium binary's path on success; on failure says why on stderr and exits
# non-zero. apt-get's progress goes to stderr so the first (slow) install is visible.
set -euo pipefail
found() {
    local bin
    for bin in chromium chromium-browser; do
        if command -v "$bin" >/dev/null 2>&1; then command -v "$bin"; return 0; fi
    done
    [ -x /usr/bin/chromium ] && { echo /usr/bin/chromium; return 0; }
    return 1
}
found && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium is not installed and apt-get is not available" >&2; exit 3
fi
if [ "$(id -u)" != 0 ]; then
    echo "chromium is not installed and installing it needs root" >&2; exit 3
fi
export DEBIAN_FRONTEND=noninteractive
echo "install-chromium.sh: installing Debian's chromium package (first run only)" >&2
# Without recommends: no desktop integration, fonts beyond the dependencies, or drivers.
if ! apt-get install -y -q --no-install-recommends chromium >&2; then
    apt-get update -q >&2 || true
    apt-get install -y -q --no-install-recommends chromium >&2
fi
found || { echo "the chromium package installed but no chromium binary was found" >&2; exit 4; }

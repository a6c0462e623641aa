#!/usr/bin/env bash
# Makes headless Chromium available for the browser test, from Debian's `chromium` package
# (through apt-install.sh). Idempotent: does nothing when Chromium is already installed.
# Prints the chromium binary's path on success; on failure says why on stderr and exits
# non-zero (3: nothing can be installed here).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
found() {
    command -v chromium 2>/dev/null || command -v chromium-browser 2>/dev/null \
        || { [ -x /usr/bin/chromium ] && echo /usr/bin/chromium; }
}
found && exit 0
"$here/apt-install.sh" chromium
found || { echo "the chromium package installed but no chromium binary was found" >&2; exit 4; }

#!/usr/bin/env bash
# Installs Debian packages for the install scripts (install-*.sh): `apt-install.sh PACKAGE...`, without recommends, refreshing the package
# lists only when a first attempt fails. apt-get's output goes to stderr, so a slow first
# install is visible. Exits 3, saying why on stderr, where nothing can be installed (no apt-get,
# not root).
set -euo pipefail
if ! command -v apt-get >/dev/null 2>&1; then
    echo "$* not installed and apt-get is not available" >&2; exit 3
fi
if [ "$(id -u)" != 0 ]; then
    echo "$* not installed and installing needs root" >&2; exit 3
fi
export DEBIAN_FRONTEND=noninteractive
echo "apt-install.sh: installing Debian's $*" >&2
if ! apt-get install -y -q --no-install-recommends "$@" >&2; then
    apt-get update -q >&2 || true
    apt-get install -y -q --no-install-recommends "$@" >&2
fi

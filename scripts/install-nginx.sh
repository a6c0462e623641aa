#!/usr/bin/env bash
# Makes nginx available for the benchmark runner, from the system package manager.
# Prints the nginx binary's path on success; on failure says why on stderr and exits non-zero.
set -euo pipefail
if command -v nginx >/dev/null 2>&1; then command -v nginx; exit 0; fi
[ -x /usr/sbin/nginx ] && { echo /usr/sbin/nginx; exit 0; }
here="$(dirname "$0")"
"$here/apt-install.sh" nginx-light 2>/dev/null || "$here/apt-install.sh" nginx
# Debian's package starts a system nginx on port 80; the runner uses its own instances.
(command -v service >/dev/null && service nginx stop >/dev/null 2>&1) || true
command -v nginx || echo /usr/sbin/nginx

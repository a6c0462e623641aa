#!/usr/bin/env bash
# Makes nginx available for the benchmark runner, from the system package manager.
# Prints the nginx binary's path on success; on failure says why on stderr and exits non-zero.
set -euo pipefail
if command -v nginx >/dev/null 2>&1; then command -v nginx; exit 0; fi
[ -x /usr/sbin/nginx ] && { echo /usr/sbin/nginx; exit 0; }
if ! command -v apt-get >/dev/null 2>&1; then
    echo "nginx is not installed and apt-get is not available" >&2; exit 3
fi
if [ "$(id -u)" != 0 ]; then
    echo "nginx is not installed and installing it needs root" >&2; exit 3
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2 || true
apt-get install -y -qq nginx-light >&2 2>/dev/null || apt-get install -y -qq nginx >&2
# Debian's package starts a system nginx on port 80; the runner uses its own instances.
(command -v service >/dev/null && service nginx stop >/dev/null 2>&1) || true
command -v nginx || echo /usr/sbin/nginx

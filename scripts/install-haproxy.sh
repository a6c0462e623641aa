#!/usr/bin/env bash
# Makes HAProxy available for the multi-instance test (tests/scale_out.rs), from the system
# package manager (Debian's `haproxy`). Prints the haproxy binary's path on success; on failure
# says why on stderr and exits non-zero. Idempotent: an installed haproxy is used as it is.
set -euo pipefail
if command -v haproxy >/dev/null 2>&1; then command -v haproxy; exit 0; fi
[ -x /usr/sbin/haproxy ] && { echo /usr/sbin/haproxy; exit 0; }
"$(dirname "$0")/apt-install.sh" haproxy
# Debian's package may start a system haproxy; the test runs its own instances.
(command -v service >/dev/null && service haproxy stop >/dev/null 2>&1) || true
command -v haproxy || echo /usr/sbin/haproxy

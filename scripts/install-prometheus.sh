#!/usr/bin/env bash
# Makes Prometheus (the server and promtool) available for the observability tests, from the
# system package manager (Debian's `prometheus` package ships both).
# Prints the two paths, promtool's first, one a line; on failure says why on stderr and exits
# non-zero.
set -euo pipefail
found() {
    local promtool prometheus
    promtool=$(command -v promtool 2>/dev/null || { [ -x /usr/bin/promtool ] && echo /usr/bin/promtool; } || true)
    prometheus=$(command -v prometheus 2>/dev/null || { [ -x /usr/bin/prometheus ] && echo /usr/bin/prometheus; } || true)
    if [ -n "$promtool" ] && [ -n "$prometheus" ]; then
        echo "$promtool"; echo "$prometheus"; return 0
    fi
    return 1
}
found && exit 0
# Without recommends (apt-install.sh's way): the node exporter and the web UI's assets are
# not needed.
"$(dirname "$0")/apt-install.sh" prometheus
# Debian's package may start a system Prometheus on port 9090; the tests run their own.
(command -v service >/dev/null && service prometheus stop >/dev/null 2>&1) || true
found || { echo "the prometheus package installed but promtool or prometheus is missing" >&2; exit 4; }

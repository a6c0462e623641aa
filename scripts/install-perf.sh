#!/usr/bin/env bash
# Makes perf available for the benchmark runner's flame graph (`compare --flame`), from the
# system package manager (Debian's linux-perf). Prints perf's path on success; on failure says
# why on stderr and exits non-zero.
set -euo pipefail
if command -v perf >/dev/null 2>&1; then command -v perf; exit 0; fi
[ -x /usr/bin/perf ] && { echo /usr/bin/perf; exit 0; }
here="$(dirname "$0")"
"$here/apt-install.sh" linux-perf
command -v perf || echo /usr/bin/perf

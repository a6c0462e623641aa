#!/bin/bash
# Build first: cargo build --release -p wsrelay --bin wsrelay -p wsrelay-bench
# Usage: scripts/strace-splice.sh  (env: SIZE=bytes, OUT=dir for the strace-*.txt summaries)
# Syscall counts (strace -c -f) of wsrelay over a 2 s bulk run of 1 MiB messages, spliced and copied.
T=${T:-$(cd "$(dirname "$0")/.." && pwd)/target/release}
$T/wsrelay-bench echo --listen 127.0.0.1:19110 & ECHO=$!
common="--upstream ws://127.0.0.1:19110/ --log warn --no-utf8-validation --max-frame-size 0 --max-message-size 0 --workers 1"
port=19111
for mode in "--splice-threshold 65536" "--no-splice"; do
  port=$((port+1))
  out=${OUT:-/tmp}/strace-$(echo $mode | tr -d ' -').txt
  strace -c -f -o $out timeout -s TERM 4 $T/wsrelay --listen 127.0.0.1:$port $common $mode >/dev/null & P=$!
  sleep 1
  $T/wsrelay-bench load --url ws://127.0.0.1:$port/ --size ${SIZE:-1048576} --window 16 --duration 2s --json | python3 -c "import json,sys; r=json.load(sys.stdin); print('$mode', round(r['mb_per_s'],1), 'MB/s', r['bytes'], 'bytes')"
  wait $P
done
kill $ECHO

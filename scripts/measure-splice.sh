#!/bin/bash
# Build first: cargo build --release -p wsrelay --bin wsrelay -p wsrelay-bench
# Usage: scripts/measure-splice.sh  (env: REMASK=never|auto, THRESHOLD=bytes, DUR=4s, T=bin dir)
# Quick copy-vs-splice measurement: wsrelay copying (splice = false) vs splicing
# (splice_threshold = 65536), bulk binary messages of 64 KiB and 1 MiB (1 connection, 16 in
# flight) through the bench's echo, 3 interleaved repetitions; the proxy's CPU time
# (utime+stime of /proc/PID/stat) per MB the load tool counted.
# REMASK=never: the load tool masks every frame with one fixed key, which makes the relay
# re-mask (and so copy) every client frame under the default remask = "auto"; with "never"
# both directions pass untouched (both systems get the same setting).
set -u
T=${T:-$(cd "$(dirname "$0")/.." && pwd)/target/release}
DUR=${DUR:-4s}
REMASK=${REMASK:-auto}
TCK=$(getconf CLK_TCK)
D=$(mktemp -d)
$T/wsrelay-bench echo --listen 127.0.0.1:19100 & ECHO=$!
conf() { # port, splice keys
  printf '[defaults]\nvalidate_utf8 = false\nmax_frame_size = 0\nmax_message_size = 0\nremask = "%s"\n%s\n[[listeners]]\naddress = "127.0.0.1:%s"\n[[routes]]\npath_prefix = "/"\nupstream = "ws://127.0.0.1:19100/"\n' "$REMASK" "$2" "$1"
}
conf 19101 "splice = false" > $D/copy.toml
conf 19102 "splice_threshold = ${THRESHOLD:-65536}" > $D/splice.toml
WSRELAY_LOG=warn $T/wsrelay --config $D/copy.toml >/dev/null & COPY=$!
WSRELAY_LOG=warn $T/wsrelay --config $D/splice.toml >/dev/null & SPLICE=$!
sleep 1
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
for rep in 1 2 3; do
  for size in 65536 1048576; do
    for sys in copy splice; do
      if [ $sys = copy ]; then pid=$COPY; port=19101; else pid=$SPLICE; port=19102; fi
      before=$(cpu $pid)
      out=$($T/wsrelay-bench load --url ws://127.0.0.1:$port/ --size $size --window 16 --duration $DUR --json)
      after=$(cpu $pid)
      python3 - "$rep" "$size" "$sys" "$before" "$after" "$TCK" "$out" <<'PY'
import json,sys
rep,size,sysname,b,a,tck,out=sys.argv[1:]
r=json.loads(out)
mb=r['bytes']/1e6
cpu=(float(a)-float(b))/float(tck)
print(f"rep {rep} size {int(size)//1024:>5} KiB {sysname:6} {r['mb_per_s']:8.1f} MB/s  p50 {r['latency_us']['p50']} us  proxy cpu {cpu:.2f} s  cpu ms/MB {1000*cpu/mb:.3f}")
PY
    done
  done
done
kill $COPY $SPLICE $ECHO
rm -r $D

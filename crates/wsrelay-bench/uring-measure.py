#!/usr/bin/env python3
"""Measures the io_uring relay prototype against the tokio gateway (URING.md).

Starts one echo upstream and four proxies on loopback (wsrelay as the bench runner starts it;
uring-relay with single-shot receives, the same on rings without DEFER_TASKRUN, and with
multishot receives), then runs the load
tool against each in turn, interleaved, REPS times per workload. Around every load run it reads
the proxy's utime+stime from /proc/<pid>/stat (all threads) and prints messages/s, MB/s and CPU
per message. Usage: uring-measure.py TARGET_DIR [REPS] [SECONDS]
"""
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time

target = sys.argv[1]
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
seconds = sys.argv[3] if len(sys.argv) > 3 else "5"
bench = os.path.join(target, "wsrelay-bench")
gateway = os.path.join(target, "wsrelay")
tick = os.sysconf("SC_CLK_TCK")

ECHO = 19101
systems = {
    "tokio": (19102, [gateway, "--listen", "127.0.0.1:19102", "--upstream", f"ws://127.0.0.1:{ECHO}/",
                      "--log", "warn", "--max-frame-size", "0", "--max-message-size", "0",
                      "--no-utf8-validation"]),
    "uring": (19103, [bench, "uring-relay", "--listen", "127.0.0.1:19103", "--upstream",
                      f"ws://127.0.0.1:{ECHO}/", "--workers", "2"]),
    "uring-plain": (19105, [bench, "uring-relay", "--listen", "127.0.0.1:19105", "--upstream",
                            f"ws://127.0.0.1:{ECHO}/", "--workers", "2", "--plain-ring"]),
    "uring-multishot": (19104, [bench, "uring-relay", "--listen", "127.0.0.1:19104", "--upstream",
                                f"ws://127.0.0.1:{ECHO}/", "--workers", "2", "--recv", "multishot"]),
}
workloads = {
    "small": ["--connections", "100", "--size", "32", "--window", "1"],
    "bulk": ["--connections", "1", "--size", "65536", "--window", "16"],
}


def wait(port):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.025)
    raise SystemExit(f"nothing listens on {port}")


def cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick  # utime, stime


procs = [subprocess.Popen([bench, "echo", "--listen", f"127.0.0.1:{ECHO}"])]
wait(ECHO)
pids = {}
for name, (port, cmd) in systems.items():
    p = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    procs.append(p)
    wait(port)
    pids[name] = p.pid
time.sleep(1)
results = {(w, s): [] for w in workloads for s in systems}
try:
    for w, args in workloads.items():
        for r in range(reps):
            for name, (port, _) in systems.items():
                before = cpu(pids[name])
                out = subprocess.run([bench, "load", "--url", f"ws://127.0.0.1:{port}/", "--duration",
                                      f"{seconds}s", "--json"] + args, capture_output=True, text=True,
                                     timeout=120)
                after = cpu(pids[name])
                rep = json.loads(out.stdout)
                used = after - before
                row = {
                    "msgs_s": rep["msgs_per_s"], "mb_s": rep["mb_per_s"], "messages": rep["messages"],
                    "cpu_s": used, "us_per_msg": used * 1e6 / max(rep["messages"], 1),
                    "cpu_s_per_gb": used / max(rep["bytes"] / 1e9, 1e-9), "p50": rep["latency_us"]["p50"],
                    "failed": rep["failed_connections"],
                }
                results[(w, name)].append(row)
                print(f"{w:5} rep {r} {name:16} msgs/s {row['msgs_s']:9.0f} MB/s {row['mb_s']:7.1f} "
                      f"cpu {used:5.2f}s  us/msg {row['us_per_msg']:7.2f}  cpu-s/GB {row['cpu_s_per_gb']:6.3f} "
                      f"p50 {row['p50']}us failed {row['failed']}", flush=True)
    print("\nmedians (min..max)")
    for (w, name), rows in results.items():
        def med(k):
            vals = [x[k] for x in rows]
            return f"{statistics.median(vals):.2f} ({min(vals):.2f}..{max(vals):.2f})"
        print(f"{w:5} {name:16} msgs/s {med('msgs_s')}  MB/s {med('mb_s')}  us/msg {med('us_per_msg')}  "
              f"cpu-s/GB {med('cpu_s_per_gb')}")
finally:
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()

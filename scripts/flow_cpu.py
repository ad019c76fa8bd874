#!/usr/bin/env python3
"""Host CPU per checkout flow over HTTP (issue 21's measure).

Starts `emporium serve` (strict, the demo catalog, a fresh data directory) on a loopback
port, warms up with a 2 s load run, then runs the load generator for DURATION seconds
with SHOPPERS shoppers doing the full flow (create cart, add 2 items, checkout). The
server's CPU is read from /proc/PID/stat (utime + stime) before and after; the client's
from the kernel's accounting of the finished child (wait4). Also counts the server's
context switches per flow (all its threads, from /proc), which varies far less between
runs than CPU time. Prints one JSON line.

    scripts/flow_cpu.py BINARY LOADGEN [SHOPPERS] [DURATION]
"""
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

binary, loadgen = sys.argv[1], sys.argv[2]
shoppers = int(sys.argv[3]) if len(sys.argv) > 3 else 16
duration = int(sys.argv[4]) if len(sys.argv) > 4 else 8
hz = os.sysconf("SC_CLK_TCK")


def switches(pid):
    """Context switches of every thread of `pid` so far (voluntary + involuntary): a
    steadier measure of wake-ups than CPU time on a shared machine."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / hz  # utime + stime


with tempfile.TemporaryDirectory() as d:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", f"{d}/data",
         "--admin-token", "t"],
        stdout=subprocess.DEVNULL, stderr=open(f"{d}/log", "w"))
    try:
        for _ in range(500):
            try:
                urllib.request.urlopen(f"{url}/ready", timeout=1)
                break
            except Exception:
                time.sleep(0.02)
        common = [loadgen, "--url", url, "--admin-token", "t", "--shoppers", str(shoppers),
                  "--mix", "flow"]
        subprocess.run(common + ["--duration", "2", "--restock", "1000000", "--no-audit"],
                       check=True, stdout=subprocess.DEVNULL)
        before = ticks(server.pid)
        switched = switches(server.pid)
        client = subprocess.Popen(common + ["--duration", str(duration), "--json"],
                                  stdout=subprocess.PIPE)
        out = client.stdout.read()
        _, status, usage = os.wait4(client.pid, 0)
        after = ticks(server.pid)
        switched = switches(server.pid) - switched
        report = json.loads(out)
        flows = report["flows"]
        server_ms = (after - before) * 1000 / flows
        client_ms = (usage.ru_utime + usage.ru_stime) * 1000 / flows
        print(json.dumps({
            "shoppers": shoppers,
            "flows_per_sec": round(report["flows_per_sec"]),
            "server_cpu_ms_per_flow": round(server_ms, 3),
            "client_cpu_ms_per_flow": round(client_ms, 3),
            "host_cpu_ms_per_flow": round(server_ms + client_ms, 3),
            "server_switches_per_flow": round(switched / flows, 1),
            "audit_ok": report.get("audit_ok"),
        }))
    finally:
        server.terminate()
        server.wait()

#!/usr/bin/python3
"""Bench 7: Health.Check latency while N jobs write as fast as they can
(`yes`, N = 0, 1, 4, 16), with a 4 KiB log cap (the worst case: every write
pushes bytes out of the cap), against N = 0 in the same run. The figure is
the p50/p99 over several seconds per N; a loop that any source can starve
shows here as seconds instead of milliseconds.

  bench/loop_stall.py [--build DIR] [--seconds S] [--rows-json]
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import grpc

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def pct(samples, q):
    s = sorted(samples)
    return s[min(len(s) - 1, int(len(s) * q))]


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def start_request(path, arg):
    # runrpc.v1.StartRequest{command: Command{path, args: [arg]}} by hand, so
    # that the bench needs no generated stubs
    p, a = path.encode(), arg.encode()
    cmd = b"\x0a" + varint(len(p)) + p + b"\x12" + varint(len(a)) + a
    return b"\x0a" + varint(len(cmd)) + cmd


def job_id(resp):
    assert resp[0] == 0x0A
    return resp[2:2 + resp[1]].decode()


def stop_request(jid):
    j = jid.encode()
    return b"\x0a" + varint(len(j)) + j + b"\x10\x00"


def run(build, seconds, counts):
    rund = os.environ.get("RUND") or os.path.join(build, "src/rund/rund")
    work = tempfile.mkdtemp(prefix="rr-stall-", dir="/tmp")
    sock = os.path.join(work, "rund.sock")
    errf = open(os.path.join(work, "rund.stderr"), "wb")
    proc = subprocess.Popen([rund, "--listen", "unix:" + sock, "--state-dir",
                             os.path.join(work, "state"), "--max-log-bytes", "4K"],
                            stdin=subprocess.DEVNULL, stdout=errf, stderr=errf)
    results = {}
    try:
        ch = grpc.insecure_channel("unix:" + sock)
        check = ch.unary_unary("/grpc.health.v1.Health/Check")
        start = ch.unary_unary("/runrpc.v1.Jobs/Start")
        stop = ch.unary_unary("/runrpc.v1.Jobs/Stop")
        grpc.channel_ready_future(ch).result(timeout=20)
        for n in counts:
            jobs = [job_id(start(start_request("/usr/bin/yes", "y"), timeout=10))
                    for _ in range(n)]
            time.sleep(0.3)
            lat = []
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                t0 = time.monotonic()
                check(b"", timeout=30)
                lat.append(time.monotonic() - t0)
                time.sleep(0.005)
            for j in jobs:
                stop(stop_request(j), timeout=30)
            results[n] = (pct(lat, 0.5), pct(lat, 0.99), max(lat), len(lat))
            log("bench 7: %2d writers: %d checks, p50 %.2f ms, p99 %.2f ms, max %.1f ms"
                % (n, len(lat), results[n][0] * 1e3, results[n][1] * 1e3, results[n][2] * 1e3))
            time.sleep(0.3)
        ch.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        errf.close()
        shutil.rmtree(work, ignore_errors=True)
    base = results[0][1]
    rows = []
    for n in counts:
        if n == 0:
            continue
        p50, p99, mx, _ = results[n]
        rows.append(("7 Health p99, %d fast writers" % n, "%.2f ms" % (base * 1e3),
                     "%.2f ms" % (p99 * 1e3), "%.1fx" % (p99 / base), "< 50 ms",
                     ("ok" if p99 < 0.05 else "MISSED") + " (max %.0f ms)" % (mx * 1e3)))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.environ.get("BUILD_DIR", "build"))
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--rows-json", action="store_true")
    a = ap.parse_args()
    build = a.build if os.path.isabs(a.build) else os.path.join(ROOT, a.build)
    rows = run(build, a.seconds, [0, 1, 4, 16])
    if a.rows_json:
        print(json.dumps({"rows": rows}))
    else:
        for r in rows:
            print("  ".join(r))


if __name__ == "__main__":
    main()

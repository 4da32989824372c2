#!/usr/bin/python3
"""Bench 9: many live jobs in one rund (issue 16). Starts N `sleep 1000`
jobs (default 10,000; rund --quota-running/--quota-jobs set to allow them),
then reads rund's open fds (/proc/PID/fd) and RSS (VmRSS) against the same
rund before the first of them: fds and KiB per running job. With them all
running, another caller (uid 65534, unprivileged) checks Health and starts
and stops a job of its own. Then every job is stopped, rund is stopped, and
any job process still alive is killed by its pid (from Start's response).
Bounded: starts stop at --seconds; the figures are then per job started.

  bench/livejobs.py [--build DIR] [--jobs N] [--rounds R] [--seconds S] [--rows-json]
"""
import argparse
import concurrent.futures
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from loop_stall import varint  # noqa: E402  (the bench's hand-made protobuf encoding)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
NOBODY = 65534


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def field(num, data):
    return bytes([num << 3 | 2]) + varint(len(data)) + data


def start_request(path, *args):
    # runrpc.v1.StartRequest{command: Command{path, args}} by hand: no stubs needed
    cmd = field(1, path.encode()) + b"".join(field(2, a.encode()) for a in args)
    return field(1, cmd)


def parse_start(resp):
    """(job_id, pid) of a StartResponse."""
    jid, pid, i = None, 0, 0
    while i < len(resp):
        key = resp[i]
        i += 1
        if key == 0x0A:
            n = resp[i]
            jid = resp[i + 1:i + 1 + n].decode()
            i += 1 + n
        elif key == 0x10:
            shift = 0
            while True:
                b = resp[i]
                i += 1
                pid |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    break
        else:
            break
    return jid, pid


def stop_request(jid):
    return field(1, jid.encode()) + b"\x10\x00"  # grace_ms 0


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# Runs as uid 65534: Health, then Start + Stop of a job of its own.
_OTHER = r"""
import grpc, sys
sys.path.insert(0, sys.argv[2])
import livejobs as lj
ch = grpc.insecure_channel("unix:" + sys.argv[1])
out = []
try:
    ch.unary_unary("/grpc.health.v1.Health/Check")(b"", timeout=30)
    out.append("health ok")
    jid, pid = lj.parse_start(ch.unary_unary("/runrpc.v1.Jobs/Start")(
        lj.start_request("/bin/sleep", "1000"), timeout=30))
    ch.unary_unary("/runrpc.v1.Jobs/Stop")(lj.stop_request(jid), timeout=30)
    out.append("start+stop ok")
except grpc.RpcError as e:
    out.append("%s: %s" % (e.code().name, e.details()))
print("; ".join(out))
"""


def other_caller(sock):
    p = subprocess.run(["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                        "--clear-groups", "--", sys.executable, "-c", _OTHER, sock,
                        os.path.dirname(os.path.abspath(__file__))],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120, text=True,
                       env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"})
    return p.stdout.strip() or ("failed: " + p.stderr.strip()[-300:])


def stop_all(stop, ids):
    def stop_one(j):
        try:
            stop(stop_request(j), timeout=120)
        except grpc.RpcError as e:
            log("bench 9: stop of %s failed: %s" % (j, e.details()))

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        list(ex.map(stop_one, ids))


def kill_leftovers(pids):
    """SIGKILL job processes still alive (by pid, only if still a sleep of ours)."""
    n = 0
    for pid in pids:
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if not argv or not (argv[0].endswith(b"sleep") or argv[0].endswith(b"rund-waiter")):
            continue
        try:  # the waiter's child (the sleep) first
            with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
                kids = [int(x) for x in f.read().split()]
        except OSError:
            kids = []
        for victim in kids + [pid]:
            try:
                os.kill(victim, signal.SIGKILL)
                n += 1
            except OSError:
                pass
    return n


def one_round(rund, work, njobs, seconds, k):
    sock = os.path.join(work, "rund%d.sock" % k)
    errf = open(os.path.join(work, "rund%d.stderr" % k), "wb")
    state = os.path.join(work, "state%d" % k)
    proc = subprocess.Popen([rund, "--listen", "unix:" + sock, "--state-dir", state,
                             "--quota-running", str(njobs + 100), "--quota-jobs",
                             str(njobs + 1000)],
                            stdin=subprocess.DEVNULL, stdout=errf, stderr=errf)
    pids, ids = [], []
    res = {}
    try:
        ch = grpc.insecure_channel("unix:" + sock, options=[("grpc.max_concurrent_streams", 64)])
        start = ch.unary_unary("/runrpc.v1.Jobs/Start")
        stop = ch.unary_unary("/runrpc.v1.Jobs/Stop")
        grpc.channel_ready_future(ch).result(timeout=20)
        # warm up: the allocator's first arenas, the first cgroup, lazy tables
        for _ in range(20):
            jid, pid = parse_start(start(start_request("/bin/sleep", "1000"), timeout=30))
            pids.append(pid)
            stop(stop_request(jid), timeout=30)
        time.sleep(0.5)
        fd0, rss0 = fd_count(proc.pid), rss_kib(proc.pid)
        t0 = time.monotonic()
        refused = []

        def start_one(_):
            if refused or time.monotonic() - t0 > seconds:
                return None
            try:
                return parse_start(start(start_request("/bin/sleep", "1000"), timeout=60))
            except grpc.RpcError as e:
                refused.append("%s: %s" % (e.code().name, e.details()))
                return None

        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            for r in ex.map(start_one, range(njobs)):
                if r:
                    ids.append(r[0])
                    pids.append(r[1])
        refused = refused[0] if refused else None
        dt = time.monotonic() - t0
        time.sleep(1.0)
        fd1, rss1 = fd_count(proc.pid), rss_kib(proc.pid)
        os.chmod(work, 0o711)
        other = other_caller(sock)
        res = {"jobs": len(ids), "start_s": dt, "fd_idle": fd0, "fd_live": fd1,
               "fds_per_job": (fd1 - fd0) / max(1, len(ids)),
               "rss_idle_kib": rss0, "rss_live_kib": rss1,
               "kib_per_job": (rss1 - rss0) / max(1, len(ids)),
               "other": other, "refused": refused}
        log("bench 9 round %d: %d jobs in %.1f s; fds %d -> %d (%.2f/job); RSS %d -> %d KiB "
            "(%.2f KiB/job); another caller: %s%s" % (
                k, len(ids), dt, fd0, fd1, res["fds_per_job"], rss0, rss1, res["kib_per_job"],
                other, "; refused: " + refused if refused else ""))
        t1 = time.monotonic()
        stop_all(stop, ids)
        res["stop_s"] = time.monotonic() - t1
        ids = []
        ch.close()
    finally:
        if ids:  # an error above: the jobs still go, before rund does
            stop_all(stop, ids)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        errf.close()
        left = kill_leftovers(pids)
        if left:
            log("bench 9: killed %d job processes left behind" % left)
        shutil.rmtree(state, ignore_errors=True)
    return res


def median(v):
    s = sorted(v)
    return s[len(s) // 2] if s else 0


def run(build, njobs, rounds, seconds):
    rund = os.environ.get("RUND") or os.path.join(build, "src/rund/rund")
    work = tempfile.mkdtemp(prefix="rr-live-", dir="/tmp")
    try:
        res = [one_round(rund, work, njobs, seconds, k) for k in range(rounds)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    fpj = median([r["fds_per_job"] for r in res])
    kpj = median([r["kib_per_job"] for r in res])
    n = median([r["jobs"] for r in res])
    other = res[-1]["other"]
    return [("9 live jobs: fds per job", "-", "%.2f (%d jobs)" % (fpj, n), "-", "<= 1",
             "ok" if fpj <= 1.0 else "MISSED"),
            ("9 live jobs: RSS per job", "-", "%.2f KiB" % kpj, "-", "<= 2 KiB",
             "ok" if kpj <= 2.0 else "MISSED"),
            ("9 live jobs: another caller", "-", other, "-", "works",
             "ok" if other == "health ok; start+stop ok" else "MISSED")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.environ.get("BUILD_DIR", "build"))
    ap.add_argument("--jobs", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=300, help="bound on the starts per round")
    ap.add_argument("--rows-json", action="store_true")
    a = ap.parse_args()
    build = a.build if os.path.isabs(a.build) else os.path.join(ROOT, a.build)
    rows = run(build, a.jobs, a.rounds, a.seconds)
    if a.rows_json:
        print(json.dumps({"rows": rows}))
    else:
        for r in rows:
            print("  ".join(r))


if __name__ == "__main__":
    main()

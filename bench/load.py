#!/usr/bin/python3
"""Load tests of rund (bounded; not part of ./test.sh). Each scenario starts
a fresh rund on a unix socket, measures its RSS and open fds before, during
and after the load, and checks that a normal client is served throughout: a
probe thread calls grpc.health.v1.Health/Check over a new grpcio connection
every 0.25 s and records its latency.

  idle        10,000 idle HTTP/2 connections (preface + SETTINGS, then nothing)
  jobs        20,000 finished jobs (/bin/true), then List of every page
  followers   2,000 Logs followers of one job (grpc.aio, 10 connections)
  slowloris   500 connections sending a request's headers one byte a second
  reset       rapid reset: HEADERS + RST_STREAM pairs as fast as they go
              (CVE-2023-44487), 4 connections
  continuation  HEADERS without END_HEADERS, then CONTINUATION frames forever
  settings    SETTINGS frames as fast as they go, never reading the ACKs

Usage (as root; RLIMIT_NOFILE is raised to its hard limit, 20,000 here):
  bench/load.py [--rund build/src/rund/rund] [SCENARIO...]
Scenarios' sizes: --conns, --jobs, --followers, --slow-conns, --seconds;
--rund-arg adds a flag to every rund (e.g. --rund-arg=--idle-timeout=15s).
Prints one block per scenario and a summary table at the end.
"""

import argparse
import asyncio
import os
import resource
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
os.environ.setdefault("RUNRPC_SOURCE_ROOT", ROOT)
import conftest  # noqa: E402  (jobs_pb2 stubs)
import grpc  # noqa: E402
import hpack  # noqa: E402

pb, pbg = conftest.pb, conftest.pb_grpc
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HEALTH = "/grpc.health.v1.Health/Check"


def log(*a):
    print(*a, flush=True)


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(
        ">I", sid) + payload


SETTINGS0 = frame(4, 0, 0)


def header_block(path=HEALTH, extra=()):
    return hpack.Encoder().encode([(":method", "POST"), (":scheme", "http"), (":path", path),
                                   (":authority", "localhost"),
                                   ("content-type", "application/grpc"), ("te", "trailers")]
                                  + list(extra))


class Rund:
    def __init__(self, binary, args=()):
        self.dir = tempfile.mkdtemp(prefix="rr-load-")
        self.sock = os.path.join(self.dir, "rund.sock")
        self.addr = "unix:" + self.sock
        self.err = open(os.path.join(self.dir, "rund.stderr"), "wb")
        self.p = subprocess.Popen([binary, "--listen", self.addr, "--state-dir",
                                   os.path.join(self.dir, "state"), "--no-cgroups"] + list(args),
                                  stdin=subprocess.DEVNULL, stdout=self.err, stderr=self.err)
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if os.path.exists(self.sock) and health_once(self.addr)[0]:
                return
            time.sleep(0.05)
        raise RuntimeError("rund did not start: " + self.stderr()[-2000:])

    def stderr(self):
        with open(os.path.join(self.dir, "rund.stderr"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def rss_mb(self):
        with open("/proc/%d/status" % self.p.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
        return 0.0

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % self.p.pid))

    def sample(self):
        return (self.rss_mb(), self.fds())

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.err.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def health_once(addr, timeout=10.0):
    """(ok, seconds[, error]) of one Health/Check on a new connection."""
    ch = grpc.insecure_channel(addr, options=[("grpc.enable_retries", 0),
                                              ("grpc.use_local_subchannel_pool", 1)])
    t = time.monotonic()
    try:
        ch.unary_unary(HEALTH, request_serializer=None, response_deserializer=None)(
            b"", timeout=timeout)
        return True, time.monotonic() - t
    except grpc.RpcError as e:
        return False, time.monotonic() - t, "%s %s" % (e.code(), e.details())
    finally:
        ch.close()


class Probe:
    """The normal client: Health/Check every 0.25 s on a new connection."""

    def __init__(self, addr):
        self.addr, self.lat, self.fail, self.stop_ = addr, [], 0, threading.Event()
        self.errors = []
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop_.is_set():
            res = health_once(self.addr)
            if res[0]:
                self.lat.append(res[1])
            else:
                self.fail += 1
                if len(self.errors) < 3:
                    self.errors.append("%.1f s: %s" % (res[1], res[2]))
            self.stop_.wait(0.25)

    def stop(self):
        self.stop_.set()
        self.t.join(timeout=30)
        lat = sorted(self.lat)
        p50 = lat[len(lat) // 2] * 1000 if lat else float("nan")
        mx = lat[-1] * 1000 if lat else float("nan")
        return {"probes": len(lat) + self.fail, "failed": self.fail, "p50_ms": p50, "max_ms": mx,
                "errors": self.errors}


def report(name, before, during, after, probe, extra):
    log("== %s" % name)
    log("  rund RSS MB   before %.1f  during %.1f  after %.1f" % (before[0], during[0], after[0]))
    log("  rund fds      before %d  during %d  after %d" % (before[1], during[1], after[1]))
    log("  Health/Check  %d probes, %d failed, p50 %.1f ms, max %.1f ms"
        % (probe["probes"], probe["failed"], probe["p50_ms"], probe["max_ms"]))
    for err in probe["errors"]:
        log("  probe failed  %s" % err)
    for k, v in extra.items():
        log("  %-13s %s" % (k, v))
    return (name, before, during, after, probe)


def settle(r, seconds=2.0):
    time.sleep(seconds)
    return r.sample()


# ---- scenarios: each gets a started rund and a running probe, returns
# (during sample, extra figures); the caller samples before and after.

def sc_idle(r, a):
    conns = []
    t = time.monotonic()
    for i in range(a.conns):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(r.sock)
        s.sendall(PREFACE + SETTINGS0)
        conns.append(s)
    opened = time.monotonic() - t
    time.sleep(min(a.seconds, 10))
    during = r.sample()
    # how many did rund keep (a closed one reads EOF)
    alive = 0
    for s in conns:
        s.setblocking(False)
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    break
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    for s in conns:
        s.close()
    return during, {"connections": "%d opened in %.1f s, %d still open after %d s"
                    % (len(conns), opened, alive, min(a.seconds, 10))}


def sc_jobs(r, a):
    ch = grpc.insecure_channel(r.addr, options=[("grpc.max_receive_message_length", 64 << 20)])
    st = pbg.JobsStub(ch)
    req = pb.StartRequest(command=pb.Command(path="/bin/true"))
    t = time.monotonic()
    pending, done, failed = [], 0, 0
    for i in range(a.jobs):
        pending.append(st.Start.future(req, timeout=60))
        if len(pending) >= 64:
            for f in pending:
                try:
                    f.result()
                    done += 1
                except grpc.RpcError as e:
                    failed += 1
                    if failed == 1:
                        log("  first Start failure: %s %s" % (e.code(), e.details()))
            pending = []
    for f in pending:
        try:
            f.result()
            done += 1
        except grpc.RpcError:
            failed += 1
    start_s = time.monotonic() - t
    during = r.sample()
    # until every job has ended
    end = time.monotonic() + 120
    running = -1
    while time.monotonic() < end:
        running = len(st.List(pb.ListRequest(state=pb.JOB_STATE_RUNNING), timeout=60).jobs)
        if running == 0:
            break
        time.sleep(0.5)
    t = time.monotonic()
    n, token, pages = 0, "", 0
    while True:
        resp = st.List(pb.ListRequest(page_token=token), timeout=60)
        n += len(resp.jobs)
        pages += 1
        token = resp.next_page_token
        if not token:
            break
    list_s = time.monotonic() - t
    ch.close()
    return during, {"started": "%d in %.1f s (%.0f/s), %d refused" % (done, start_s,
                                                                     done / start_s, failed),
                    "running left": str(running),
                    "List": "%d jobs in %d pages, %.2f s" % (n, pages, list_s)}


def sc_followers(r, a):
    ch = grpc.insecure_channel(r.addr)
    st = pbg.JobsStub(ch)
    lines = 300
    script = 'i=0; while [ $i -lt %d ]; do echo "line $i"; i=$((i+1)); sleep 0.05; done' % lines
    job = st.Start(pb.StartRequest(command=pb.Command(path="/bin/sh", args=["-c", script])),
                   timeout=30).job_id
    want = b"".join(b"line %d\n" % i for i in range(lines))
    samples = []

    async def follow(stub, got):
        buf = bytearray()
        try:
            async for m in stub.Logs(pb.LogsRequest(job_id=job, follow=True), timeout=120):
                buf += m.data
        except grpc.RpcError as e:
            got.append(("error", e.code()))
            return
        got.append(("ok", bytes(buf) == want))

    async def main():
        chans = [grpc.aio.insecure_channel(r.addr, options=[("grpc.use_local_subchannel_pool", 1)])
                 for _ in range(10)]
        stubs = [pbg.JobsStub(c) for c in chans]
        got = []
        tasks = [asyncio.ensure_future(follow(stubs[i % 10], got)) for i in range(a.followers)]

        async def sampler():
            await asyncio.sleep(5)
            samples.append(r.sample())
        await asyncio.gather(sampler(), *tasks)
        for c in chans:
            await c.close()
        return got

    t = time.monotonic()
    got = asyncio.run(main())
    took = time.monotonic() - t
    ch.close()
    ok = sum(1 for g in got if g == ("ok", True))
    bad = [g for g in got if g != ("ok", True)]
    return samples[0], {"followers": "%d complete and byte-exact of %d, in %.1f s"
                        % (ok, a.followers, took),
                        "others": str(bad[:5]) if bad else "none"}


def sc_slowloris(r, a):
    block = frame(1, 0x5, 1, header_block())  # HEADERS, END_STREAM|END_HEADERS
    conns = []
    for i in range(a.slow_conns):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(r.sock)
        s.setblocking(False)
        # half send even the preface a byte a second, half the headers only
        data = (PREFACE + SETTINGS0 + block) if i % 2 else block
        if not i % 2:
            s.send(PREFACE + SETTINGS0)
        conns.append([s, data, 0, None])
    t0 = time.monotonic()
    during = None
    while time.monotonic() - t0 < a.seconds:
        for c in conns:
            if c[3] is not None:
                continue
            try:
                while c[0].recv(65536):
                    pass
                c[3] = time.monotonic() - t0  # EOF: rund closed it
                continue
            except BlockingIOError:
                pass
            except OSError:
                c[3] = time.monotonic() - t0
                continue
            if c[2] < len(c[1]):
                try:
                    c[0].send(c[1][c[2]:c[2] + 1])
                    c[2] += 1
                except OSError:
                    c[3] = time.monotonic() - t0
        if during is None and time.monotonic() - t0 > a.seconds / 2:
            during = r.sample()
        time.sleep(1.0)
    closed_pre = [c[3] for i, c in enumerate(conns) if i % 2 and c[3] is not None]
    closed_hdr = [c[3] for i, c in enumerate(conns) if not i % 2 and c[3] is not None]
    for c in conns:
        c[0].close()

    def when(v):
        return "%d closed by rund (after %.0f..%.0f s)" % (len(v), min(v), max(v)) if v else \
            "0 closed by rund"
    return during, {"preface slow": "%d conns: %s" % ((len(conns) + 1) // 2, when(closed_pre)),
                    "headers slow": "%d conns: %s" % (len(conns) // 2, when(closed_hdr)),
                    "duration": "%d s, one byte per connection per second" % a.seconds}


def flood(r, a, make_chunk, nconns=4):
    """On each of nconns threads, for a.seconds: connect, send make_chunk(i)
    as fast as rund reads until rund closes, then connect again (an attacker
    does); drain what rund sends and note its GOAWAY codes."""
    res = []

    def goaway_codes(rx):
        off, codes = 0, []
        while off + 9 <= len(rx):
            ln = int.from_bytes(rx[off:off + 3], "big")
            if rx[off + 3] == 7 and off + 17 <= len(rx):
                codes.append(int.from_bytes(rx[off + 13:off + 17], "big"))
            off += 9 + ln
        return codes

    def one(k):
        sent, chunks, conns, codes, lifetimes = 0, 0, 0, {}, []
        t0 = time.monotonic()
        while time.monotonic() - t0 < a.seconds:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(r.sock)
                s.sendall(PREFACE + SETTINGS0)
            except OSError:
                s.close()
                time.sleep(0.01)
                continue
            conns += 1
            c0, i, rx, closed = time.monotonic(), 0, bytearray(), False
            while not closed and time.monotonic() - t0 < a.seconds:
                chunk = make_chunk(i)
                i += 1
                s.settimeout(0.5)
                try:
                    s.sendall(chunk)
                    sent += len(chunk)
                    chunks += 1
                except socket.timeout:
                    pass
                except OSError:
                    closed = True
                s.setblocking(False)
                try:
                    while True:
                        d = s.recv(1 << 20)
                        if not d:
                            closed = True
                            break
                        if len(rx) < 1 << 16:
                            rx += d
                except (BlockingIOError, OSError):
                    pass
            lifetimes.append(time.monotonic() - c0)
            for c in goaway_codes(rx):
                codes[c] = codes.get(c, 0) + 1
            s.close()
        res.append((sent, chunks, conns, codes, lifetimes))

    ts = [threading.Thread(target=one, args=(k,)) for k in range(nconns)]
    for t in ts:
        t.start()
    time.sleep(a.seconds / 2)
    during = r.sample()
    for t in ts:
        t.join(timeout=a.seconds + 30)
    names = {0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR", 6: "FRAME_SIZE_ERROR",
             9: "COMPRESSION_ERROR", 11: "ENHANCE_YOUR_CALM"}
    sent = sum(x[0] for x in res)
    conns = sum(x[2] for x in res)
    codes = {}
    for x in res:
        for c, n in x[3].items():
            codes[names.get(c, c)] = codes.get(names.get(c, c), 0) + n
    life = sorted(v for x in res for v in x[4])
    return during, {"flood": "%d threads, %.1f MB sent over %d connections in %d s"
                    % (nconns, sent / 1e6, conns, a.seconds),
                    "conn lifetime": "median %.3f s, max %.3f s" % (life[len(life) // 2], life[-1])
                    if life else "-",
                    "GOAWAYs seen": str(codes) if codes else "none"}


def sc_reset(r, a):
    hb = header_block()

    def chunk(i):
        out = bytearray()
        for k in range(100):
            sid = 2 * (i * 100 + k) + 1
            if sid >= 1 << 31:
                break
            out += frame(1, 0x4, sid, hb) + frame(3, 0, sid, struct.pack(">I", 8))  # CANCEL
        return bytes(out)
    return flood(r, a, chunk)


def sc_continuation(r, a):
    # one literal header of 16 KB per CONTINUATION, never END_HEADERS
    lit = hpack.Encoder().encode([("x-flood", "v" * 16000)])

    def chunk(i):
        if i == 0:
            return frame(1, 0, 1, header_block())
        return frame(9, 0, 1, lit)
    return flood(r, a, chunk)


def sc_settings(r, a):
    one = frame(4, 0, 0, struct.pack(">HI", 3, 100))  # MAX_CONCURRENT_STREAMS

    def chunk(i):
        return one * 1000
    return flood(r, a, chunk)


SCENARIOS = {
    "idle": (sc_idle, lambda a: ["--max-connections", str(a.conns + 500),
                                 "--max-conns-per-peer", str(a.conns + 500)]),
    "jobs": (sc_jobs, lambda a: ["--quota-jobs", str(a.jobs + 100),
                                 "--quota-running", str(a.jobs + 100)]),
    "followers": (sc_followers, lambda a: ["--quota-followers", str(a.followers + 100)]),
    "slowloris": (sc_slowloris, lambda a: ["--max-conns-per-peer", str(a.slow_conns + 100)]),
    "reset": (sc_reset, lambda a: []),
    "continuation": (sc_continuation, lambda a: []),
    "settings": (sc_settings, lambda a: []),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rund", default=os.environ.get("RUND") or os.path.join(
        ROOT, "build", "src", "rund", "rund"))
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--jobs", type=int, default=20000)
    ap.add_argument("--followers", type=int, default=2000)
    ap.add_argument("--slow-conns", type=int, default=500)
    ap.add_argument("--seconds", type=int, default=20, help="length of timed scenarios")
    ap.add_argument("--rund-arg", action="append", default=[],
                    help="extra rund flag for every scenario (repeatable), e.g. "
                    "--rund-arg=--idle-timeout=15s")
    ap.add_argument("scenarios", nargs="*", default=list(SCENARIOS))
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    log("rund %s; RLIMIT_NOFILE %d; %d CPUs" % (a.rund, hard, os.cpu_count()))
    rows = []
    for name in a.scenarios:
        fn, args = SCENARIOS[name]
        r = Rund(a.rund, args(a) + a.rund_arg)
        try:
            before = settle(r, 0.5)
            probe = Probe(r.addr)
            time.sleep(1)
            during, extra = fn(r, a)
            after = settle(r, 3)
            rows.append(report(name, before, during, after, probe.stop(), extra))
            if r.p.poll() is not None:
                log("  rund EXITED with %s: %s" % (r.p.returncode, r.stderr()[-2000:]))
        finally:
            r.stop()
    log("\nscenario      RSS MB before/during/after    fds before/during/after   "
        "Health probes (failed) p50/max ms")
    for name, b, d, af, p in rows:
        log("%-13s %7.1f %7.1f %7.1f     %6d %6d %6d     %4d (%d) %7.1f %8.1f"
            % (name, b[0], d[0], af[0], b[1], d[1], af[1], p["probes"], p["failed"],
               p["p50_ms"], p["max_ms"]))


if __name__ == "__main__":
    main()

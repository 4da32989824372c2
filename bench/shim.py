#!/usr/bin/python3
"""runrpc (the shim) figures, every ratio against a baseline measured in the
same run, medians of several runs:

 1. Commander.Shell round trip of `true` over a pipe (grpcio -> unix socket
    -> socat -> runrpc's stdin/stdout) vs a local fork+exec of `true`
    (subprocess). `ssh host true` is not measured: it needs a throwaway user
    and an sshd set up, which this script does not do.
 2. forktest: Fork 5 deep, each level through the ones above, and ask each
    level its pid (Info): the time for the whole chain.
 3. pipeline: numbers per second through 5 forked runrpc stages (each runs
    awk adding one; output chunks streamed from stage to stage) vs a plain
    pipe chain of the same 5 awk processes.

    RUNRPC=build/src/shim/runrpc /usr/bin/python3 bench/shim.py [--quick]
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("RUNRPC", os.path.join(ROOT, "build", "src", "shim", "runrpc"))
# this file is shim.py: off the path, or it shadows the generated `shim` stub package
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
sys.path.insert(0, os.path.join(ROOT, "examples"))

import grpc  # noqa: E402

from runrpc_shim import SocatBridge, Stubs, close_chain, cpb, fork_chain, rpb  # noqa: E402
import pipeline  # noqa: E402

QUICK = "--quick" in sys.argv


def med(xs):
    return statistics.median(xs)


def shell_true(stubs):
    for m in stubs.commander.Shell(iter([cpb.Command(argv=["true"])]), timeout=30):
        if m.WhichOneof("kind") == "exit":
            assert m.exit.code == 0


def bench_round_trip(d):
    n = 20 if QUICK else 100
    bridge = SocatBridge(d, stderr=subprocess.DEVNULL)
    stubs = Stubs(grpc.insecure_channel(bridge.addr))
    for _ in range(5):  # warm: connection, first spawns
        shell_true(stubs)
    ours, local = [], []
    for _ in range(n):  # alternated, so that load on the machine hits both
        t0 = time.perf_counter()
        shell_true(stubs)
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        subprocess.run(["true"], check=True)
        local.append(time.perf_counter() - t0)
    stubs.channel.close()
    bridge.wait()
    return med(ours), med(local), n


def bench_forktest(d, depth=5):
    runs = 3 if QUICK else 7
    times = []
    for _ in range(runs):
        bridge = SocatBridge(d, stderr=subprocess.DEVNULL)
        root = Stubs(grpc.insecure_channel(bridge.addr))
        root.runner.Info(rpb.InfoRequest(), timeout=30)  # connected
        t0 = time.perf_counter()
        tunnels = fork_chain(root.runner, depth, d)
        for t in tunnels:
            t.runner.Info(rpb.InfoRequest(), timeout=30)
        times.append(time.perf_counter() - t0)
        close_chain(tunnels)
        root.channel.close()
        bridge.wait()
    return med(times), runs


def plain_chain(stages, count):
    cmd = "seq 0 %d" % (count - 1) + (" | " + pipeline.ADD_ONE) * stages
    t0 = time.perf_counter()
    out = subprocess.run(["sh", "-c", cmd], capture_output=True, check=True).stdout
    elapsed = time.perf_counter() - t0
    assert out == "".join("%d\n" % (n + stages) for n in range(count)).encode()
    return elapsed


def bench_pipeline(d, stages=5):
    count = 20000 if QUICK else 100000
    runs = 3 if QUICK else 5
    ours, plain = [], []
    want = "".join("%d\n" % (n + stages) for n in range(count)).encode()
    for _ in range(runs):
        bridge = SocatBridge(d, stderr=subprocess.DEVNULL)
        root = Stubs(grpc.insecure_channel(bridge.addr))
        tunnels = fork_chain(root.runner, stages, d)
        out, elapsed, errors = pipeline.run([t.commander for t in tunnels], count)
        assert out == want and not errors, errors
        ours.append(elapsed)
        close_chain(tunnels)
        root.channel.close()
        bridge.wait()
        plain.append(plain_chain(stages, count))
    return count / med(ours), count / med(plain), count, runs


def main():
    with tempfile.TemporaryDirectory(prefix="bench-shim-", dir="/tmp") as d:
        ours, local, n = bench_round_trip(d)
        print("1. Shell(`true`) over a pipe: %.2f ms median of %d; local fork+exec %.2f ms; "
              "ratio %.1fx" % (ours * 1e3, n, local * 1e3, ours / local))
        t, runs = bench_forktest(d)
        print("2. forktest depth 5 (5 Forks + Info on each): %.1f ms median of %d runs"
              % (t * 1e3, runs))
        o, p, count, runs = bench_pipeline(d)
        print("3. pipeline, 5 stages, %d numbers: %.0f numbers/s through forked runrpc; "
              "plain pipe chain %.0f numbers/s; ratio %.1fx slower (medians of %d runs)"
              % (count, o, p, p / o, runs))


if __name__ == "__main__":
    main()

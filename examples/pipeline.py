#!/usr/bin/python3
"""pipeline: a streaming increment pipeline over a Fork chain. runrpc serves
on a pipe behind a socat bridge; the client forks STAGES runrpc processes,
each through the one before, and on each one runs Commander.Shell with a
command that adds one to every number it reads (awk). Numbers stream into
the first stage's stdin; each stage's stdout chunks are streamed on, as they
come, into the next stage's stdin; the last stage's output must be every
number plus STAGES, in order, none missing.

    /usr/bin/python3 examples/pipeline.py [STAGES [COUNT]]    (default 5, 10000)

Prints the count, the time and numbers per second.
"""

import queue
import sys
import tempfile
import threading
import time

import grpc

from runrpc_shim import SocatBridge, Stubs, close_chain, cpb, fork_chain

ADD_ONE = "awk '{ print $1 + 1; fflush() }'"


def stage(commander, inq, outq, errors):
    """Shell on one level: inq's chunks in (None: EOF), stdout chunks to outq."""
    def requests():
        yield cpb.Command(shell=ADD_ONE)
        while True:
            b = inq.get()
            if b is None:
                return
            yield cpb.Command(stdin=b)
    try:
        for m in commander.Shell(requests(), timeout=600):
            k = m.WhichOneof("kind")
            if k == "stdout":
                outq.put(m.stdout)
            elif k == "stderr":
                errors.append(m.stderr)
            elif k == "exit" and m.exit.code != 0:
                errors.append(b"stage exit %d" % m.exit.code)
    except grpc.RpcError as e:
        errors.append(str(e).encode())
    outq.put(None)


def run(commanders, count):
    qs = [queue.Queue() for _ in range(len(commanders) + 1)]
    errors = []
    threads = [threading.Thread(target=stage, args=(c, qs[i], qs[i + 1], errors), daemon=True)
               for i, c in enumerate(commanders)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    batch = 1000
    for lo in range(0, count, batch):
        qs[0].put("".join("%d\n" % n for n in range(lo, min(count, lo + batch))).encode())
    qs[0].put(None)
    out = []
    while True:
        b = qs[-1].get()
        if b is None:
            break
        out.append(b)
    elapsed = time.monotonic() - t0
    for t in threads:
        t.join()
    return b"".join(out), elapsed, errors


def main():
    stages = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
    with tempfile.TemporaryDirectory(prefix="pipeline-", dir="/tmp") as d:
        bridge = SocatBridge(d)
        root = Stubs(grpc.insecure_channel(bridge.addr))
        tunnels = fork_chain(root.runner, stages, d)
        out, elapsed, errors = run([t.commander for t in tunnels], count)
        close_chain(tunnels)
        root.channel.close()
        bridge.wait()
    want = "".join("%d\n" % (n + stages) for n in range(count)).encode()
    ok = out == want and not errors
    print("%d numbers through %d forked runrpc stages (each adds one): %s in %.3f s, "
          "%.0f numbers/s" % (count, stages, "exact" if ok else "WRONG", elapsed,
                              count / elapsed))
    for e in errors:
        print("error: %s" % e.decode("utf-8", "replace"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

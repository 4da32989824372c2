#!/usr/bin/python3
"""forktest: recursive runner.Runner/Fork over gRPC socketpairs, DEPTH deep
(default 5). runrpc serves on a pipe through a socat bridge; each level is
forked by the one before and reached through every runrpc above it; each
answers runner.Runner/Info with its pid, parent pid and depth.

    RUNRPC=/usr/local/bin/runrpc /usr/bin/python3 examples/forktest.py [DEPTH]

Prints one line per level and the total time; exits 1 if a level's answer
is not the chain's (depth k, parent = level k-1's pid).
"""

import sys
import tempfile
import time

import grpc

from runrpc_shim import SocatBridge, Stubs, close_chain, fork_chain, rpb


def main():
    depth = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    with tempfile.TemporaryDirectory(prefix="forktest-", dir="/tmp") as d:
        bridge = SocatBridge(d)
        root = Stubs(grpc.insecure_channel(bridge.addr))
        t0 = time.monotonic()
        info = root.runner.Info(rpb.InfoRequest(), timeout=30)
        print("depth 0 pid %d" % info.pid)
        tunnels = fork_chain(root.runner, depth, d)
        ok = True
        parent = info.pid
        for k, t in enumerate(tunnels, 1):
            i = t.runner.Info(rpb.InfoRequest(), timeout=30)
            good = (i.depth, i.ppid, i.pid) == (k, parent, t.pid)
            ok = ok and good
            print("depth %d pid %d ppid %d%s" % (i.depth, i.pid, i.ppid, "" if good else " WRONG"))
            parent = i.pid
        elapsed = time.monotonic() - t0
        close_chain(tunnels)
        root.channel.close()
        bridge.wait()
        print("forked %d deep and asked every level in %.1f ms" % (depth, elapsed * 1000))
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

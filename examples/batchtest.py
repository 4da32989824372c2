#!/usr/bin/python3
"""batchtest: runner.Runner/Batch on a running runrpc. Eight commands, at
most three at once; the results come back in request order (one of them
fails to spawn on purpose and says why).

    /usr/bin/python3 examples/batchtest.py [unix:/path/to/runrpc.sock]

Without an address it starts runrpc on a pipe behind a socat bridge.
"""

import sys
import tempfile
import time

import grpc

from runrpc_shim import SocatBridge, Stubs, rpb


def main():
    with tempfile.TemporaryDirectory(prefix="batchtest-", dir="/tmp") as d:
        bridge = None
        addr = sys.argv[1] if len(sys.argv) > 1 else None
        if not addr:
            bridge = SocatBridge(d)
            addr = bridge.addr
        s = Stubs(grpc.insecure_channel(addr))
        spawns = [rpb.SpawnRequest(argv=["sh", "-c", "sleep 0.2; exit %d" % i]) for i in range(7)]
        spawns.insert(4, rpb.SpawnRequest(argv=["no-such-command"]))
        t0 = time.monotonic()
        resp = s.runner.Batch(rpb.BatchRequest(spawns=spawns, concurrency=3), timeout=60)
        elapsed = time.monotonic() - t0
        ok = len(resp.results) == len(spawns)
        for i, r in enumerate(resp.results):
            if r.error_code:
                print("%d: not started: %s (status %d)" % (i, r.error, r.error_code))
                ok = ok and i == 4
            else:
                want = i if i < 4 else i - 1
                print("%d: pid %d exit %d" % (i, r.pid, r.code))
                ok = ok and r.code == want
        print("%d commands, 3 at a time, in %.2f s" % (len(spawns), elapsed))
        s.channel.close()
        if bridge:
            bridge.wait()
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

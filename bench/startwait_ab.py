#!/usr/bin/python3
"""A/B of two rund builds on bench 2 with the state dir on tmpfs (/dev/shm)
and on the file system of /tmp, and bench 6 minus bench 2 on tmpfs, for
bench/startwait-results.md:

  bench/startwait_ab.py OLD_BUILD NEW_BUILD ROUNDS N

Four rund run side by side (each build, each state dir); each round runs
local posix_spawn+waitpid, then every rund (the builds' order swapped each
round), N ops each; "rund cpu" is rund's own user+system time per op (not
its children's, the jobs). Medians and ranges over the rounds."""
import os
import shutil
import statistics
import sys
import tempfile
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import Rund, startwait  # noqa: E402
if len(sys.argv) != 5:
    raise SystemExit("usage: startwait_ab.py OLD_BUILD NEW_BUILD ROUNDS N")
base, new = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
rounds, n = int(sys.argv[3]), int(sys.argv[4])
def cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        x = f.read().rsplit(")", 1)[1].split()
    return (int(x[11]) + int(x[12])) * 1e6 / os.sysconf("SC_CLK_TCK")
work = tempfile.mkdtemp(prefix="sw-ab-", dir="/tmp")
sw = os.path.join(new, "bench/startwait")
R = {}
try:
    for side, b in (("old", base), ("new", new)):
        rd, rc = os.path.join(b, "src/rund/rund"), os.path.join(b, "src/runctl/runctl")
        R[(side, "ext4")] = Rund(rd, rc, work, side + "-ext4")
        R[(side, "tmpfs")] = Rund(rd, rc, work, side + "-tmpfs", state_base="/dev/shm")
    res = {}
    def add(k, v): res.setdefault(k, []).append(v)
    for i in range(rounds):
        add("load", os.getloadavg()[0])
        loc = startwait(sw, "local", str(n)); add("local", loc)
        sides = ("old", "new") if i % 2 == 0 else ("new", "old")
        for side in sides:
            for fs in ("tmpfs", "ext4"):
                r = R[(side, fs)]
                c0 = cpu(r.proc.pid)
                v = startwait(sw, "remote", r.addr, str(n))
                add((side, fs), v); add((side, fs, "ratio"), v / loc)
                add((side, fs, "rund cpu"), (cpu(r.proc.pid) - c0) / (n + min(n // 10, 20)))
            r = R[(side, "tmpfs")]
            v = startwait(sw, "limits", r.addr, str(n))
            add((side, "limits-none"), v - res[(side, "tmpfs")][-1])
        print("round %d: %s" % (i + 1, " ".join(
            "%s=%.2f" % ("/".join(k) if isinstance(k, tuple) else k, v[-1])
            for k, v in res.items())), file=sys.stderr, flush=True)
finally:
    for r in R.values(): r.stop()
    shutil.rmtree(work, ignore_errors=True)
for k, v in res.items():
    name = "/".join(k) if isinstance(k, tuple) else k
    print("%-24s median %9.2f  range %9.2f-%9.2f" % (name, statistics.median(v), min(v), max(v)))

#!/usr/bin/python3
"""A/B of two rund builds on bench 2 and bench 6 (bench/startwait), for
bench/cgroup-per-job-results.md: both rund run side by side, each round
measures local posix_spawn+waitpid, then each build (the order swapped every
round so that neither always goes first on a noisy machine); medians and
ranges over the rounds.

  bench/cgroup_ab.py --a build-base --b build [--rounds 7] [--n 500] [--limits]

--a/--b: build dirs (src/rund/rund, src/waiter/rund-waiter, bench/startwait);
the startwait client of --b drives both (the client is not what differs).
--extra-a/--extra-b: one more rund flag for that side (e.g. --no-cgroups).
"X cpu" rows: CPU time of rund and its reaped children (the jobs) per op,
less sensitive than wall time to a machine shared with other work.
STARTWAIT_GAP_MS (see bench/startwait.c) spaces the starts.
"""

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import Rund, log, startwait  # noqa: E402


def cpu_us(pid):
    """CPU time of pid and of its reaped children (the jobs), in us."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) * 1e6 / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True)
    ap.add_argument("--b", required=True)
    ap.add_argument("--extra-a", default="")
    ap.add_argument("--extra-b", default="")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--limits", action="store_true", help="also bench 6 (every limit set)")
    a = ap.parse_args()
    import tempfile
    import shutil
    work = tempfile.mkdtemp(prefix="rr-cgab-", dir="/tmp")
    runds = {}
    try:
        for side, d, extra in (("a", a.a, a.extra_a), ("b", a.b, a.extra_b)):
            d = os.path.abspath(d)
            runds[side] = Rund(os.path.join(d, "src/rund/rund"),
                               os.path.join(d, "src/runctl/runctl"), work, side,
                               extra=[extra] if extra else [])
        sw = os.path.join(os.path.abspath(a.b), "bench/startwait")
        modes = ["remote"] + (["limits"] if a.limits else [])
        res = {"local": []}
        for side in "ab":
            for m in modes:
                res[(side, m)] = []
                res[(side, m + " cpu")] = []
        for r in range(a.rounds):
            res["local"].append(startwait(sw, "local", str(a.n)))
            order = "ab" if r % 2 == 0 else "ba"
            for side in order:
                for m in modes:
                    pid = runds[side].proc.pid
                    c0 = cpu_us(pid)
                    res[(side, m)].append(startwait(sw, m, runds[side].addr, str(a.n)))
                    # startwait's warm-up ops count here too: n + min(n/10, 20)
                    res[(side, m + " cpu")].append((cpu_us(pid) - c0) / (a.n + min(a.n // 10, 20)))
            log("round %d: %s" % (r + 1, " ".join(
                "%s=%.0f" % (k if isinstance(k, str) else "%s/%s" % k, v[-1])
                for k, v in res.items())))
        for k, v in res.items():
            name = k if isinstance(k, str) else "%s %s" % (a.a if k[0] == "a" else a.b, k[1])
            print("%-28s median %7.1f us  range %7.1f-%7.1f  (%d rounds of %d)" %
                  (name, statistics.median(v), min(v), max(v), len(v), a.n))
    finally:
        for r in runds.values():
            r.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

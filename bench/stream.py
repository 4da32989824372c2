#!/usr/bin/python3
"""Stream benchmark (issue 16): 1 GiB of a file's bytes to /dev/null through

  a. `cat F | cat`                       (the pipe: the machine's ceiling)
  b. `ssh 127.0.0.1 cat F`               (a throwaway OpenSSH sshd on a loopback
                                          port, warm ControlMaster: no key
                                          exchange or authentication per run)
  c. `runctl exec -- cat F`              (rund on a unix socket)

measured in the same run, interleaved round by round, medians of the rounds;
plus rund's and runctl's CPU seconds per GiB (from /proc and rusage).

  /usr/bin/python3 bench/stream.py [--build DIR] [--quick] [--rounds N] [--rows-json]

bench.py (bench/run.sh) runs it as bench 3 with --rows-json. Needs
openssh-server and openssh-client (scripts/deps.sh).
"""
import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from bench import Rund  # noqa: E402
from tls import Sshd  # noqa: E402

MiB = 1 << 20
TICK = os.sysconf("SC_CLK_TCK")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def timed(argv, shell=False):
    """Wall seconds and the child's CPU seconds of one run, output to /dev/null."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.run(argv, shell=shell, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    dt = time.monotonic() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise SystemExit("bench/stream: %r failed (%d): %s" % (
            argv, p.returncode, p.stderr.decode(errors="replace")[-2000:]))
    return dt, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=None)
    ap.add_argument("--quick", action="store_true", help="256 MiB, 3 rounds")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--rows-json", action="store_true",
                    help="print the table rows as JSON (for bench.py)")
    a = ap.parse_args()
    build = a.build or os.path.join(ROOT, "build")
    if not os.path.isabs(build):
        build = os.path.join(ROOT, build)
    rund = os.environ.get("RUND") or os.path.join(build, "src", "rund", "rund")
    runctl = os.environ.get("RUNCTL") or os.path.join(build, "src", "runctl", "runctl")
    size = 256 * MiB if a.quick else 1024 * MiB
    rounds = a.rounds or (3 if a.quick else 5)
    mib = size / MiB

    work = tempfile.mkdtemp(prefix="rr-stream-", dir="/tmp")
    r = sshd = None
    try:
        f = os.path.join(work, "stream.bin")
        with open(f, "wb") as fh:
            block = os.urandom(MiB)
            for i in range(size // MiB):
                fh.write(bytes([i & 0xFF]) + block[1:])
        os.makedirs(os.path.join(work, "ssh"))
        sshd = Sshd(os.path.join(work, "ssh"))
        warm = sshd.start_master()
        r = Rund(rund, runctl, work, "rund")
        cmds = {
            "pipe": ("cat %s | cat" % f, True),
            "ssh": (warm + ["cat", f], False),
            "runctl": ([runctl, "--addr", r.addr, "exec", "--", "cat", f], False),
        }
        for argv, shell in cmds.values():  # warm-up: page cache, first connections
            timed(argv, shell)
        wall = {k: [] for k in cmds}
        rund_cpu, runctl_cpu = [], []
        for i in range(rounds):
            for k, (argv, shell) in cmds.items():
                c0 = cpu_s(r.proc.pid)
                dt, child = timed(argv, shell)
                wall[k].append(dt)
                if k == "runctl":
                    rund_cpu.append(cpu_s(r.proc.pid) - c0)
                    runctl_cpu.append(child)
            log("round %d: %s" % (i + 1, "  ".join(
                "%s %.0f MiB/s" % (k, mib / v[-1]) for k, v in wall.items())))
        med = {k: statistics.median(v) for k, v in wall.items()}
        gib = size / (1024 * MiB)
        share = med["pipe"] / med["runctl"]
        vs_ssh = med["ssh"] / med["runctl"]
        load = os.getloadavg()[0]
        rows = [
            ("3 stream %d MiB vs pipe" % mib, "%.0f MiB/s" % (mib / med["pipe"]),
             "%.0f MiB/s" % (mib / med["runctl"]), "%.0f%%" % (share * 100), ">= 60%",
             "ok" if share >= 0.6 else "MISSED"),
            ("3 stream vs ssh (warm master)", "%.0f MiB/s" % (mib / med["ssh"]),
             "%.0f MiB/s" % (mib / med["runctl"]), "%.2fx" % vs_ssh, ">= 1.5x",
             "ok" if vs_ssh >= 1.5 else "MISSED"),
            ("3 stream CPU per GiB", "-", "rund %.2f s" % (statistics.median(rund_cpu) / gib),
             "runctl %.2f s" % (statistics.median(runctl_cpu) / gib), "-",
             "median of %d, load %.1f" % (rounds, load)),
        ]
        if a.rows_json:
            print(json.dumps({"rows": rows}))
            return
        for row in rows:
            print("  ".join(str(c) for c in row))
    finally:
        if r is not None:
            r.stop()
        if sshd is not None:
            sshd.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Bench 8: the cost of a sandbox. Start+wait of /bin/true in the same
busybox root directory, each tool measured in the same run:

  runrpc default   startwait through librunrpc on a kept connection,
                   profile "default", --rootfs ROOT
  runrpc strict    the same, profile "strict"
  runc             `runc run` of a bundle of ROOT (pid, mount, ipc, uts,
                   network namespaces: runc spec's defaults, read-only root)
  bwrap            `bwrap --unshare-all --ro-bind ROOT / --proc /proc
                   --dev /dev /bin/true`
  plain            runrpc without a sandbox (profile host), and local
                   posix_spawn+waitpid, for scale

Goals (issue 10): default <= 0.25x runc, <= 1x bwrap. Each figure is the
median of --rounds rounds (a round = N starts, mean per start).

  bench/sandbox.py [--build DIR] [--n N] [--rounds R] [--rows-json]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import Rund, log, startwait  # noqa: E402


def busybox_root(dest):
    """A minimal root: a static busybox and the directories the tools mount on."""
    bb = shutil.which("busybox")
    if not bb:
        raise SystemExit("bench: busybox missing (apt-get install busybox-static)")
    out = subprocess.run(["file", "-L", bb], capture_output=True, text=True).stdout \
        if shutil.which("file") else "statically linked"
    if "statically" not in out and "static-pie" not in out:
        raise SystemExit("bench: %s is not static (apt-get install busybox-static)" % bb)
    for d in ("bin", "proc", "dev", "sys", "tmp", "etc", "root"):
        os.makedirs(os.path.join(dest, d), exist_ok=True)
    shutil.copy2(bb, os.path.join(dest, "bin", "busybox"))
    for name in ("true", "sh", "ls", "cat", "id", "hostname"):
        os.symlink("busybox", os.path.join(dest, "bin", name))
    with open(os.path.join(dest, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n")
    return dest


def own_cgroup_v1_memory():
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if "memory" in ctrls.split(","):
                return path
    return None


def cgroup_dirs(leaf):
    """Each v1 controller's directories on the way to our memory cgroup's
    LEAF child (what runc creates, in every hierarchy), deepest first."""
    mine = own_cgroup_v1_memory()
    if mine is None:
        return []
    parts = [p for p in mine.split("/") if p] + [leaf]
    out = []
    for ctl in sorted(os.listdir("/sys/fs/cgroup")):
        base = os.path.join("/sys/fs/cgroup", ctl)
        if os.path.islink(base) or not os.path.isdir(base):
            continue
        for k in range(len(parts), 0, -1):
            out.append(os.path.join(base, *parts[:k]))
    return out


def runc_bundle(work, rootfs):
    bundle = os.path.join(work, "bundle")
    os.makedirs(bundle)
    subprocess.run(["runc", "spec", "--bundle", bundle], check=True)
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["/bin/true"]
    cfg["root"] = {"path": rootfs, "readonly": True}
    # only below our own cgroup (this host's tooling owns the rest)
    mine = own_cgroup_v1_memory()
    if mine is not None:
        cfg["linux"]["cgroupsPath"] = os.path.join(mine, "rr-bench-runc")
    with open(path, "w") as f:
        json.dump(cfg, f)
    return bundle


def time_cmds(argv_for, n):
    """Mean seconds per run of argv_for(i) over n runs (after 3 warm-ups)."""
    for i in range(3):
        subprocess.run(argv_for(-1 - i), check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t0 = time.perf_counter()
    for i in range(n):
        subprocess.run(argv_for(i), check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return (time.perf_counter() - t0) / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.environ.get("BUILD_DIR", "build"))
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--rows-json", action="store_true")
    a = ap.parse_args()
    build = os.path.join(ROOT, a.build) if not os.path.isabs(a.build) else a.build
    rund = os.environ.get("RUND") or os.path.join(build, "src/rund/rund")
    runctl = os.environ.get("RUNCTL") or os.path.join(build, "src/runctl/runctl")
    sw = os.path.join(build, "bench/startwait")
    for tool in ("runc", "bwrap"):
        if not shutil.which(tool):
            raise SystemExit("bench: %s missing (apt-get install runc bubblewrap)" % tool)

    work = tempfile.mkdtemp(prefix="rr-bench-sb-", dir="/tmp")
    # remove afterwards only the cgroup directories that runc made
    made_by_runc = [d for d in cgroup_dirs("rr-bench-runc") if not os.path.exists(d)]
    rows = []
    r = None
    try:
        os.chmod(work, 0o755)  # strict runs a root caller as nobody: it must reach the root
        rootfs = busybox_root(os.path.join(work, "rootfs"))
        bundle = runc_bundle(work, rootfs)
        runc_root = os.path.join(work, "runc-state")
        r = Rund(rund, runctl, work, "rund", extra=["--bind-allow", work])
        res = {k: [] for k in ("local", "host", "default", "strict", "runc", "bwrap")}
        for rnd in range(a.rounds):
            log("round %d/%d" % (rnd + 1, a.rounds))
            res["local"].append(startwait(sw, "local", str(a.n)) / 1e6)
            res["host"].append(startwait(sw, "sandbox", r.addr, str(a.n), "host") / 1e6)
            res["default"].append(
                startwait(sw, "sandbox", r.addr, str(a.n), "default", rootfs) / 1e6)
            res["strict"].append(
                startwait(sw, "sandbox", r.addr, str(a.n), "strict", rootfs) / 1e6)
            res["runc"].append(time_cmds(
                lambda i: ["runc", "--root", runc_root, "run", "--bundle", bundle,
                           "rr-bench-%d-%d" % (rnd, i)], max(10, a.n // 5)))
            res["bwrap"].append(time_cmds(
                lambda i: ["bwrap", "--unshare-all", "--ro-bind", rootfs, "/", "--proc",
                           "/proc", "--dev", "/dev", "/bin/true"], a.n))
        med = {k: statistics.median(v) for k, v in res.items()}
        ms = lambda s: "%.2f ms" % (s * 1e3)  # noqa: E731
        for k in ("default", "strict"):
            rows.append(("8 %s vs runc run" % k, ms(med["runc"]), ms(med[k]),
                         "%.3fx" % (med[k] / med["runc"]), "<= 0.25x",
                         "ok" if med[k] <= 0.25 * med["runc"] else "MISSED"))
            rows.append(("8 %s vs bwrap" % k, ms(med["bwrap"]), ms(med[k]),
                         "%.2fx" % (med[k] / med["bwrap"]), "<= 1x",
                         "ok" if med[k] <= med["bwrap"] else "MISSED"))
        rows.append(("8 host (plain) vs local", ms(med["local"]), ms(med["host"]),
                     "%.2fx" % (med["host"] / med["local"]), "-", ""))
        log("medians over %d rounds: %s" % (a.rounds, ", ".join(
            "%s %s" % (k, ms(v)) for k, v in med.items())))
    finally:
        if r:
            r.stop()
        for d in made_by_runc:
            try:
                os.rmdir(d)
            except OSError:
                pass
        shutil.rmtree(work, ignore_errors=True)
    if a.rows_json:
        print(json.dumps(rows))
    else:
        for row in rows:
            print("%-28s baseline %-10s runrpc %-10s %-8s goal %-8s %s" % row)


if __name__ == "__main__":
    main()

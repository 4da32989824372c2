#!/usr/bin/python3
"""rund's images vs Debian's podman, measured in the same run on the same
busybox image (made offline with umoci + skopeo + busybox-static):

  run     N x `runctl run --rm --image IMG -- /bin/true` against a private
          rund, vs N x `podman run --rm --network none IMG /bin/true`
          (private --root/--runroot, vfs storage, cgroupfs below our own
          cgroup, the ulimits podman needs on this host)
  import  `runctl image import ARCHIVE` (the image removed and its layers
          collected before each round) vs `podman load -i ARCHIVE` (rmi
          before each round)

Each figure is the median over --rounds rounds of the mean per call of a
round; rounds alternate the two. Goal (issue 11): run <= 0.02x podman.

  bench/images.py [--build DIR | --rund PATH --runctl PATH] [--n N] [--rounds R]
                  [--quick] [--rows-json]

bench.py (bench/run.sh) runs it as bench 8 with --rows-json and puts its rows
in the table.
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
ULIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=20000:20000"]
REF = "localhost/rr-bench:1"


def sh(*argv, **kw):
    r = subprocess.run(list(argv), timeout=300, capture_output=True)
    if kw.get("check", True) and r.returncode != 0:
        raise SystemExit("bench: %s exited %d: %s" % (" ".join(argv), r.returncode,
                                                      r.stderr.decode(errors="replace")[-2000:]))
    return r


def make_archive(tmp):
    bb = shutil.which("busybox")
    for tool in ("umoci", "skopeo", "podman"):
        if not shutil.which(tool):
            raise SystemExit("bench: %s missing (scripts/deps.sh installs it)" % tool)
    if not bb:
        raise SystemExit("bench: busybox missing (apt-get install busybox-static)")
    layout, bundle = os.path.join(tmp, "oci"), os.path.join(tmp, "bundle")
    sh("umoci", "init", "--layout", layout)
    sh("umoci", "new", "--image", layout + ":bb")
    sh("umoci", "unpack", "--image", layout + ":bb", bundle)
    root = os.path.join(bundle, "rootfs")
    for d in ("bin", "proc", "dev", "sys", "tmp", "etc"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy2(bb, os.path.join(root, "bin", "busybox"))
    for name in ("true", "sh"):
        os.symlink("busybox", os.path.join(root, "bin", name))
    sh("umoci", "repack", "--image", layout + ":bb", bundle)
    sh("umoci", "config", "--image", layout + ":bb", "--config.cmd", "/bin/sh")
    archive = os.path.join(tmp, "image.tar")
    sh("skopeo", "copy", "oci:%s:bb" % layout, "oci-archive:%s:%s" % (archive, REF))
    return archive


def own_cgroup_parent():
    """podman's --cgroup-parent (absolute): our deepest own v1 path + a name."""
    paths = []
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if ctrls and not ctrls.startswith("name="):
                paths.append(path.rstrip("/") + "/")
    if not paths:
        return None, None
    deepest = max(paths, key=len)
    name = "rr-bench-images-%d" % os.getpid()
    return deepest + name, name


def remove_cgroups(name):
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if not ctrls:
                continue
            top = os.path.join("/sys/fs/cgroup", ctrls.replace("name=", ""), path.lstrip("/"), name)
            for d, _, _ in sorted(os.walk(top), key=lambda t: -len(t[0])) if os.path.isdir(top) else []:
                try:
                    os.rmdir(d)
                except OSError:
                    pass


def timed(fn, n):
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=None, help="build dir (default build, else build-asan)")
    ap.add_argument("--rund", default=None)
    ap.add_argument("--runctl", default=None)
    ap.add_argument("--n", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="3 rounds of 3 calls")
    ap.add_argument("--rows-json", action="store_true",
                    help="print the table rows as JSON (for bench.py)")
    a = ap.parse_args()
    build = a.build or os.path.join(ROOT, "build")
    if not os.path.isabs(build):
        build = os.path.join(ROOT, build)
    if not a.build and not os.path.exists(os.path.join(build, "src", "rund", "rund")):
        build = os.path.join(ROOT, "build-asan")
    a.rund = a.rund or os.path.join(build, "src", "rund", "rund")
    a.runctl = a.runctl or os.path.join(build, "src", "runctl", "runctl")
    if a.quick:
        a.n, a.rounds = 3, 3
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root (overlay mounts, podman's storage)")
    tmp = tempfile.mkdtemp(prefix="rr-bench-img-", dir="/tmp")
    parent, cgname = own_cgroup_parent()
    rund = None
    pm = ["podman", "--root", os.path.join(tmp, "pm-root"), "--runroot",
          os.path.join(tmp, "pm-run"), "--tmpdir", os.path.join(tmp, "pm-tmp"),
          "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
          "--runtime", "/usr/sbin/runc"]  # crun refuses this hybrid cgroup host
    try:
        archive = make_archive(tmp)
        sock = os.path.join(tmp, "rund.sock")
        rund = subprocess.Popen([a.rund, "--listen", "unix:" + sock, "--state-dir",
                                 os.path.join(tmp, "state")], stdout=subprocess.DEVNULL,
                                stderr=open(os.path.join(tmp, "rund.log"), "wb"))
        ctl = [a.runctl, "--addr", "unix:" + sock]
        for _ in range(100):
            if os.path.exists(sock) and sh(*ctl, "image", "ls", check=False).returncode == 0:
                break
            time.sleep(0.05)
        sh(*ctl, "image", "import", archive)
        sh(*pm, "load", "-i", archive)
        run_args = ["run", "--rm", "--network", "none"] + ULIMITS + (
            ["--cgroup-parent", parent] if parent else []) + [REF, "/bin/true"]

        def rund_run():
            sh(*ctl, "run", "--rm", "--image", REF, "--", "/bin/true")

        def podman_run():
            sh(*pm, *run_args)

        def rund_import():
            sh(*ctl, "image", "rm", REF)
            time.sleep(0.2)  # the collector child removes the layers
            t0 = time.perf_counter()
            sh(*ctl, "image", "import", archive)
            return time.perf_counter() - t0

        def podman_import():
            sh(*pm, "rmi", "--force", REF)
            t0 = time.perf_counter()
            sh(*pm, "load", "-i", archive)
            return time.perf_counter() - t0

        rund_run(), podman_run()  # warm both
        r_run, p_run, r_imp, p_imp = [], [], [], []
        for _ in range(a.rounds):
            r_run.append(timed(rund_run, a.n))
            p_run.append(timed(podman_run, a.n))
            r_imp.append(rund_import())
            p_imp.append(podman_import())
        med = statistics.median
        if a.rows_json:
            ratio = med(r_run) / med(p_run)
            print(json.dumps({"rows": [
                ("8 run --rm --image (vs podman)", "%.1f ms" % (med(p_run) * 1e3),
                 "%.1f ms" % (med(r_run) * 1e3), "%.3fx" % ratio, "<= 0.02x",
                 "ok" if ratio <= 0.02 else "MISSED"),
                ("8 image import (vs podman load)", "%.1f ms" % (med(p_imp) * 1e3),
                 "%.1f ms" % (med(r_imp) * 1e3), "%.3fx" % (med(r_imp) / med(p_imp)), "-", "")]}))
            return
        print("busybox image %d KiB, %d rounds, run: %d calls per round" % (
            os.path.getsize(archive) // 1024, a.rounds, a.n))
        print("run    runctl run --rm      %8.1f ms   podman run --rm %8.1f ms   ratio %.3fx"
              % (med(r_run) * 1e3, med(p_run) * 1e3, med(r_run) / med(p_run)))
        print("import runctl image import  %8.1f ms   podman load     %8.1f ms   ratio %.3fx"
              % (med(r_imp) * 1e3, med(p_imp) * 1e3, med(r_imp) / med(p_imp)))
    finally:
        if rund and rund.poll() is None:
            rund.send_signal(signal.SIGTERM)
            rund.wait(30)
        subprocess.run(pm + ["rmi", "--all", "--force"], capture_output=True)
        for d in ("pm-root", "pm-run"):
            subprocess.run(["umount", "-R", os.path.join(tmp, d)], capture_output=True)
        if cgname:
            remove_cgroups(cgname)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

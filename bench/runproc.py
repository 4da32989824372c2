#!/usr/bin/python3
"""runproc vs runc, measured in the same run on the same busybox bundle:

  run       N x `RUNTIME run` of /bin/true (config from `runproc spec`:
            pid, network, ipc, uts, mount, cgroup namespaces, masked and
            read-only paths; the same linux.cgroupsPath below our own
            cgroup for both, so both make and remove a cgroup per run)
  run-nocg  the same without a cgroupsPath (runc still makes a cgroup of
            its own choosing; runproc makes none)
  ctr       N x `ctr run --rm --rootfs ROOT` of /bin/true through a private
            containerd (runc v2 shim) with --runc-binary runproc or runc

Each figure is the median over --rounds rounds of the mean per run of a
round; rounds alternate the runtimes. Goal (issue 12): run <= 0.2x runc.

Both runtimes keep their state (--root) on a tmpfs, as their defaults
(/run/runc, /run/runproc) are on a host with systemd: on a disk mounted
with online discard (this VM's ext4 root) each run's removed state
directory costs a synchronous discard in the closing process (up to
30 ms at load). --state-base DIR puts it elsewhere.

--baseline PATH adds another runproc binary (e.g. one built from the
commit before a change) to the same rounds: its figures and the new one's
against it, measured side by side.

  bench/runproc.py [--runproc PATH] [--baseline PATH] [--n N] [--rounds R]
                   [--ctr-n N] [--no-ctr] [--state-base DIR]
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
RUNC = "/usr/sbin/runc"


def busybox_root(dest):
    bb = shutil.which("busybox")
    if not bb:
        raise SystemExit("bench: busybox missing (apt-get install busybox-static)")
    for d in ("bin", "proc", "dev", "sys", "tmp", "etc", "root"):
        os.makedirs(os.path.join(dest, d), exist_ok=True)
    shutil.copy2(bb, os.path.join(dest, "bin", "busybox"))
    for name in ("true", "sh"):
        os.symlink("busybox", os.path.join(dest, "bin", name))


def own_cgroup_dirs():
    """Our cgroup in each v1 hierarchy, and in the v2 one of a hybrid host
    (/sys/fs/cgroup/unified: runc makes its cgroups there too)."""
    out = []
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if ctrls or os.path.isdir("/sys/fs/cgroup/unified"):
                d = os.path.join("/sys/fs/cgroup", ctrls.replace("name=", "") or "unified",
                                 path.lstrip("/"))
                if os.path.isdir(d):
                    out.append(d)
    return out


def remove_cgroups(name):
    """rmdir NAME (and what is below it) below our own cgroup, deepest first."""
    for top in own_cgroup_dirs():
        top = os.path.join(top, name)
        if os.path.isdir(top):
            for d, _, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
                try:
                    os.rmdir(d)
                except OSError as e:
                    print("bench: cannot remove %s: %s" % (d, e), file=sys.stderr)


def make_bundle(work, runproc, cgroup):
    bundle = os.path.join(work, "bundle-" + ("cg" if cgroup else "nocg"))
    os.makedirs(bundle)
    subprocess.run([runproc, "spec", "--bundle", bundle], check=True)
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["process"]["args"] = ["/bin/true"]
    cfg["root"]["path"] = os.path.join(work, "rootfs")  # one root, no symlink (runc refuses it)
    if cgroup:
        cfg["linux"]["cgroupsPath"] = cgroup  # relative: below our own in each hierarchy
    with open(path, "w") as f:
        json.dump(cfg, f)
    return bundle


def fs_type(path):
    """The type of the filesystem path is on (the longest mount point of
    /proc/self/mounts that holds it)."""
    path, best, kind = os.path.realpath(path), "", "?"
    with open("/proc/self/mounts") as f:
        for line in f:
            _, mnt, typ = line.split()[:3]
            mnt = mnt.replace("\\040", " ")
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                best, kind = mnt, typ
    return kind


def time_runs(argv_of, n):
    """Mean seconds per run of n sequential runs (each must exit 0)."""
    t0 = time.perf_counter()
    for i in range(n):
        r = subprocess.run(argv_of(i), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
        if r.returncode != 0:
            raise SystemExit("bench: %s: exit %d: %s" % (" ".join(argv_of(i)), r.returncode,
                                                           r.stderr.decode(errors="replace")))
    return (time.perf_counter() - t0) / n


class Containerd:
    """A private containerd (own root, state, socket; CRI off) for ctr run."""

    def __init__(self, work):
        self.work = work
        self.sock = os.path.join(work, "c.sock")
        cfg = os.path.join(work, "containerd.toml")
        with open(cfg, "w") as f:
            f.write('version = 2\nroot = "%s/croot"\nstate = "%s/cstate"\n'
                    'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
                    '[grpc]\n  address = "%s"\n[ttrpc]\n  address = "%s.ttrpc"\n'
                    '[debug]\n  address = ""\n[metrics]\n  address = ""\n'
                    % (work, work, self.sock, self.sock))
        self.run_dirs = ("/run/containerd/s", "/run/containerd/fifo", "/run/containerd")
        self.had = {d for d in self.run_dirs if os.path.isdir(d)}
        self.log = open(os.path.join(work, "containerd.log"), "w")
        self.proc = subprocess.Popen(["containerd", "--config", cfg], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while subprocess.run(self.ctr("version"), capture_output=True).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("bench: containerd did not start (see %s)" % self.log.name)
            time.sleep(0.2)

    def ctr(self, *args):
        return ["ctr", "--address", self.sock, "--namespace", "bench"] + list(args)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        for d in self.run_dirs:  # containerd 1.6 makes these whatever its config says
            if d not in self.had:
                try:
                    os.rmdir(d)
                except OSError:
                    pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runproc", default=os.environ.get("RUNPROC") or
                    os.path.join(ROOT, "build", "src", "runproc", "runproc"))
    ap.add_argument("--baseline", help="another runproc binary measured in the same rounds")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--ctr-n", type=int, default=20)
    ap.add_argument("--no-ctr", action="store_true")
    ap.add_argument("--state-base", default="/dev/shm" if fs_type("/dev/shm") == "tmpfs" else None,
                    help="where both runtimes' --root go (default: /dev/shm, a tmpfs)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: runproc and runc need root here")
    for tool in (a.runproc, RUNC) + ((a.baseline,) if a.baseline else ()):
        if not os.access(tool, os.X_OK):
            raise SystemExit("bench: %s missing (build it; apt-get install runc)" % tool)
    do_ctr = not a.no_ctr and shutil.which("containerd") and shutil.which("ctr")
    if not a.no_ctr and not do_ctr:
        print("bench: containerd not installed: ctr rows skipped", file=sys.stderr)

    cg = "rr-bench-runproc-%d" % os.getpid()
    work = tempfile.mkdtemp(prefix="rr-bench-rp-", dir="/tmp")
    state = tempfile.mkdtemp(prefix="rr-bench-rp-state-", dir=a.state_base or work)
    state_fs = fs_type(state)
    load0 = os.getloadavg()[0]
    ctd = None
    rts = ["runproc", "runc"] + (["base"] if a.baseline else [])
    res = {p + rt + s: [] for rt in rts for p, s in (("", ""), ("", "-nocg"), ("ctr-", ""))}
    try:
        busybox_root(os.path.join(work, "rootfs"))
        b_cg = make_bundle(work, a.runproc, cg + "/c")
        b_nocg = make_bundle(work, a.runproc, None)
        roots = {k: os.path.join(state, "state-" + k) for k in rts}
        bins = {"runproc": a.runproc, "runc": RUNC, "base": a.baseline}
        if do_ctr:
            ctd = Containerd(work)
        for rnd in range(a.rounds):
            order = rts[rnd % len(rts):] + rts[:rnd % len(rts)]  # each goes first in turn
            for rt in order:
                res[rt].append(time_runs(
                    lambda i: [bins[rt], "--root", roots[rt], "run", "--bundle", b_cg,
                               "r%d" % i], a.n))
                res[rt + "-nocg"].append(time_runs(
                    lambda i: [bins[rt], "--root", roots[rt], "run", "--bundle", b_nocg,
                               "n%d" % i], a.n))
                if ctd:
                    res["ctr-" + rt].append(time_runs(
                        lambda i: ctd.ctr("run", "--rm", "--runc-binary", bins[rt],
                                          "--runc-root", os.path.join(work, "runc-" + rt),
                                          "--fifo-dir", os.path.join(work, "fifo"),
                                          "--cgroup", "%s/ctr-%s-%d" % (cg, rt, i),
                                          "--rootfs", os.path.join(work, "rootfs"),
                                          "ctr-%s-%d-%d" % (rt, rnd, i), "/bin/true"),
                        a.ctr_n))
            print("bench: round %d/%d done" % (rnd + 1, a.rounds), file=sys.stderr, flush=True)
    finally:
        if ctd:
            ctd.stop()
            subprocess.run(["umount", "-R", os.path.join(work, "cstate")], capture_output=True)
        remove_cgroups(cg)
        # runc without a cgroupsPath makes one named after each container
        for i in range(a.n):
            remove_cgroups("n%d" % i)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)

    def ms(xs):
        return statistics.median(xs) * 1000

    print("%-34s %10s %10s %8s %8s" % ("runproc vs runc (median ms/run)", "runc", "runproc",
                                       "ratio", "goal"))
    for label, k, goal in (("run /bin/true, cgroupsPath", "", "<= 0.2x"),
                           ("run /bin/true, no cgroupsPath", "-nocg", ""),
                           ("ctr run --rm /bin/true", "ctr", "")):
        rp, rc = (("ctr-runproc", "ctr-runc") if k == "ctr" else ("runproc" + k, "runc" + k))
        if not res[rp]:
            continue
        print("%-34s %10.2f %10.2f %7.3fx %8s" % (label, ms(res[rc]), ms(res[rp]),
                                                  ms(res[rp]) / ms(res[rc]), goal))
    if a.baseline:
        print("%-34s %10s %10s %8s" % ("runproc vs --baseline (median ms)", "baseline", "runproc",
                                       "ratio"))
        for label, k in (("run /bin/true, cgroupsPath", ""),
                         ("run /bin/true, no cgroupsPath", "-nocg"), ("ctr run --rm /bin/true", "ctr")):
            rp, rb = (("ctr-runproc", "ctr-base") if k == "ctr" else ("runproc" + k, "base" + k))
            if res[rp]:
                print("%-34s %10.2f %10.2f %7.3fx" % (label, ms(res[rb]), ms(res[rp]),
                                                      ms(res[rp]) / ms(res[rb])))
        print("(baseline runc ratios: %s)" % ", ".join(
            "%.3fx" % (ms(res["base" + k]) / ms(res["runc" + k])) for k in ("", "-nocg")))
    print("(n=%d per round, ctr n=%d, %d rounds; ranges runproc %.2f-%.2f, runc %.2f-%.2f ms)"
          % (a.n, a.ctr_n, a.rounds, min(res["runproc"]) * 1000, max(res["runproc"]) * 1000,
             min(res["runc"]) * 1000, max(res["runc"]) * 1000))
    print("(state roots on %s (%s); load average %.1f before, %.1f after)"
          % (os.path.dirname(state), state_fs, load0, os.getloadavg()[0]))


if __name__ == "__main__":
    main()

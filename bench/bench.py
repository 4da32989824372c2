#!/usr/bin/python3
"""runrpc benchmarks: each figure is a ratio against a baseline measured in
the same run on the same machine (bench/run.sh runs this).

 1. `runctl exec -- true`            vs  fork+exec of /bin/true (hyperfine -N,
    medians; goal <= 2x)
 2. start+wait of /bin/true through librunrpc on one kept connection
                                      vs  posix_spawn+waitpid    (bench/startwait)
 3. 1 GiB through `runctl exec -- cat FILE`  vs  `cat FILE | cat`  and  vs
    `ssh 127.0.0.1 cat FILE` on a warm ControlMaster (bench/stream.py), with
    rund's and runctl's CPU per GiB
 4. rund RSS idle, and after 10,000 finished jobs
 5. TLS (bench/tls.py): cold `runctl exec -- true` over TLS vs `ssh 127.0.0.1
    true` (throwaway sshd), handshake cost, session resumption
 6. start+wait of /bin/true with every limit set (a cgroup per job) vs
    without: the cost of the cgroup (goal: under 1 ms)
 7. Health.Check p99 latency with 1, 4, 16 jobs writing as fast as they can
    (4 KiB log cap) vs with none (bench/loop_stall.py)
 8. images (bench/images.py, as root): `runctl run --rm --image` vs `podman
    run --rm` and `runctl image import` vs `podman load`, same busybox archive
 9. 10,000 live `sleep 1000` jobs in one rund: fds and RSS per running job,
    and whether another caller still gets Health and Start (bench/livejobs.py;
    --quick: 2,000 jobs, one round)
10. fan-out (bench/fanout.py, as root): `runctl --hosts FILE exec -- true` on
    20 rund over TLS vs `seq 20 | xargs -P 20 ssh USER@127.0.0.1 true` to a
    throwaway sshd as a throwaway /bin/sh user (goal <= 0.1x)
11. keystroke round trip (bench/keystroke.py): a byte typed, its remote
    echo back, through `runctl exec -tt` vs `ssh -tt` to a throwaway sshd
    (a throwaway /bin/sh user as root), and vs a local pty relay (script),
    the floor of any remote terminal (goal <= 0.25x ssh)
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
GiB = 1 << 30


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def du_kib(path):
    total = 0
    for d, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(d, f)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total // 1024


class Rund:
    def __init__(self, rund, runctl, work, name, extra=(), state_base=None):
        self.dir = os.path.join(work, name)
        os.makedirs(self.dir)
        self.sock = os.path.join(self.dir, "rund.sock")
        self.addr = "unix:" + self.sock
        # state_base: a tmpfs (/dev/shm), to tell our CPU from the host file system's
        self.state_base = tempfile.mkdtemp(prefix="rr-bench-", dir=state_base) if state_base \
            else None
        self.state = os.path.join(self.state_base or self.dir, "state")
        self.errf = open(os.path.join(self.dir, "rund.stderr"), "wb")
        self.proc = subprocess.Popen([rund, "--listen", self.addr, "--state-dir", self.state]
                                     + list(extra),
                                     stdin=subprocess.DEVNULL, stdout=self.errf, stderr=self.errf)
        end = time.monotonic() + 20
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise SystemExit("bench: rund exited %d (see %s)" % (self.proc.returncode,
                                                                    self.errf.name))
            if os.path.exists(self.sock) and subprocess.run(
                    [runctl, "--addr", self.addr, "list"], stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL).returncode == 0:
                return
            time.sleep(0.05)
        raise SystemExit("bench: rund did not answer within 20 s")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.errf.close()
        if self.state_base:
            shutil.rmtree(self.state_base, ignore_errors=True)


def hyperfine(work, name, cmds, runs, warmup, shell=True, stat="mean"):
    out = os.path.join(work, name + ".json")
    argv = ["hyperfine", "--style", "basic", "--export-json", out,
            "--warmup", str(warmup), "--runs", str(runs)]
    if not shell:
        argv.append("-N")
    argv += cmds
    log("$ " + " ".join(argv))
    subprocess.run(argv, check=True, stdout=sys.stderr)
    with open(out) as f:
        return [r[stat] for r in json.load(f)["results"]]


def startwait(bin_, *args):
    p = subprocess.run([bin_] + list(args), check=True, capture_output=True, text=True)
    kv = dict(x.split("=", 1) for x in p.stdout.split())
    return float(kv["per_op_us"])


def vm_bench(build, n, host_local_us):
    """Bench 6 on cgroup v2: startwait inside the qemu VM of tests/vm (TCG
    emulation: absolute times are several times native; the local
    fork+exec+wait measured there tells by how much)."""
    if not shutil.which("qemu-system-x86_64"):
        log("bench 6 (v2): qemu missing (./scripts/deps.sh vm): skipped")
        return []
    env = dict(os.environ, RUND=os.path.join(build, "src/rund/rund"),
               RUNCTL=os.path.join(build, "src/runctl/runctl"),
               STARTWAIT=os.path.join(build, "bench/startwait"))
    p = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "vm", "run.py"), "--bench",
                        str(n)], env=env, stdout=subprocess.PIPE, text=True)
    kv = dict(x.split("=", 1) for x in p.stdout.split() if "=" in x)
    if p.returncode != 0 or "limits_us" not in kv:
        log("bench 6 (v2): the VM run failed (exit %d)" % p.returncode)
        return []
    local, plain, limits = (float(kv[k]) for k in ("local_us", "plain_us", "limits_us"))
    cost = limits - plain
    slow = local / host_local_us  # how much slower the emulated machine spawns
    return [("6 start+wait, all limits (v2, VM)", "%.0f us" % plain, "%.0f us" % limits,
             "+%.0f us" % cost, "< 1000 us", "TCG %.1fx slower: ~+%.0f us native"
             % (slow, cost / slow))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.environ.get("BUILD_DIR", "build"))
    ap.add_argument("--quick", action="store_true", help="fewer runs, 256 MiB stream")
    ap.add_argument("--only", default="1,2,3,4,5,6,7,8,9,10,11",
                    help="which benches: digits (13; 0 is 10) or a comma list (1,10,11)")
    ap.add_argument("--state-tmpfs", action="store_true",
                    help="bench 2 also with rund's state dir on /dev/shm (tmpfs): rund's own "
                         "cost apart from the host file system's")
    a = ap.parse_args()
    # "13" is benches 1 and 3 (0 stands for 10); "1,10", "10" and "11" say it in full
    sel = set(a.only.split(",")) if "," in a.only or a.only in ("10", "11") else \
        {"10" if c == "0" else c for c in a.only}
    build = os.path.join(ROOT, a.build) if not os.path.isabs(a.build) else a.build
    rund = os.environ.get("RUND") or os.path.join(build, "src/rund/rund")
    runctl = os.environ.get("RUNCTL") or os.path.join(build, "src/runctl/runctl")
    sw = os.path.join(build, "bench/startwait")
    for b in (rund, runctl, sw):
        if not os.access(b, os.X_OK):
            raise SystemExit("bench: %s is missing; run `make` first" % b)
    if not shutil.which("hyperfine"):
        raise SystemExit("bench: hyperfine is missing; run scripts/deps.sh")

    work = tempfile.mkdtemp(prefix="rr-bench-", dir="/tmp")
    rows = []
    try:
        r = Rund(rund, runctl, work, "main")
        ctl = "%s --addr %s" % (runctl, r.addr)
        if "1" in sel:
            runs = 50 if a.quick else 300
            # medians: the machine is shared, and a cold start is what we compare
            remote, local = hyperfine(work, "exec_true", [ctl + " exec -- true", "/bin/true"],
                                      runs, 20, shell=False, stat="median")
            ratio = remote / local
            rows.append(("1 exec true (cold, unix)", "%.3f ms" % (local * 1e3),
                         "%.3f ms" % (remote * 1e3), "%.1fx" % ratio, "<= 2x",
                         "ok" if ratio <= 2 else "MISSED"))
        if "2" in sel:
            n = 500 if a.quick else 3000
            local = startwait(sw, "local", str(n))
            remote = startwait(sw, "remote", r.addr, str(n))
            ratio = remote / local
            rows.append(("2 start+wait (lib)", "%.1f us" % local, "%.1f us" % remote,
                         "%.2fx" % ratio, "<= 1.5x", "ok" if ratio <= 1.5 else "MISSED"))
            if a.state_tmpfs:
                t = Rund(rund, runctl, work, "tmpfs", state_base="/dev/shm")
                try:
                    local = startwait(sw, "local", str(n))
                    remote = startwait(sw, "remote", t.addr, str(n))
                finally:
                    t.stop()
                ratio = remote / local
                rows.append(("2 start+wait (lib), state on tmpfs", "%.1f us" % local,
                             "%.1f us" % remote, "%.2fx" % ratio, "<= 1.5x",
                             "ok" if ratio <= 1.5 else "MISSED"))
        if "3" in sel:
            p = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "stream.py"),
                                "--build", build, "--rows-json"] + (["--quick"] if a.quick
                                                                    else []),
                               stdout=subprocess.PIPE, check=True)
            rows += [tuple(x) for x in json.loads(p.stdout)["rows"]]
        if "6" in sel:
            n = 300 if a.quick else 2000
            plain = startwait(sw, "remote", r.addr, str(n))
            limited = startwait(sw, "limits", r.addr, str(n))
            cost = limited - plain
            rows.append(("6 start+wait, all limits (v1)", "%.1f us" % plain, "%.1f us" % limited,
                         "+%.0f us" % cost, "< 1000 us", "ok" if cost < 1000 else "MISSED"))
            rows += vm_bench(build, 100 if a.quick else 300, startwait(sw, "local", str(n)))
        r.stop()
        if "4" in sel:
            r = Rund(rund, runctl, work, "rss")
            time.sleep(0.5)
            idle = rss_kib(r.proc.pid)
            n = 10000
            t0 = time.monotonic()
            startwait(sw, "remote", r.addr, str(n))
            dt = time.monotonic() - t0
            time.sleep(0.5)
            after = rss_kib(r.proc.pid)
            rows.append(("4 rund RSS idle", "-", "%.1f MiB" % (idle / 1024), "-", "-", ""))
            rows.append(("4 RSS, %d+ finished jobs" % n, "-", "%.1f MiB" % (after / 1024),
                         "%.2f KiB/job" % ((after - idle) / n), "-",
                         "%.1fs, state %.0f MiB" % (dt, du_kib(r.state) / 1024)))
            r.stop()
        if "5" in sel:
            p = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "tls.py"),
                                "--build", build, "--rows-json"] + (["--quick"] if a.quick
                                                                    else []),
                               stdout=subprocess.PIPE, check=True)
            rows += [tuple(x) for x in json.loads(p.stdout)["rows"]]
        if "7" in sel:
            p = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "loop_stall.py"),
                                "--build", build, "--rows-json", "--seconds",
                                "2" if a.quick else "5"], stdout=subprocess.PIPE, check=True)
            rows += [tuple(x) for x in json.loads(p.stdout)["rows"]]
        if "8" in sel:
            if os.geteuid() != 0:
                rows.append(("8 images", "-", "-", "-", "-", "skipped: needs root"))
            else:
                p = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "images.py"),
                                    "--build", build, "--rows-json"] + (["--quick"] if a.quick
                                                                        else []),
                                   stdout=subprocess.PIPE, check=True)
                rows += [tuple(x) for x in json.loads(p.stdout)["rows"]]
        if "9" in sel:
            p = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "livejobs.py"),
                                "--build", build, "--rows-json", "--jobs",
                                "2000" if a.quick else "10000", "--rounds",
                                "1" if a.quick else "3"], stdout=subprocess.PIPE, check=True)
            rows += [tuple(x) for x in json.loads(p.stdout)["rows"]]
        if "10" in sel:
            p = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "fanout.py"),
                                "--build", build, "--rows-json"] + (["--quick"] if a.quick
                                                                    else []),
                               stdout=subprocess.PIPE, check=True)
            rows += [tuple(x) for x in json.loads(p.stdout)["rows"]]
        if "11" in sel:
            p = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "keystroke.py"),
                                "--build", build, "--rows-json"] + (["--quick"] if a.quick
                                                                    else []),
                               stdout=subprocess.PIPE, check=True)
            rows += [tuple(x) for x in json.loads(p.stdout)["rows"]]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    head = ("bench", "baseline", "runrpc", "ratio", "goal", "")
    w = [max(len(str(x[i])) for x in rows + [head]) for i in range(len(head))]
    for row in [head] + rows:
        print("  ".join(str(c).ljust(w[i]) for i, c in enumerate(row)).rstrip())


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""runrpc (the shim) figures, every ratio against a baseline measured in the
same run, medians of several runs:

 1. Commander.Shell round trip of `true` over a pipe (grpcio -> unix socket
    -> socat -> runrpc's stdin/stdout) vs a local fork+exec of `true`
    (subprocess); with --ssh (root) also vs `ssh host true` to an sshd of
    our own on loopback, as a throwaway user made for the run and removed
    after it (key auth, a fresh connection per command, as a script does).
 2. forktest: Fork 5 deep, each level through the ones above, and ask each
    level its pid (Info): the time for the whole chain.
 3. pipeline: numbers per second through 5 forked runrpc stages (each runs
    awk adding one; output chunks streamed from stage to stage) vs a plain
    pipe chain of the same 5 awk processes.

    RUNRPC=build/src/shim/runrpc /usr/bin/python3 bench/shim.py [--quick] [--ssh]
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("RUNRPC", os.path.join(ROOT, "build", "src", "shim", "runrpc"))
# this file is shim.py: off the path, or it shadows the generated `shim` stub package
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
sys.path.insert(0, os.path.join(ROOT, "examples"))

import grpc  # noqa: E402

from runrpc_shim import SocatBridge, Stubs, close_chain, cpb, fork_chain, rpb  # noqa: E402
import pipeline  # noqa: E402

QUICK = "--quick" in sys.argv
SSH = "--ssh" in sys.argv
SSH_USER = "rrbench"


def med(xs):
    return statistics.median(xs)


def shell_true(stubs):
    for m in stubs.commander.Shell(iter([cpb.Command(argv=["true"])]), timeout=30):
        if m.WhichOneof("kind") == "exit":
            assert m.exit.code == 0


def bench_round_trip(d):
    n = 20 if QUICK else 100
    bridge = SocatBridge(d, stderr=subprocess.DEVNULL)
    stubs = Stubs(grpc.insecure_channel(bridge.addr))
    for _ in range(5):  # warm: connection, first spawns
        shell_true(stubs)
    ours, local = [], []
    for _ in range(n):  # alternated, so that load on the machine hits both
        t0 = time.perf_counter()
        shell_true(stubs)
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        subprocess.run(["true"], check=True)
        local.append(time.perf_counter() - t0)
    stubs.channel.close()
    bridge.wait()
    return med(ours), med(local), n


class Sshd:
    """sshd -D on 127.0.0.1:PORT (own host key and config) and a throwaway
    user with a key; stop() ends sshd by its pid and removes the user."""

    def __init__(self, d):
        import socket
        self.d = d
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        # "*": no password, but not locked ("!"), which sshd without PAM refuses
        subprocess.run(["useradd", "-m", "-s", "/bin/sh", "-p", "*", SSH_USER], check=True)
        home = os.path.expanduser("~" + SSH_USER)
        self.key = os.path.join(d, "id")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.key],
                       check=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                        os.path.join(d, "hostkey")], check=True)
        os.makedirs(os.path.join(home, ".ssh"), mode=0o700, exist_ok=True)
        with open(os.path.join(home, ".ssh", "authorized_keys"), "w") as f:
            f.write(open(self.key + ".pub").read())
        subprocess.run(["chown", "-R", SSH_USER + ":", os.path.join(home, ".ssh")], check=True)
        cfg = os.path.join(d, "sshd_config")
        with open(cfg, "w") as f:
            f.write("Port %d\nListenAddress 127.0.0.1\nHostKey %s\nPidFile %s\n"
                    "PasswordAuthentication no\nUsePAM no\nStrictModes no\n"
                    % (self.port, os.path.join(d, "hostkey"), os.path.join(d, "sshd.pid")))
        os.makedirs("/run/sshd", exist_ok=True)
        self.log = open(os.path.join(d, "sshd.log"), "wb")
        self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", cfg],
                                     stderr=self.log)
        end = time.monotonic() + 10
        while time.monotonic() < end and subprocess.run(self.cmd("true")).returncode != 0:
            time.sleep(0.1)

    def cmd(self, *args):
        return ["ssh", "-q", "-p", str(self.port), "-i", self.key, "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                SSH_USER + "@127.0.0.1"] + list(args)

    def stop(self):
        self.proc.terminate()  # our sshd, by its pid
        self.proc.wait(timeout=10)
        self.log.close()
        subprocess.run(["userdel", "-r", SSH_USER], stderr=subprocess.DEVNULL)


def bench_ssh(d):
    n = 10 if QUICK else 30
    sshd = Sshd(d)
    try:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            if subprocess.run(sshd.cmd("true")).returncode != 0:
                raise RuntimeError("ssh failed: " + open(os.path.join(d, "sshd.log")).read())
            times.append(time.perf_counter() - t0)
    finally:
        sshd.stop()
    return med(times), n


def bench_forktest(d, depth=5):
    runs = 3 if QUICK else 7
    times = []
    for _ in range(runs):
        bridge = SocatBridge(d, stderr=subprocess.DEVNULL)
        root = Stubs(grpc.insecure_channel(bridge.addr))
        root.runner.Info(rpb.InfoRequest(), timeout=30)  # connected
        t0 = time.perf_counter()
        tunnels = fork_chain(root.runner, depth, d)
        for t in tunnels:
            t.runner.Info(rpb.InfoRequest(), timeout=30)
        times.append(time.perf_counter() - t0)
        close_chain(tunnels)
        root.channel.close()
        bridge.wait()
    return med(times), runs


def plain_chain(stages, count):
    cmd = "seq 0 %d" % (count - 1) + (" | " + pipeline.ADD_ONE) * stages
    t0 = time.perf_counter()
    out = subprocess.run(["sh", "-c", cmd], capture_output=True, check=True).stdout
    elapsed = time.perf_counter() - t0
    assert out == "".join("%d\n" % (n + stages) for n in range(count)).encode()
    return elapsed


def bench_pipeline(d, stages=5):
    count = 20000 if QUICK else 100000
    runs = 3 if QUICK else 5
    ours, plain = [], []
    want = "".join("%d\n" % (n + stages) for n in range(count)).encode()
    for _ in range(runs):
        bridge = SocatBridge(d, stderr=subprocess.DEVNULL)
        root = Stubs(grpc.insecure_channel(bridge.addr))
        tunnels = fork_chain(root.runner, stages, d)
        out, elapsed, errors = pipeline.run([t.commander for t in tunnels], count)
        assert out == want and not errors, errors
        ours.append(elapsed)
        close_chain(tunnels)
        root.channel.close()
        bridge.wait()
        plain.append(plain_chain(stages, count))
    return count / med(ours), count / med(plain), count, runs


def main():
    with tempfile.TemporaryDirectory(prefix="bench-shim-", dir="/tmp") as d:
        ours, local, n = bench_round_trip(d)
        print("1. Shell(`true`) over a pipe: %.2f ms median of %d; local fork+exec %.2f ms; "
              "ratio %.1fx" % (ours * 1e3, n, local * 1e3, ours / local))
        if SSH:
            t, sn = bench_ssh(d)
            print("   `ssh host true` (loopback sshd, key auth, new connection each): %.1f ms "
                  "median of %d; Shell over a pipe is %.0fx faster" % (t * 1e3, sn, t / ours))
        t, runs = bench_forktest(d)
        print("2. forktest depth 5 (5 Forks + Info on each): %.1f ms median of %d runs"
              % (t * 1e3, runs))
        o, p, count, runs = bench_pipeline(d)
        print("3. pipeline, 5 stages, %d numbers: %.0f numbers/s through forked runrpc; "
              "plain pipe chain %.0f numbers/s; ratio %.1fx slower (medians of %d runs)"
              % (count, o, p, p / o, runs))


if __name__ == "__main__":
    main()

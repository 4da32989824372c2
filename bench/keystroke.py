#!/usr/bin/python3
"""Keystroke benchmark (issue 14): the round trip of one typed byte through
a remote terminal, the way a person feels it in a remote shell: a byte
written to the client's terminal comes back as the remote terminal's echo.

  a. `ssh -tt USER@127.0.0.1 CMD`       (a throwaway OpenSSH sshd on a loopback
                                         port, bench/tls.py's Sshd; as root a
                                         throwaway /bin/sh user with no start-up
                                         files, bench/fanout.py's; one session
                                         per round, its login outside the timing)
  b. `runctl exec -tt -- CMD`           (rund on a unix socket)
  c. `script -qfc CMD /dev/null`         (the floor of any remote terminal: one
                                         local process relaying between the
                                         client's terminal and a second pty,
                                         no socket, no server)

The client runs on the slave of a pty this script holds the master of (a
person's terminal); CMD says READY, then `cat` with the remote terminal's
echo on: each byte written to the master is read back from it once the
remote side echoed it. No newline is typed, so cat itself prints nothing.
Each round runs both clients one after the other, KEYS bytes each, one at
a time; a round's figure is the median of its round trips, the result the
median of the rounds' medians. Only what happens after READY is timed, so
the shell start-up of the login (ssh runs CMD through the user's shell)
costs nothing here.

  /usr/bin/python3 bench/keystroke.py [--build DIR] [--quick] [--rounds N] [--keys N]
                                      [--rows-json]

bench.py (bench/run.sh) runs it as bench 11 with --rows-json. Needs
openssh-server and openssh-client (scripts/deps.sh), and script (bsdutils).
"""
import argparse
import json
import os
import select
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
from fanout import ThrowawayUser  # noqa: E402
from tls import Sshd  # noqa: E402

CMD = ["sh", "-c", "echo READY; exec cat"]
GOAL = 0.25


def log(*a):
    print(*a, file=sys.stderr, flush=True)


class Session:
    """A client on a fresh pty; the master is the person's side."""

    def __init__(self, argv):
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                                     start_new_session=True,
                                     preexec_fn=lambda: __import__("fcntl").ioctl(
                                         0, __import__("termios").TIOCSCTTY, 0))
        os.close(slave)
        self.buf = b""

    def read_until(self, want, timeout=30.0):
        end = time.monotonic() + timeout
        while want not in self.buf:
            left = end - time.monotonic()
            if left <= 0 or self.proc.poll() is not None and not select.select(
                    [self.master], [], [], 0)[0]:
                raise SystemExit("bench/keystroke: no %r from %r: %r"
                                 % (want, self.proc.args[:3], self.buf[-500:]))
            if select.select([self.master], [], [], min(left, 0.5))[0]:
                try:
                    self.buf += os.read(self.master, 4096)
                except OSError:
                    pass

    def round_trip(self, byte):
        """Seconds from writing byte to reading its echo back."""
        t0 = time.perf_counter()
        os.write(self.master, byte)
        got = b""
        while byte not in got:
            select.select([self.master], [], [], 10)
            got += os.read(self.master, 4096)
        return time.perf_counter() - t0

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        os.close(self.master)


def measure(argv, keys):
    s = Session(argv)
    try:
        s.read_until(b"READY")
        time.sleep(0.05)  # cat has started after the echo of READY
        letters = b"abcdefghijklmnopqrstuvwxyz"
        rtts = [s.round_trip(letters[i % 26:i % 26 + 1]) for i in range(keys)]
    finally:
        s.close()
    return statistics.median(rtts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=None)
    ap.add_argument("--quick", action="store_true", help="3 rounds of 100 keys")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--keys", type=int, default=None)
    ap.add_argument("--rows-json", action="store_true",
                    help="print the table rows as JSON (for bench.py)")
    a = ap.parse_args()
    build = a.build or os.path.join(ROOT, "build")
    if not os.path.isabs(build):
        build = os.path.join(ROOT, build)
    rund = os.environ.get("RUND") or os.path.join(build, "src", "rund", "rund")
    runctl = os.environ.get("RUNCTL") or os.path.join(build, "src", "runctl", "runctl")
    rounds = a.rounds or (3 if a.quick else 7)
    keys = a.keys or (100 if a.quick else 300)

    work = tempfile.mkdtemp(prefix="rr-keys-", dir="/tmp")
    os.chmod(work, 0o755)  # the throwaway user reaches its home and keys below it
    r = sshd = user = None
    try:
        if os.geteuid() == 0:  # else our own login (its start-up is outside the timing)
            user = ThrowawayUser(os.path.join(work, "home"))
        os.mkdir(os.path.join(work, "ssh"), 0o755)  # its authorized_keys: read as the user
        sshd = Sshd(os.path.join(work, "ssh"), user=user.name if user else None)
        r = Rund(rund, runctl, work, "rund")
        cmds = {
            # ssh joins its words into one line for the login shell
            "ssh": sshd.argv[:1] + ["-tt"] + sshd.argv[1:] + [CMD[2]],
            "runctl": [runctl, "--addr", r.addr, "exec", "-tt", "--"] + CMD,
            "relay": ["script", "-qfc", "sh -c '%s'" % CMD[2], "/dev/null"],
        }
        for argv in cmds.values():  # warm-up: page cache, first connections
            measure(argv, 10)
        med = {k: [] for k in cmds}
        for i in range(rounds):
            for k, argv in cmds.items():
                med[k].append(measure(argv, keys))
            log("round %d: %s" % (i + 1, "  ".join(
                "%s %.0f us" % (k, v[-1] * 1e6) for k, v in med.items())))
        m = {k: statistics.median(v) for k, v in med.items()}
        ratio = m["runctl"] / m["ssh"]
        load = os.getloadavg()[0]
        rows = [("11 keystroke round trip vs ssh -t", "%.0f us" % (m["ssh"] * 1e6),
                 "%.0f us" % (m["runctl"] * 1e6), "%.2fx" % ratio, "<= %.2fx" % GOAL,
                 ("ok" if ratio <= GOAL else "MISSED")
                 + " (median of %d x %d keys, load %.1f)" % (rounds, keys, load)),
                ("11 keystroke vs a local pty relay", "%.0f us" % (m["relay"] * 1e6),
                 "%.0f us" % (m["runctl"] * 1e6), "+%.0f us" % ((m["runctl"] - m["relay"]) * 1e6),
                 "-", "script(1): two ptys, no server (the floor)")]
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
        if user is not None:
            user.remove()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

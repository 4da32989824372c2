#!/usr/bin/python3
"""Fan-out benchmark (issue 17, bench 10): `exec true` on 20 hosts at once.

 runrpc:   `runctl --hosts FILE exec -- true`, 20 rund instances on loopback
           over TLS (each with its own port; client certificate; runctl's
           session cache warm, as a user's would be) and, for information,
           over their unix sockets.
 baseline: `seq 20 | xargs -P 20 -I{} ssh USER@127.0.0.1 true` to one
           throwaway sshd (bench/tls.py's: own host key, key auth, loopback
           port, MaxStartups raised so that 20 logins at once are not
           dropped) as a throwaway user whose login shell is /bin/sh with
           no start-up files (nothing runs but `true`).

Rounds are interleaved (ssh, TLS, unix, ...) and the figure is the ratio of
medians of wall time; goal <= 0.1x. Also runctl's own CPU per run (rusage)
and --parallel 1 (one host after another) to show what the threads buy.

Run alone (`bench/fanout.py [--build DIR] [--quick]`, as root: it adds and
removes the user) or from bench/run.sh (bench.py runs it with --rows-json).
Needs openssl, openssh-server, openssh-client.
"""

import os
import pwd
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
from tls import Rund, Sshd, cli, log, make_pki  # noqa: E402

NHOSTS = 20


class ThrowawayUser:
    """A user with /bin/sh as shell and an empty home: its ssh session runs
    the command and nothing else."""

    def __init__(self, home):
        self.name = "rrfan%d" % os.getpid()
        os.makedirs(home, 0o755, exist_ok=True)
        # "*": no password, yet not locked ("!"), which sshd without PAM refuses
        subprocess.run(["useradd", "--no-create-home", "--home-dir", home, "--shell", "/bin/sh",
                        "--no-user-group", "--gid", "nogroup", "--password", "*", self.name],
                       check=True)
        pw = pwd.getpwnam(self.name)
        os.chown(home, pw.pw_uid, pw.pw_gid)

    def remove(self):
        subprocess.run(["userdel", self.name], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


def timed(argv):
    """Wall seconds and children's CPU seconds of one run (it must succeed)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    dt = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise SystemExit("bench/fanout: %s failed (%d): %s" % (
            " ".join(argv)[:300], p.returncode, p.stderr.decode(errors="replace")[-2000:]))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return dt, cpu


def measure(build, quick):
    rund = os.environ.get("RUND") or os.path.join(build, "src/rund/rund")
    runctl = os.environ.get("RUNCTL") or os.path.join(build, "src/runctl/runctl")
    for b in (rund, runctl):
        if not os.access(b, os.X_OK):
            raise SystemExit("bench/fanout: %s is missing; run `make` first" % b)
    if os.geteuid() != 0:
        return [("10 fan-out 20 hosts", "-", "-", "-", "-", "skipped: needs root (a user)")], {}
    work = tempfile.mkdtemp(prefix="rr-bfan-", dir="/tmp")
    os.chmod(work, 0o755)
    hosts, sshd, user = [], None, None
    rows, facts = [], {}
    try:
        pki = make_pki(work)
        user = ThrowawayUser(os.path.join(work, "home"))
        os.mkdir(os.path.join(work, "ssh"), 0o755)  # its authorized_keys: read as the user
        sshd = Sshd(os.path.join(work, "ssh"), user=user.name,
                    extra="MaxStartups 100:30:200\nMaxSessions 100\n")
        for i in range(NHOSTS):
            hosts.append(Rund(rund, os.path.join(work, "h%02d" % i), pki))
        tls_file = os.path.join(work, "hosts.tls")
        unix_file = os.path.join(work, "hosts.unix")
        with open(tls_file, "w") as f:
            for i, h in enumerate(hosts):
                f.write("127.0.0.1:%d name=h%02d ca=%s cert=%s key=%s\n" % (
                    h.tls_port, i, pki["ca.pem"], pki["client.pem"], pki["client.key"]))
        with open(unix_file, "w") as f:
            for i, h in enumerate(hosts):
                f.write("unix:%s name=h%02d\n" % (h.sock, i))
        xdg = os.path.join(work, "xdg")  # runctl's session cache: ours
        os.mkdir(xdg, 0o700)
        os.environ["XDG_RUNTIME_DIR"] = xdg
        ssh_cmd = " ".join("'%s'" % a for a in sshd.argv)
        kinds = {
            "ssh": ["sh", "-c", "seq %d | xargs -P %d -I{} %s true" % (NHOSTS, NHOSTS, ssh_cmd)],
            "tls": [runctl, "--hosts", tls_file, "exec", "--", "true"],
            "unix": [runctl, "--hosts", unix_file, "exec", "--", "true"],
            "tls1": [runctl, "--hosts", tls_file, "--parallel", "1", "exec", "--", "true"],
        }
        for argv in kinds.values():  # fail loudly before timing; warms the session cache
            timed(argv)
        rounds = 5 if quick else 15
        wall = {k: [] for k in kinds}
        cpu = {k: [] for k in kinds}
        for n in range(rounds):
            for k, argv in kinds.items():
                dt, c = timed(argv)
                wall[k].append(dt)
                cpu[k].append(c)
            log("bench/fanout: round %d/%d: %s" % (n + 1, rounds, ", ".join(
                "%s %.0f ms" % (k, wall[k][-1] * 1e3) for k in kinds)))
        med = {k: statistics.median(v) for k, v in wall.items()}
        mcpu = {k: statistics.median(v) for k, v in cpu.items()}
        ratio = med["tls"] / med["ssh"]
        rows.append(("10 fan-out exec true, 20 hosts TLS", "%.0f ms ssh -P 20" % (med["ssh"] * 1e3),
                     "%.0f ms" % (med["tls"] * 1e3), "%.3fx" % ratio, "<= 0.1x",
                     ("ok" if ratio <= 0.1 else "MISSED") + ", median of %d" % rounds))
        rows.append(("10 fan-out, 20 hosts unix (info)", "%.0f ms ssh" % (med["ssh"] * 1e3),
                     "%.0f ms" % (med["unix"] * 1e3), "%.3fx" % (med["unix"] / med["ssh"]), "-",
                     "runctl CPU %.1f ms TLS, %.1f ms unix" % (mcpu["tls"] * 1e3,
                                                              mcpu["unix"] * 1e3)))
        rows.append(("10 fan-out TLS --parallel 1 vs 32 (info)",
                     "%.0f ms one at a time" % (med["tls1"] * 1e3),
                     "%.0f ms" % (med["tls"] * 1e3), "%.2fx" % (med["tls"] / med["tls1"]), "-",
                     "the 20 ssh clients' CPU %.0f ms" % (mcpu["ssh"] * 1e3)))
        facts.update(rounds=rounds, wall_ms={k: v * 1e3 for k, v in med.items()},
                     cpu_ms={k: v * 1e3 for k, v in mcpu.items()}, ratio=ratio,
                     loadavg=os.getloadavg())
    finally:
        for h in hosts:
            h.stop()
        if sshd is not None:
            sshd.stop()
        if user is not None:
            user.remove()
        shutil.rmtree(work, ignore_errors=True)
    return rows, facts


if __name__ == "__main__":
    cli(measure)

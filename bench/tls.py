#!/usr/bin/python3
"""TLS benchmark (issue 4, "Measured in bench/"), in one run on one machine:

 a. cold `runctl exec -- true` over TLS (new process, new TLS 1.3 connection
    with a client certificate, each run, resuming the session the previous
    runctl kept in its cache as a user's runctl does)  vs  `ssh 127.0.0.1
    true` to a throwaway OpenSSH sshd (own host key, key auth, random
    loopback port; goal: <= 1/30) and vs the same ssh riding on a
    ControlMaster connection kept open (goal: <= 0.33x). Also runctl without
    the session cache (a full handshake each run), over the unix socket and
    over h2c (plaintext TCP + token) to show what TLS adds. Medians.
 b. handshake cost: TCP connect + HTTP/2 preface until rund's SETTINGS frame,
    h2c  vs  TLS 1.3 full handshake  vs  TLS 1.3 resumed (session ticket).
 c. resumption: `openssl s_client -sess_out` then `-sess_in`: "Reused"?

Run alone (`bench/tls.py [--build DIR] [--quick]`) or from bench/run.sh
(bench.py runs it with --rows-json and puts its rows in the table).
Needs openssl, openssh-server, openssh-client, hyperfine.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def sh(*argv, **kw):
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    p = subprocess.run(list(argv), **kw)
    if p.returncode != 0:
        raise SystemExit("bench/tls: %s failed (%d): %s" % (
            " ".join(argv), p.returncode, (p.stderr or b"").decode(errors="replace")[-2000:]))
    return p.stdout


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, what, timeout=20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit("bench/tls: %s exited %d" % (what, proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("bench/tls: %s does not listen on %d" % (what, port))


def stop(proc):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --------------------------------------------------------------------------
# certificates: ECDSA P-384 CA, server cert for 127.0.0.1/localhost, client


def make_pki(d, curve="P-384"):
    md = "-sha384" if curve == "P-384" else "-sha256"

    def key(name):
        path = os.path.join(d, name + ".key")
        sh("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:" + curve,
           "-out", path)
        os.chmod(path, 0o600)
        return path

    cnf = os.path.join(d, "req.cnf")
    with open(cnf, "w") as f:
        f.write("[req]\ndistinguished_name=dn\nprompt=no\n[dn]\nCN=x\n"
                "[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n"
                "[server]\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n"
                "[client]\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=clientAuth\nsubjectAltName=URI:runrpc:bench\n")
    pki = {"ca.key": key("ca"), "ca.pem": os.path.join(d, "ca.pem")}
    sh("openssl", "req", "-config", cnf, "-x509", "-new", "-key", pki["ca.key"], md,
       "-days", "2", "-subj", "/CN=bench CA", "-extensions", "ca", "-out", pki["ca.pem"])
    for leaf in ("server", "client"):
        k = key(leaf)
        csr = os.path.join(d, leaf + ".csr")
        crt = os.path.join(d, leaf + ".pem")
        sh("openssl", "req", "-config", cnf, "-new", "-key", k, "-subj", "/CN=" + leaf,
           "-out", csr)
        sh("openssl", "x509", "-req", "-in", csr, "-CA", pki["ca.pem"], "-CAkey", pki["ca.key"],
           "-CAcreateserial", md, "-days", "2", "-extfile", cnf, "-extensions", leaf,
           "-out", crt)
        pki[leaf + ".key"], pki[leaf + ".pem"] = k, crt
    return pki


# --------------------------------------------------------------------------
# a throwaway sshd


class Sshd:
    """user: log in as this user (default: ours); extra: more sshd_config lines."""

    def __init__(self, d, user=None, extra=""):
        self.dir = d
        self.port = free_port()
        self.proc = None
        self.made_privsep = False
        sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        if not os.access(sshd, os.X_OK) or not shutil.which("ssh"):
            raise SystemExit("bench/tls: needs openssh-server and openssh-client "
                             "(scripts/deps.sh)")
        hk = os.path.join(d, "host_key")
        self.id = os.path.join(d, "id")
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hk)
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.id)
        ak = os.path.join(d, "authorized_keys")
        shutil.copy(self.id + ".pub", ak)
        os.chmod(ak, 0o644 if user else 0o600)  # sshd reads it as that user
        cfg = os.path.join(d, "sshd_config")
        with open(cfg, "w") as f:
            f.write("Port %d\nListenAddress 127.0.0.1\nHostKey %s\nAuthorizedKeysFile %s\n"
                    "PidFile %s\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                    "PubkeyAuthentication yes\nUsePAM no\nStrictModes no\n"
                    "PermitRootLogin prohibit-password\nPrintMotd no\nPrintLastLog no\n"
                    "UseDNS no\n%s" % (self.port, hk, ak, os.path.join(d, "sshd.pid"), extra))
        # sshd running as root wants its privilege-separation dir
        if os.geteuid() == 0 and not os.path.isdir("/run/sshd"):
            os.makedirs("/run/sshd", 0o755)
            self.made_privsep = True
        self.errf = open(os.path.join(d, "sshd.log"), "wb")
        self.proc = subprocess.Popen([sshd, "-D", "-e", "-f", cfg], stdin=subprocess.DEVNULL,
                                     stdout=self.errf, stderr=self.errf)
        try:
            wait_port(self.port, self.proc, "sshd")
        except SystemExit:
            self.stop()
            raise
        self.known = os.path.join(d, "known_hosts")
        self.base = ["ssh", "-F", "/dev/null", "-p", str(self.port), "-i", self.id,
                     "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                     "-o", "UserKnownHostsFile=" + self.known,
                     "-o", "StrictHostKeyChecking=yes", "-o", "LogLevel=ERROR"]
        self.target = (user + "@" if user else "") + "127.0.0.1"
        self.argv = self.base + ["-o", "ControlMaster=no", "-o", "ControlPath=none", self.target]
        self.master = None
        with open(hk + ".pub") as f, open(self.known, "w") as k:
            k.write("[127.0.0.1]:%d %s" % (self.port, f.read()))
        p = subprocess.run(self.argv + ["true"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if p.returncode != 0:
            self.stop()
            raise SystemExit("bench/tls: ssh to the throwaway sshd failed: %s"
                             % p.stderr.decode(errors="replace"))

    def start_master(self):
        """A ControlMaster connection kept open (our child, stopped by
        stop()); returns the argv of an ssh that rides on it: the warm-ssh
        baseline (no key exchange, no authentication, one new session)."""
        ctl = os.path.join(self.dir, "cm.sock")
        self.master = subprocess.Popen(
            self.base + ["-N", "-o", "ControlMaster=yes", "-o", "ControlPath=" + ctl,
                         "-o", "ControlPersist=no", self.target],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.errf)
        warm = self.base + ["-o", "ControlMaster=no", "-o", "ControlPath=" + ctl, self.target]
        end = time.monotonic() + 20
        while time.monotonic() < end:
            if self.master.poll() is not None:
                raise SystemExit("bench/tls: the ssh ControlMaster exited %d"
                                 % self.master.returncode)
            if os.path.exists(ctl) and subprocess.run(
                    self.base + ["-o", "ControlPath=" + ctl, "-O", "check", self.target],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
                return warm
            time.sleep(0.05)
        raise SystemExit("bench/tls: the ssh ControlMaster did not come up")

    def stop(self):
        stop(self.master)
        stop(self.proc)
        self.errf.close()
        if self.made_privsep:
            try:
                os.rmdir("/run/sshd")
            except OSError:
                pass


# --------------------------------------------------------------------------
# rund with unix + TLS + h2c listeners


class Rund:
    def __init__(self, rund, d, pki):
        os.makedirs(d, exist_ok=True)
        self.tls_port, self.h2c_port = free_port(), free_port()
        self.sock = os.path.join(d, "rund.sock")
        tokfile = os.path.join(d, "tokens")
        p = subprocess.run([rund, "tokens", "create", "bench", "--token-file", tokfile],
                           check=True, stdout=subprocess.PIPE)
        self.token = p.stdout.decode().strip()
        self.errf = open(os.path.join(d, "rund.log"), "wb")
        self.proc = subprocess.Popen(
            [rund, "--listen", "unix:" + self.sock,
             "--listen", "127.0.0.1:%d" % self.tls_port,
             "--listen", "h2c:127.0.0.1:%d" % self.h2c_port,
             "--tls-cert", pki["server.pem"], "--tls-key", pki["server.key"],
             "--client-ca", pki["ca.pem"], "--token-file", tokfile, "--allow-insecure-tokens",
             "--state-dir", os.path.join(d, "state"), "--log-level", "warn"],
            stdin=subprocess.DEVNULL, stdout=self.errf, stderr=self.errf)
        end = time.monotonic() + 20
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None or time.monotonic() > end:
                raise SystemExit("bench/tls: rund did not start (see %s)" % self.errf.name)
            time.sleep(0.05)
        # h2c accepts a plain connect without logging a TLS refusal
        wait_port(self.h2c_port, self.proc, "rund")

    def stop(self):
        stop(self.proc)
        self.errf.close()


def hyperfine(work, name, cmds, runs, warmup):
    """Median wall time of each command (the machine is shared: a mean
    follows whoever else runs)."""
    out = os.path.join(work, name + ".json")
    argv = ["hyperfine", "-N", "--style", "basic", "--export-json", out,
            "--warmup", str(warmup), "--runs", str(runs)] + cmds
    log("$ " + " ".join(argv))
    subprocess.run(argv, check=True, stdout=sys.stderr)
    with open(out) as f:
        return [r["median"] for r in json.load(f)["results"]]


# --------------------------------------------------------------------------
# handshake timing with python's ssl (OpenSSL 3): connect, handshake, send
# the HTTP/2 preface and read rund's first frame (by then, TLS 1.3 session
# tickets have arrived and the server has checked the client certificate)


def first_frame(sock):
    sock.sendall(H2_PREFACE)
    data = b""
    while len(data) < 9:
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError("connection closed before rund's first frame")
        data += chunk
    if data[3] != 0x04:
        raise RuntimeError("first frame is not SETTINGS: %r" % data[:9])


def time_h2c(port, n):
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        first_frame(s)
        ts.append(time.perf_counter() - t0)
        s.close()
    return ts


def tls_ctx(pki):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(pki["ca.pem"])
    ctx.load_cert_chain(pki["client.pem"], pki["client.key"])
    ctx.set_alpn_protocols(["h2"])
    return ctx


def time_tls(pki, port, n, resume):
    """n timed connections (after one untimed that fetches a session);
    returns (times, how many were resumed)."""
    ctx = tls_ctx(pki)
    ts, reused, session = [], 0, None
    for i in range(n + 1):
        t0 = time.perf_counter()
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s = ctx.wrap_socket(raw, server_hostname="localhost", session=session)
        first_frame(s)
        dt = time.perf_counter() - t0
        if i > 0:
            ts.append(dt)
            reused += s.session_reused
        if resume and s.session is not None:
            session = s.session
        s.close()
    return ts, reused


def s_client_resumption(pki, port, d):
    sess = os.path.join(d, "sess.pem")
    base = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-tls1_3",
            "-alpn", "h2", "-servername", "localhost", "-CAfile", pki["ca.pem"],
            "-cert", pki["client.pem"], "-key", pki["client.key"]]

    def run(extra):
        p = subprocess.Popen(base + extra, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
        p.stdin.write(H2_PREFACE)
        p.stdin.flush()
        time.sleep(0.5)  # let the NewSessionTicket messages arrive
        p.stdin.close()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        return p.stdout.read().decode("utf-8", "replace")

    first = run(["-sess_out", sess])
    if not os.path.exists(sess) or os.path.getsize(sess) == 0:
        return "no session ticket", first
    second = run(["-sess_in", sess])
    line = next((x for x in second.splitlines() if x.startswith(("Reused,", "New,"))), "?")
    return line, second


def measure(build, quick):
    rund = os.environ.get("RUND") or os.path.join(build, "src/rund/rund")
    runctl = os.environ.get("RUNCTL") or os.path.join(build, "src/runctl/runctl")
    for b in (rund, runctl):
        if not os.access(b, os.X_OK):
            raise SystemExit("bench/tls: %s is missing; run `make` first" % b)
    for t in ("hyperfine", "openssl"):
        if not shutil.which(t):
            raise SystemExit("bench/tls: %s is missing; run scripts/deps.sh" % t)
    work = tempfile.mkdtemp(prefix="rr-btls-", dir="/tmp")
    os.chmod(work, 0o700)
    rows, facts = [], {}
    sshd = r = r256 = None
    try:
        pki = make_pki(work)
        os.mkdir(os.path.join(work, "ssh"), 0o700)
        sshd = Sshd(os.path.join(work, "ssh"))
        warm = sshd.start_master()
        # runctl keeps TLS sessions in $XDG_RUNTIME_DIR/runrpc/tls-sessions:
        # ours, so that the runs after the first resume as a user's would
        xdg = os.path.join(work, "xdg")
        os.mkdir(xdg, 0o700)
        os.environ["XDG_RUNTIME_DIR"] = xdg
        r = Rund(rund, work, pki)
        conn = [runctl, "--addr", "127.0.0.1:%d" % r.tls_port, "--tls-cert", pki["client.pem"],
                "--tls-key", pki["client.key"], "--ca", pki["ca.pem"]]
        tls = conn + ["exec", "--", "true"]
        full = conn + ["--no-session-cache", "exec", "--", "true"]
        unix = [runctl, "--addr", "unix:" + r.sock, "exec", "--", "true"]
        h2c = [runctl, "--addr", "h2c:127.0.0.1:%d" % r.h2c_port, "--token", r.token,
               "--allow-insecure", "exec", "--", "true"]
        for argv in (tls, full, unix, h2c, warm + ["true"]):  # fail loudly before timing
            p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            if p.returncode != 0:
                raise SystemExit("bench/tls: %s failed: %s" % (" ".join(argv),
                                                               p.stderr.decode()[-1000:]))
        q = lambda argv: " ".join("'%s'" % a for a in argv)  # noqa: E731
        runs = 30 if quick else 100
        t_ssh, t_warm, t_tls, t_full, t_unix, t_h2c = hyperfine(
            work, "tls_vs_ssh", [q(sshd.argv + ["true"]), q(warm + ["true"]), q(tls), q(full),
                                 q(unix), q(h2c)], runs, 5)
        # the timed runs resumed: say so from runctl itself
        p = subprocess.run(conn + ["-v", "exec", "--", "true"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        how = "resumed" if b"session resumed" in p.stderr else "NOT resumed"
        ratio = t_tls / t_ssh
        rows.append(("5 exec true TLS vs ssh (cold)", "%.2f ms" % (t_ssh * 1e3),
                     "%.2f ms" % (t_tls * 1e3), "1/%.0f" % (1 / ratio), "<= 1/30",
                     ("ok" if ratio <= 1 / 30 else "MISSED") + ", session " + how))
        ratio_warm = t_tls / t_warm
        rows.append(("5 exec true TLS vs ssh ControlMaster", "%.2f ms" % (t_warm * 1e3),
                     "%.2f ms" % (t_tls * 1e3), "%.2fx" % ratio_warm, "<= 0.33x",
                     "ok" if ratio_warm <= 0.33 else "MISSED"))
        rows.append(("5 exec true TLS, no session cache", "%.2f ms resumed" % (t_tls * 1e3),
                     "%.2f ms full" % (t_full * 1e3), "+%.2f ms" % ((t_full - t_tls) * 1e3), "-",
                     "1/%.0f of cold ssh" % (t_ssh / t_full)))
        rows.append(("5 exec true unix/h2c/TLS", "%.2f ms unix" % (t_unix * 1e3),
                     "%.2f ms TLS" % (t_tls * 1e3), "%.2fx" % (t_tls / t_unix), "-",
                     "h2c+token %.2f ms" % (t_h2c * 1e3)))
        facts.update(ssh_ms=t_ssh * 1e3, ssh_warm_ms=t_warm * 1e3, tls_ms=t_tls * 1e3,
                     tls_full_ms=t_full * 1e3, unix_ms=t_unix * 1e3, h2c_ms=t_h2c * 1e3,
                     ratio=ratio, ratio_warm=ratio_warm, resumed=how)

        # for information: the same with P-256 keys (outside the contract,
        # which asks for P-384): how much of the TLS cost is P-384 signing
        d256 = os.path.join(work, "p256")
        os.mkdir(d256)
        pki256 = make_pki(d256, "P-256")
        r256 = Rund(rund, d256, pki256)
        tls256 = [runctl, "--addr", "127.0.0.1:%d" % r256.tls_port, "--tls-cert",
                  pki256["client.pem"], "--tls-key", pki256["client.key"], "--ca",
                  pki256["ca.pem"], "exec", "--", "true"]
        full256 = tls256[:-3] + ["--no-session-cache"] + tls256[-3:]
        t256, tfull256, tfull384 = hyperfine(work, "tls_p256", [q(tls256), q(full256), q(full)],
                                             runs, 5)
        rows.append(("5 exec true TLS P-256 (info)", "%.2f ms ssh" % (t_ssh * 1e3),
                     "%.2f ms" % (t256 * 1e3), "1/%.0f" % (t_ssh / t256), "-",
                     "P-384 keys: %.2f ms" % (t_tls * 1e3)))
        rows.append(("5 full handshake P-256 vs P-384", "%.2f ms P-384" % (tfull384 * 1e3),
                     "%.2f ms P-256" % (tfull256 * 1e3), "%.2fx" % (tfull256 / tfull384), "-",
                     "runctl --no-session-cache"))
        facts.update(tls_p256_ms=t256 * 1e3, tls_full_p256_ms=tfull256 * 1e3,
                     tls_full_p384_ms=tfull384 * 1e3)

        n = 100 if quick else 400
        h = statistics.median(time_h2c(r.h2c_port, n))
        full, _ = time_tls(pki, r.tls_port, n, resume=False)
        res, reused = time_tls(pki, r.tls_port, n, resume=True)
        full, res = statistics.median(full), statistics.median(res)
        rows.append(("5 TLS 1.3 handshake", "%.0f us h2c" % (h * 1e6),
                     "%.0f us full" % (full * 1e6), "+%.0f us" % ((full - h) * 1e6), "-",
                     "connect..SETTINGS, median of %d" % n))
        line, _ = s_client_resumption(pki, r.tls_port, work)
        rows.append(("5 TLS resumption", "%.0f us full" % (full * 1e6),
                     "%.0f us resumed" % (res * 1e6), "%.2fx" % (res / full), "-",
                     "%d/%d reused; s_client: %s" % (reused, n, line)))
        facts.update(h2c_us=h * 1e6, full_us=full * 1e6, resumed_us=res * 1e6,
                     reused=reused, n=n, s_client=line)
    finally:
        for x in (r, r256):
            if x is not None:
                x.stop()
        if sshd is not None:
            sshd.stop()
        shutil.rmtree(work, ignore_errors=True)
    return rows, facts


def cli(measure_fn):
    """The command line of a bench whose measure_fn(build, quick) returns
    (rows, facts): a table, or --rows-json for bench.py (fanout.py too)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.environ.get("BUILD_DIR", "build"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rows-json", action="store_true",
                    help="print the table rows as JSON (for bench.py)")
    a = ap.parse_args()
    build = os.path.join(ROOT, a.build) if not os.path.isabs(a.build) else a.build
    rows, facts = measure_fn(build, a.quick)
    if a.rows_json:
        print(json.dumps({"rows": rows, "facts": facts}))
        return
    head = ("bench", "baseline", "runrpc", "ratio", "goal", "")
    w = [max(len(str(x[i])) for x in rows + [head]) for i in range(len(head))]
    for row in [head] + rows:
        print("  ".join(str(c).ljust(w[i]) for i, c in enumerate(row)).rstrip())
    print(json.dumps(facts), file=sys.stderr)


if __name__ == "__main__":
    cli(measure)

"""runctl --hosts (issue 17): exec, start, status and stop on many rund
hosts at once through librunrpc's runrpc_fanout. Twenty rund instances on
loopback (unix sockets, h2c and TLS with per-host files and tokens), some
killed mid-run, hosts that accept and never answer (the per-host deadline),
and bad hosts files (FILE:LINE: reason).
"""

import os
import re
import select
import socket
import subprocess
import threading
import time

import pytest

from conftest import RUNCTL, check_no_sanitizer, remove_rund_cgroups, short_tmpdir
from security_helpers import new_token, pki, secrund_factory  # noqa: F401


def run_ctl(args, timeout=120, env=None):
    e = dict(os.environ, RUNRPC_NO_SESSION_CACHE="1", RUNRPC_STATE_DIR="/nonexistent")
    for k in ("RUNRPC_TLS_CERT", "RUNRPC_TLS_KEY", "RUNRPC_CA", "RUNRPC_TOKEN", "RUNRPC_ADDR"):
        e.pop(k, None)
    e.update(env or {})
    p = subprocess.run([RUNCTL] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, env=e)
    check_no_sanitizer(p.stderr, "runctl %r" % (args,))
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def rows(err):
    """{label: result} of the summary rows on stderr."""
    out = {}
    for line in err.splitlines():
        m = re.match(r"runctl: host (\S+) +(.*)$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


@pytest.fixture
def fleet(rund_factory, secrund_factory, pki, tmp_path):
    """Twenty rund hosts and a hosts file naming them h00..h19: 8 on unix
    sockets, 6 on h2c (each with a token of its own), 6 on TLS with per-host
    CA and client certificate (two also want a token)."""
    lines = ["# the fleet", ""]
    hosts = {}
    for i in range(20):
        name = "h%02d" % i
        if i < 8:
            r = rund_factory()
            line = "%s name=%s" % (r.addr, name)
        elif i < 14:
            # plaintext TCP needs a token: each host its own
            tok = new_token()
            r = secrund_factory(tls=False, h2c=True, tokens={"ops": tok},
                                allow_insecure_tokens=True)
            (tmp_path / (name + ".token")).write_text(tok + "\n")
            line = "%s   name=%s token-file=%s.token allow-insecure" % (r.h2c_addr, name, name)
        else:
            tok = new_token() if i >= 18 else None
            r = secrund_factory(tokens={"ops": tok} if tok else None)
            line = "%s\tname=%s ca=%s cert=%s key=%s" % (r.tls_addr, name, pki.ca.cert,
                                                         pki.alice.cert, pki.alice.key)
            if tok:
                (tmp_path / (name + ".token")).write_text(tok)
                line += " token-file=%s.token" % name
        hosts[name] = r
        lines.append(line + ("   # comment" if i % 5 == 0 else ""))
    for r in hosts.values():
        r.start(wait=False)
    for r in hosts.values():
        r.wait_ready(60)
    path = tmp_path / "hosts"
    path.write_text("\n".join(lines) + "\n")
    return str(path), hosts


def test_exec_on_twenty_hosts(fleet, tmp_path):
    path, hosts = fleet
    rc, out, err = run_ctl(["--hosts", path, "exec", "--env", "W=v", "--",
                            "sh", "-c", "echo out $W; echo err >&2; echo two; printf tail"])
    assert rc == 0, err
    for name in hosts:
        # each host's stdout lines on stdout, stderr on stderr, whole and prefixed;
        # the last line without a newline got one
        assert [ln for ln in out.splitlines() if ln.startswith(name + ": ")] == \
            ["%s: out v" % name, "%s: two" % name, "%s: tail" % name], out
        assert "%s: err\n" % name in err
        assert "%s: out" % name not in err
    assert len(out.splitlines()) == 60, out
    r = rows(err)
    assert r == {name: "exit 0" for name in hosts}, err
    assert "runctl: 20 of 20 hosts succeeded" in err
    # exit status: 0 only if every host's command exited 0
    rc, out, err = run_ctl(["--hosts", path, "--parallel", "3", "exec", "--", "sh", "-c",
                            "exit 3"])
    assert rc == 1 and set(rows(err).values()) == {"exit 3"}, err
    assert "runctl: 0 of 20 hosts succeeded" in err


def test_out_dir_keeps_hosts_apart(fleet, tmp_path):
    path, hosts = fleet
    d = tmp_path / "out"
    rc, out, err = run_ctl(["--hosts", path, "--out-dir", str(d), "exec", "--",
                            "sh", "-c", "head -c 100000 /dev/zero | tr '\\0' x; echo E >&2"])
    assert rc == 0, err
    assert out == ""
    for name in hosts:
        assert (d / (name + ".stdout")).read_bytes() == b"x" * 100000
        assert (d / (name + ".stderr")).read_bytes() == b"E\n"
        assert (d / (name + ".status")).read_text() == "exit 0\n"


def test_start_status_stop_by_ids(fleet, tmp_path):
    path, hosts = fleet
    rc, out, err = run_ctl(["--hosts", path, "start", "--tag", "fan", "--", "sleep", "300"])
    assert rc == 0, err
    ids = dict(ln.split(": ") for ln in out.splitlines())
    assert set(ids) == set(hosts) and all(len(i) == 26 for i in ids.values()), out
    (tmp_path / "ids").write_text(out)
    rc, out, err = run_ctl(["--hosts", path, "status", "@%s" % (tmp_path / "ids")])
    assert rc == 0, err
    for name, jid in ids.items():
        assert "%s: %s running reason=-\n" % (name, jid) in out, out
    # stop by an --out-dir of start's: a second start into DIR, stopped from DIR
    d = tmp_path / "started"
    rc, _, err = run_ctl(["--hosts", path, "--out-dir", str(d), "start", "--", "sleep", "300"])
    assert rc == 0, err
    rc, out, err = run_ctl(["--hosts", path, "stop", "--grace", "1s", "@%s" % d])
    assert rc == 0, err
    assert len(re.findall(r"^h\d\d: \S{26} killed signal=15 SIGTERM reason=stopped$", out,
                          re.M)) == 20, out
    rc, out, err = run_ctl(["--hosts", path, "stop", "--grace", "1s", "@%s" % (tmp_path / "ids")])
    assert rc == 0, err
    # a host with no id in the file fails on its own row; the others go on
    (tmp_path / "some").write_text("h00: %s\nnoise line\n" % ids["h00"])
    rc, out, err = run_ctl(["--hosts", path, "status", "--json", "@%s" % (tmp_path / "some")])
    assert rc == 1
    r = rows(err)
    assert r["h00"] == "ok" and '"state":"killed"' in out, err
    assert r["h01"].startswith("error INVALID_ARGUMENT: no job id for host h01"), err


def test_hosts_killed_while_running(fleet, tmp_path):
    path, hosts = fleet
    e = dict(os.environ, RUNRPC_NO_SESSION_CACHE="1")
    flag = tmp_path / "go"
    # each command says it started, then waits for the test's flag file
    script = "echo started; while [ ! -e %s ]; do sleep 0.05; done; echo done" % flag
    p = subprocess.Popen([RUNCTL, "--hosts", path, "exec", "--", "sh", "-c", script],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e)
    seen, buf = set(), b""
    end = time.monotonic() + 120
    while len(seen) < 20 and time.monotonic() < end and p.poll() is None:
        r, _, _ = select.select([p.stdout], [], [], 1)
        if r:
            buf += os.read(p.stdout.fileno(), 65536)
            seen = set(re.findall(rb"^(h\d\d): started$", buf, re.M))
    assert len(seen) == 20, buf
    killed = ["h03", "h10", "h16"]  # a unix, an h2c and a TLS host
    for name in killed:
        r = hosts[name]
        r.kill()
        remove_rund_cgroups(r.state)
        r.proc = None
    flag.write_text("")
    rest, err = p.communicate(timeout=120)
    check_no_sanitizer(err, "runctl")
    out, err = (buf + rest).decode(), err.decode()
    assert p.returncode == 1, err
    r = rows(err)
    for name in hosts:
        if name in killed:
            assert r[name].startswith("error UNAVAILABLE: "), err
            assert "%s: done" % name not in out
        else:
            assert r[name] == "exit 0", err
            assert "%s: done\n" % name in out
    assert "runctl: 17 of 20 hosts succeeded" in err


class MuteServer:
    """Accepts on a unix socket and a TCP port and never says a word."""

    def __init__(self):
        self.dir = short_tmpdir("rr-mute-")
        self.path = os.path.join(self.dir, "mute.sock")
        self.unix = socket.socket(socket.AF_UNIX)
        self.unix.bind(self.path)
        self.unix.listen(16)
        self.tcp = socket.socket()
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(16)
        self.port = self.tcp.getsockname()[1]
        self.conns = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            r, _, _ = select.select([self.unix, self.tcp], [], [], 0.2)
            for s in r:
                self.conns.append(s.accept()[0])

    def close(self):
        self.stop.set()
        self.thread.join()
        for c in self.conns + [self.unix, self.tcp]:
            c.close()
        os.unlink(self.path)
        os.rmdir(self.dir)


def test_host_that_never_answers_hits_its_deadline(rund_factory, pki, tmp_path):
    good = [rund_factory().start() for _ in range(2)]
    mute = MuteServer()
    try:
        hosts = tmp_path / "hosts"
        hosts.write_text("%s name=good1\n%s name=good2\nunix:%s name=mute-unix\n"
                         "h2c:127.0.0.1:%d name=mute-h2c\n"
                         "127.0.0.1:%d name=mute-tls ca=%s cert=%s key=%s\n"
                         % (good[0].addr, good[1].addr, mute.path, mute.port, mute.port,
                            pki.ca.cert, pki.alice.cert, pki.alice.key))
        d = tmp_path / "out"
        rc, out, err = run_ctl(["--hosts", str(hosts), "--host-timeout", "3s", "--out-dir",
                                str(d), "exec", "--", "echo", "hi"])
        assert rc == 1, err
        r = rows(err)
        assert r["good1"] == r["good2"] == "exit 0", err
        for name in ("mute-unix", "mute-h2c", "mute-tls"):
            assert r[name].startswith("timeout DEADLINE_EXCEEDED: ") and \
                "host timeout (3000 ms) passed" in r[name], err
            assert (d / (name + ".status")).read_text().startswith("timeout DEADLINE_EXCEEDED")
        assert (d / "good1.stdout").read_text() == "hi\n"
        assert "runctl: 2 of 5 hosts succeeded" in err
        # --connect-timeout alone bounds the TLS handshake of a mute host
        rc, out, err = run_ctl(["--hosts", "127.0.0.1:%d,%s" % (mute.port, good[0].addr),
                                "--ca", pki.ca.cert, "--connect-timeout", "1s", "exec", "--",
                                "true"])
        assert rc == 1, err
        r = rows(err)
        assert r[good[0].addr] == "exit 0" and r["127.0.0.1:%d" % mute.port].startswith("error"), err
    finally:
        mute.close()


@pytest.mark.parametrize("text,line,reason", [
    ("unix:/a name=x\nunix:/b bogus=1\n", 2, 'unknown option "bogus="'),
    ("unix:/a\n\nunix:/b nope\n", 3, 'unknown option "nope"'),
    ("# c\nnocolon\n", 2, "nocolon"),
    ("unix:/a name=x\nunix:/b name=x\n", 2, 'name "x" is also host 1\'s'),
    ("unix:/a\nunix:/a\n", 2, "is also host 1's: give one of them name="),
    ("127.0.0.1:1 cert=c.pem\n", 1, "cert= and key= go together"),
    ("unix:/a token-file=missing.token\n", 1, 'cannot read token-file'),
    ("unix:/a name=../x\n", 1, "only letters, digits"),
    ("unix:/a ca=\n", 1, "ca= needs a value"),
    ("unix:/a ca=x ca=y\n", 1, "ca= given twice"),
    ("unix:/a " + "x" * 9000 + "\n", 1, "line longer than"),
])
def test_bad_hosts_file_says_file_and_line(tmp_path, text, line, reason):
    path = tmp_path / "hosts"
    path.write_text(text)
    rc, out, err = run_ctl(["--hosts", str(path), "exec", "--", "true"])
    assert rc == 2, err
    assert err.startswith("runctl: %s:%d: " % (path, line)) and reason in err, err
    assert "runctl: host" not in err  # nothing was called


def test_fanout_usage_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.write_text("# nothing\n")
    cases = [
        (["--hosts", str(empty), "exec", "--", "true"], "no hosts in"),
        (["--hosts", str(tmp_path / "missing"), "exec", "true"], "cannot read"),
        (["--hosts", "unix:/a", "logs", "x"], "--hosts works with exec, start, status and stop"),
        (["--hosts", "unix:/a", "--parallel", "0", "exec", "true"], "invalid --parallel"),
        (["--hosts", "unix:/a", "--parallel", "2000", "exec", "true"], "invalid --parallel"),
        (["--hosts", "unix:/a", "--host-timeout", "soon", "exec", "true"], "invalid duration"),
        (["--parallel", "4", "exec", "true"], "--parallel goes with --hosts"),
        (["--out-dir", "x", "exec", "true"], "--out-dir goes with --hosts"),
        (["--hosts", "unix:/a", "exec", "-t", "--", "true"], "-t and -i do not go with --hosts"),
        (["--hosts", "unix:/a", "stop"], "missing job id"),
        (["--hosts", "unix:/a", "status", "nonsense"], "invalid job id"),
        (["--hosts", "unix:/a", "status", "--grace", "1", "x"], "unknown option '--grace'"),
    ]
    for args, want in cases:
        rc, out, err = run_ctl(args)
        assert rc == 2 and want in err, (args, rc, err)


def test_long_lines_cut_and_hosts_from_stdin(rund_factory, tmp_path):
    a, b = rund_factory().start(), rund_factory().start()
    hosts = "%s name=a\n# b by its address\n%s\n" % (a.addr, b.addr)
    e = dict(os.environ, RUNRPC_NO_SESSION_CACHE="1")
    # a 70,000-byte line without a newline: 65,536 bytes, then the rest, each a line
    p = subprocess.run([RUNCTL, "--hosts", "-", "exec", "--", "sh", "-c",
                        "head -c 70000 /dev/zero | tr '\\0' x"], input=hosts.encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120, env=e)
    check_no_sanitizer(p.stderr, "runctl")
    assert p.returncode == 0, p.stderr
    out = p.stdout.decode()
    for label in ("a", b.addr):
        lines = [ln for ln in out.split("\n") if ln.startswith(label + ": ")]
        assert [len(ln) - len(label) - 2 for ln in lines] == [65536, 70000 - 65536], \
            [len(ln) for ln in lines]
    assert out.count("\n") == 4

"""The seed program's spellings work unchanged (issue 17): `rund serve -addr
ADDR -ca F -cert F -key F` (Go-style flags onto --listen/--client-ca/
--tls-cert/--tls-key; ":PORT" is every address), `rund execute` explains
what to use instead, and runctl takes the seed client's -addr -ca -cert -key
(before or right after the verb) and its `log` verb. Bad spellings get one
clear line naming the flag, exit 2."""

import os
import socket
import subprocess

import pytest

from conftest import RUND, RUNCTL, Rund, check_no_sanitizer
from security_helpers import free_port, pki  # noqa: F401


class SeedRund(Rund):
    """`rund serve SEED_ARGS` plus a unix listener for the test's readiness probe."""

    def __init__(self, seed_args):
        super().__init__()
        self.seed_args = list(seed_args)

    def start(self, wait=True):
        self.runs += 1
        self.stderr_path = os.path.join(self.base, "rund.%d.stderr" % self.runs)
        args = [RUND, "serve"] + self.seed_args + ["--listen", self.addr, "--state-dir",
                                                   self.state]
        with open(self.stderr_path, "wb") as errf:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=errf,
                                         stderr=errf, start_new_session=True)
        if wait:
            self.wait_ready()
        return self


@pytest.fixture
def seedrund():
    made = []

    def make(args):
        r = SeedRund(args)
        made.append(r)
        return r.start()

    yield make
    for r in made:
        try:
            r.stop()
        finally:
            r.kill()


def runctl(*args, env=None, input=b""):
    e = dict(os.environ)
    e.pop("RUNRPC_ADDR", None)
    e.update(env or {})
    p = subprocess.run([RUNCTL] + list(args), input=input, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60, env=e)
    check_no_sanitizer(p.stderr, "runctl %r" % (args,))
    return p


def test_serve_with_the_seed_flags(seedrund, pki):
    port = free_port()
    addr = "127.0.0.1:%d" % port
    srv = seedrund(["-addr", addr, "-ca", pki.ca.cert, "-cert", pki.server.cert,
                    "-key", pki.server.key])
    text = srv.stderr_text()
    assert 'msg="listening" addr="%s" tls=true' % addr in text, text
    # the seed client's flags after the verb, and its `log` verb
    tls = ["-ca", pki.ca.cert, "-cert", pki.alice.cert, "-key", pki.alice.key]
    p = runctl("start", "-addr", addr, *tls, "sh", "-c", "echo seed-out; echo seed-err >&2")
    assert p.returncode == 0, p
    job = p.stdout.decode().strip()
    assert runctl("wait", "-addr=" + addr, *tls, job).returncode == 0
    p = runctl("log", "-addr", addr, *tls, job)
    assert p.returncode == 0, p
    assert p.stdout == b"seed-out\n" and p.stderr == b"seed-err\n", p
    # and before the verb, as runctl's global options
    p = runctl("-addr", addr, *tls, "status", job)
    assert p.returncode == 0 and job.encode() in p.stdout, p
    # the client certificate is the seed's -cert: another one is another owner
    p = runctl("-addr", addr, "-ca", pki.ca.cert, "-cert", pki.bob.cert, "-key", pki.bob.key,
               "log", job)
    assert p.returncode == 1 and b"not found" in p.stderr, p


def _have_ipv6():
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_STREAM).close()
        return True
    except OSError:
        return False


def test_serve_port_only_means_every_address(seedrund):
    port = free_port()
    srv = seedrund(["--addr=:%d" % port])
    text = srv.stderr_text()
    assert 'msg="listening" addr="0.0.0.0:%d"' % port in text, text
    assert ('msg="listening" addr="[::]:%d"' % port in text) == _have_ipv6(), text
    # the embedded CA (no -ca/-cert/-key): runctl finds it in the state dir
    p = runctl("-addr", "127.0.0.1:%d" % port, "list", env={"RUNRPC_STATE_DIR": srv.state})
    assert p.returncode == 0, p


@pytest.mark.parametrize("args,msg", [
    (["serve", "-addr"], "rund: serve: -addr needs a value"),
    (["serve", "-bogus", "1"], 'rund: unknown flag "-bogus"'),
    (["serve", "-ca", "/nonexistent/ca.pem"], "rund: --tls-cert, --tls-key and --client-ca go together"),
    (["-addr", ":8000"], 'rund: unknown flag "-addr" (the seed\'s -addr, -ca, -cert and -key '
                         'go after "rund serve"'),
    (["-ca=x"], 'rund: unknown flag "-ca=x"'),
    (["-x"], 'rund: unknown flag "-x"'),
    (["execute", "-fifo", "/tmp/no-fifo", "ls"], 'rund: "rund execute" was the seed\'s internal '
                                                 'step'),
])
def test_bad_rund_spellings(args, msg):
    p = subprocess.run([RUND] + args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    err = p.stderr.decode()
    assert p.returncode == 2, (p.returncode, err)
    assert err.startswith(msg), err
    assert err.count("\n") == 1 and RUND not in err, err
    if args[0] == "execute":
        assert "runctl start" in err, err


@pytest.mark.parametrize("args,msg", [
    (["-addr"], "option '-addr' needs a value"),
    (["status", "-addr"], "option '-addr' needs a value"),
    (["log", "-cert"], "option '-cert' needs a value"),
    (["-bogus", "list"], "unknown option '-bogus'"),
    (["status", "-addr", "", "x"], "empty -addr"),
    (["lgo", "x"], 'unknown command "lgo"'),
])
def test_bad_runctl_spellings(args, msg):
    p = runctl(*args)
    assert p.returncode == 2, p
    assert msg in p.stderr.decode(), p


def test_serve_help():
    for flag in ("-help", "-h", "--help"):
        p = subprocess.run([RUND, "serve", flag], stdout=subprocess.PIPE, timeout=30)
        assert p.returncode == 0 and b"rund serve [-addr ADDR]" in p.stdout, p


def test_runctl_help_keeps_its_own_spellings_primary():
    out = runctl("--help").stdout.decode()
    assert "--addr ADDR" in out and "--tls-cert FILE" in out
    # the aliases are mentioned once, `log` is not a command of its own
    assert out.count("-addr, -ca, -cert and -key") == 1, out
    assert "\n  log " not in out, out
    p = runctl("log", "--help")
    assert p.returncode == 0 and p.stdout.startswith(b"Usage: runctl [--addr ADDR] logs ID"), p


def test_runctl_log_alias_over_unix(rund, ctl):
    p = ctl("start", "--", "sh", "-c", "echo alias")
    assert p.rc == 0, p
    job = p.text.strip()
    assert ctl("wait", job).rc == 0
    p = ctl("log", job)
    assert p.rc == 0 and p.out == b"alias\n", p
    p = ctl("log", job, "--stdout", "--tail", "1")
    assert p.rc == 0 and p.out == b"alias\n", p

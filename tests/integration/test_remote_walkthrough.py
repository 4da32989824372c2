"""README's remote walkthrough, run as two machines: rund in a network
namespace of its own (a veth pair with private 10.x addresses), runctl
outside reaching it by that address with only the files the walkthrough
hands the client. The commands come from README.md itself (between the
walkthrough markers), so a README whose commands drift from what works
fails here.

How a README line is run: "# ... on the server ..." and "# ... on the
client ..." comments switch sides; server lines run in the namespace
(`rund` gets `--state-dir` of the test, /var/lib/runrpc is the test's
state dir), client lines outside with no runrpc environment but what the
lines export; "copy DIR/ to the client" copies that directory; a bare
`rund --listen ...` is started in the background; a token printed by a
server line becomes $T; $SERVER is the namespace's address.
"""

import os
import random
import re
import shutil
import subprocess
import time

import pytest

from conftest import RUND, RUNCTL, check_no_sanitizer, short_tmpdir, wait_pid_gone
from security_helpers import OPENSSL

README = os.path.join(os.environ.get("RUNRPC_SOURCE_ROOT") or os.path.join(
    os.path.dirname(__file__), "..", ".."), "README.md")
TOKEN_RE = re.compile(r"^rr_[A-Za-z0-9_-]{43}$")
STATE_IN_README = "/var/lib/runrpc"


def walkthrough_lines():
    text = open(README).read()
    m = re.search(r"<!-- walkthrough: begin -->\n```sh\n(.*?)```\n<!-- walkthrough: end -->",
                  text, re.S)
    assert m, "README.md has no walkthrough block between the markers"
    return [ln for ln in m.group(1).splitlines() if ln.strip()]


def ip(*args, check=True):
    p = subprocess.run(["ip"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if check and p.returncode != 0:
        raise AssertionError("ip %s: %s" % (" ".join(args), p.stderr.decode()))
    return p


class Netns:
    """A namespace with lo up and one veth to the test's namespace."""

    def __init__(self):
        tag = "%05d%03d" % (os.getpid() % 100000, random.randrange(1000))
        self.name = "rrwt" + tag
        self.host_if, self.ns_if = "rrwh" + tag, "rrwn" + tag
        a, b = random.randrange(100, 200), random.randrange(256)
        self.host_ip, self.addr = "10.%d.%d.1" % (a, b), "10.%d.%d.2" % (a, b)
        self.made = False

    def create(self):
        p = ip("netns", "add", self.name, check=False)
        if p.returncode != 0:
            pytest.skip("cannot make a network namespace: " + p.stderr.decode().strip())
        self.made = True
        ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        ip("link", "set", self.ns_if, "netns", self.name)
        ip("addr", "add", self.host_ip + "/30", "dev", self.host_if)
        ip("link", "set", self.host_if, "up")
        ip("-n", self.name, "addr", "add", self.addr + "/30", "dev", self.ns_if)
        ip("-n", self.name, "link", "set", self.ns_if, "up")
        ip("-n", self.name, "link", "set", "lo", "up")
        return self

    def argv(self, argv):
        return ["ip", "netns", "exec", self.name] + list(argv)

    def remove(self):
        ip("link", "del", self.host_if, check=False)
        if self.made:
            ip("netns", "del", self.name, check=False)


@pytest.fixture
def netns():
    ns = Netns()
    try:
        yield ns.create()
    finally:
        ns.remove()


class Machines:
    """The two sides: their working dirs, environments and rund."""

    def __init__(self, ns, base):
        self.ns, self.base = ns, base
        self.state = os.path.join(base, "state")
        self.cwd = {"server": os.path.join(base, "server"),
                    "client": os.path.join(base, "client")}
        for d in self.cwd.values():
            os.makedirs(d)
        bindir = os.path.dirname(RUND)
        path = bindir + ":" + os.path.dirname(RUNCTL) + ":" + os.environ.get("PATH", "/usr/bin:/bin")
        keep = {k: v for k, v in os.environ.items()
                if k in ("LD_LIBRARY_PATH", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")}
        # the client machine has no state dir of rund's, no session cache of ours
        xdg = os.path.join(base, "xdg")
        os.makedirs(xdg, mode=0o700)
        self.env = {
            "server": dict(keep, PATH=path, HOME=self.cwd["server"]),
            "client": dict(keep, PATH=path, HOME=self.cwd["client"], XDG_RUNTIME_DIR=xdg,
                           RUNRPC_STATE_DIR=os.path.join(base, "client-has-no-state"),
                           SERVER=ns.addr),
        }
        self.rund = None
        self.rund_log = os.path.join(base, "rund.stderr")
        self.outputs = []

    def start_rund(self, args):
        argv = self.ns.argv([RUND] + args + ["--state-dir", self.state])
        with open(self.rund_log, "wb") as f:
            self.rund = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=f,
                                         env=self.env["server"], cwd=self.cwd["server"],
                                         start_new_session=True)
        end = time.monotonic() + 30
        while time.monotonic() < end:
            log = open(self.rund_log).read()
            if 'msg="listening"' in log:
                return
            assert self.rund.poll() is None, "rund exited:\n" + log
            time.sleep(0.05)
        raise AssertionError("rund did not listen:\n" + open(self.rund_log).read())

    def stop_rund(self):
        if self.rund and self.rund.poll() is None:
            self.rund.terminate()
            try:
                self.rund.wait(20)
            except subprocess.TimeoutExpired:
                self.rund.kill()
                self.rund.wait()
                raise AssertionError("rund did not stop on SIGTERM")
            check_no_sanitizer(open(self.rund_log).read(), "rund")
            assert self.rund.returncode == 0, open(self.rund_log).read()

    def run(self, side, line, check=True):
        env = self.env[side]
        if side == "server":
            line = line.replace(STATE_IN_README, self.state)
            # every rund command acts on the test's state dir
            script = 'rund() { command rund "$@" --state-dir %s; }; %s' % (self.state, line)
            argv = self.ns.argv(["sh", "-c", script])
        else:
            argv = ["sh", "-c", line]
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                           cwd=self.cwd[side], stdin=subprocess.DEVNULL, timeout=60)
        check_no_sanitizer(p.stderr, line)
        self.outputs.append((side, line, p))
        if check:
            assert p.returncode == 0, "%s: %r exited %d:\n%s%s" % (
                side, line, p.returncode, p.stdout.decode(), p.stderr.decode())
        return p

    def step(self, side, line):
        if line.startswith("cd "):
            self.cwd[side] = os.path.join(self.cwd[side], line[3:].strip())
            return
        if line.startswith("export "):
            for kv in line[len("export "):].split():
                k, v = kv.split("=", 1)
                self.env[side][k] = os.path.expandvars(v.replace("$SERVER", self.ns.addr))
            return
        words = line.split()
        if words[0] == "rund" and words[1].startswith("--"):
            self.start_rund(words[1:])
            return
        p = self.run(side, line)
        out = p.stdout.decode().strip()
        if side == "server" and TOKEN_RE.match(out):
            self.env["client"]["T"] = out


def run_walkthrough(m):
    side = None
    for line in walkthrough_lines():
        s = line.strip()
        if s.startswith("#"):
            c = re.search(r"copy (\S+)/ to the client", s)
            if c:
                # into the client's home, as scp -r DIR client: does
                shutil.copytree(os.path.join(m.cwd["server"], c.group(1)),
                                os.path.join(m.env["client"]["HOME"], c.group(1)))
            if "on the server" in s:
                side = "server"
            elif "on the client" in s:
                side = "client"
            continue
        assert side, "README walkthrough line before any 'on the server/client': %r" % s
        m.step(side, s.split("  #")[0].strip())


def client_ctl(m, *args, env=None):
    e = dict(m.env["client"])
    e.update(env or {})
    p = subprocess.run([RUNCTL] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=e, cwd=m.cwd["client"], stdin=subprocess.DEVNULL, timeout=60)
    check_no_sanitizer(p.stderr, "runctl %r" % (args,))
    return p


def output_of(m, needle):
    for side, line, p in m.outputs:
        if needle in line:
            return p
    raise AssertionError("no walkthrough line with %r" % needle)


@pytest.mark.timeout(180)
def test_readme_walkthrough_two_machines(netns):
    base = short_tmpdir("rr-wt-")
    m = Machines(netns, base)
    try:
        run_walkthrough(m)
        # the client holds the files it was given, and nothing else: the
        # token's user only the CA
        assert sorted(os.listdir(m.cwd["client"])) == ["ca.pem", "laptop.key", "laptop.pem"]
        assert os.listdir(os.path.join(m.cwd["client"], "..", "alice")) == ["ca.pem"]
        assert output_of(m, "-- hostname").stdout.strip()
        assert output_of(m, "id -un").stdout.decode().strip() == "root"
        # the command ran on the "server": in the namespace's network
        ns_net = subprocess.run(netns.argv(["readlink", "/proc/self/ns/net"]),
                                stdout=subprocess.PIPE, check=True).stdout.decode().strip()
        p = client_ctl(m, "exec", "--", "readlink", "/proc/self/ns/net")
        assert p.returncode == 0 and p.stdout.decode().strip() == ns_net, p
        assert os.readlink("/proc/self/ns/net") != ns_net
        # the revoke at the end took effect at once: the token is refused
        p = client_ctl(m, "--token", m.env["client"]["T"], "list")
        assert p.returncode == 1 and b"UNAUTHENTICATED" in p.stderr, p
        # without the token, the certificate's identity still works
        p = client_ctl(m, "list")
        assert p.returncode == 0, p
        # a name the server certificate does not have is refused by the client
        p = client_ctl(m, "--server-name", "not-this.example", "list")
        assert p.returncode == 1 and b"hostname mismatch" in p.stderr, p
        # without the CA the client cannot check the server
        p = client_ctl(m, "list", env={"RUNRPC_CA": ""})
        assert p.returncode != 0 and b"CA" in p.stderr, p
        # the server certificate: serverAuth, naming the address; the client's clientAuth
        tls = os.path.join(m.state, "tls")
        for cert, purpose in ((os.path.join(tls, "server.pem"), "sslserver"),
                              (os.path.join(m.cwd["client"], "laptop.pem"), "sslclient")):
            v = subprocess.run([OPENSSL, "verify", "-CAfile",
                                os.path.join(m.cwd["client"], "ca.pem"), "-purpose", purpose,
                                cert], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            assert v.returncode == 0, v.stdout
        txt = subprocess.run([OPENSSL, "x509", "-in", os.path.join(tls, "server.pem"), "-noout",
                              "-ext", "subjectAltName,extendedKeyUsage"],
                             stdout=subprocess.PIPE, check=True).stdout.decode()
        assert "IP Address:" + netns.addr in txt and "TLS Web Server Authentication" in txt, txt
        log = open(m.rund_log).read()
        assert "token file reloaded" in log and "secret store opened" in log, log
        assert m.env["client"]["T"] not in log
    finally:
        try:
            m.stop_rund()
        finally:
            if m.rund:
                wait_pid_gone(m.rund.pid)
            shutil.rmtree(base, ignore_errors=True)


def san_text(path):
    return subprocess.run([OPENSSL, "x509", "-in", path, "-noout", "-ext",
                           "subjectAltName,extendedKeyUsage"],
                          stdout=subprocess.PIPE, check=True).stdout.decode()


def rund_cmd(*args):
    p = subprocess.run([RUND] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL, timeout=60)
    check_no_sanitizer(p.stderr, "rund %r" % (args,))
    return p


def test_certs_server_adds_names_and_keeps_them(tmp_path):
    state = str(tmp_path / "state")
    p = rund_cmd("certs", "server", "--san", "dns:alias.example.test", "--san", "ip:192.0.2.7",
                 "--state-dir", state)
    assert p.returncode == 0, p.stderr
    srv = p.stdout.decode().strip()
    assert srv == os.path.join(state, "tls", "server.pem"), p.stdout
    txt = san_text(srv)
    wants = ["DNS:alias.example.test", "IP Address:192.0.2.7", "DNS:localhost",
             "IP Address:127.0.0.1", "TLS Web Server Authentication"]
    if re.match(r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9-]+)*$", os.uname().nodename):
        wants.append("DNS:" + os.uname().nodename)  # a host name that is a DNS name
    for want in wants:
        assert want in txt, (want, txt)
    # init (what rund's start does) keeps the added names and the file
    before = open(srv).read()
    p = rund_cmd("certs", "init", "--state-dir", state)
    assert p.returncode == 0 and open(srv).read() == before, p.stderr
    # bad input: exit 2, nothing changed
    for args in (["certs", "server", "--san", "dns:bad_name"],
                 ["certs", "init", "--san", "dns:ok.example"],
                 ["certs", "server", "extra"],
                 ["certs", "server", "--days", "3"]):
        p = rund_cmd(*(args + ["--state-dir", state]))
        assert p.returncode == 2 and p.stderr.startswith(b"rund: "), (args, p.stderr)
    assert open(srv).read() == before


def test_certs_issue_hands_out_the_ca(tmp_path):
    state, other = str(tmp_path / "state"), str(tmp_path / "other")
    assert rund_cmd("certs", "init", "--state-dir", state).returncode == 0
    assert rund_cmd("certs", "init", "--state-dir", other).returncode == 0
    out = str(tmp_path / "new" / "dir")
    p = rund_cmd("certs", "issue", "ci", "--san", "dns:ci.example.test", "--out", out,
                 "--state-dir", state)
    assert p.returncode == 1 and b"cannot create --out directory" in p.stderr, p.stderr
    out = str(tmp_path / "ci")
    p = rund_cmd("certs", "issue", "ci", "--san", "dns:ci.example.test", "--out", out,
                 "--state-dir", state)
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().split() == [os.path.join(out, f)
                                         for f in ("ci.pem", "ci.key", "ca.pem")]
    assert (os.stat(out).st_mode & 0o777) == 0o700
    assert open(os.path.join(out, "ca.pem")).read() == open(
        os.path.join(state, "tls", "ca.pem")).read()
    assert "TLS Web Client Authentication" in san_text(os.path.join(out, "ci.pem"))
    # a second client next to it: the same ca.pem is kept
    p = rund_cmd("certs", "issue", "ci2", "--san", "dns:ci2.example.test", "--out", out,
                 "--state-dir", state)
    assert p.returncode == 0, p.stderr
    # another CA's ca.pem there: refused before anything is written
    p = rund_cmd("certs", "issue", "ci3", "--san", "dns:ci3.example.test", "--out", out,
                 "--state-dir", other)
    assert p.returncode == 1 and b"another CA" in p.stderr, p.stderr
    assert not os.path.exists(os.path.join(out, "ci3.pem"))
    assert not os.path.exists(os.path.join(out, "ci3.key"))
    p = rund_cmd("certs", "issue", "ca", "--san", "dns:x.example.test", "--out", out,
                 "--state-dir", state)
    assert p.returncode == 1 and b'"ca"' in p.stderr, p.stderr

"""rund's config file (issue 17): /etc/runrpc/rund.conf or --config FILE,
KEY = VALUE lines whose keys are rund's long flags (read with inih). Keys
apply, command-line flags win, a bad file is refused with FILE:LINE and the
reason (exit 2 at start; at SIGHUP the old config stays and rund serves on),
and SIGHUP applies the keys that can change live."""

import os
import re
import signal
import subprocess
import time

import grpc
import pytest

from conftest import RUND, Rund, pb, wait
from security_helpers import (call_error, pki, run_rund_cmd, secrund_factory,  # noqa: F401
                              start_sleep, write_private)
from test_quotas import as_nobody


class ConfRund(Rund):
    """rund started with --config BASE/rund.conf and nothing else but extra."""

    def __init__(self, lines=(), extra_args=(), listen_in_file=True):
        super().__init__(extra_args=extra_args)
        self.conf = os.path.join(self.base, "rund.conf")
        self.listen_in_file = listen_in_file
        self.write(lines)

    def write(self, lines):
        head = ["# written by test_config.py"]
        if self.listen_in_file:
            head += ["listen = " + self.addr, "state-dir = " + self.state]
        with open(self.conf, "w") as f:
            f.write("\n".join(head + list(lines)) + "\n")

    def start(self, wait=True):
        self.runs += 1
        self.stderr_path = os.path.join(self.base, "rund.%d.stderr" % self.runs)
        args = [RUND, "--config", self.conf] + self.extra_args
        with open(self.stderr_path, "wb") as errf:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=errf,
                                         stderr=errf, start_new_session=True)
        if wait:
            self.wait_ready()
        return self

    def reload(self, lines, expect):
        """Rewrite the file, SIGHUP, wait for the next line matching expect."""
        before = len(re.findall(expect, self.stderr_text()))
        self.write(lines)
        self.proc.send_signal(signal.SIGHUP)
        end = time.monotonic() + 30
        while len(re.findall(expect, self.stderr_text())) <= before:
            assert time.monotonic() < end and self.proc.poll() is None, self.stderr_text()
            time.sleep(0.05)
        return self.stderr_text()


@pytest.fixture
def confrund():
    made = []

    def make(*a, **kw):
        r = ConfRund(*a, **kw)
        made.append(r)
        return r

    yield make
    for r in made:
        try:
            r.stop()
        finally:
            r.kill()


def log_has(text, msg, **kv):
    pat = r'msg="%s"' % re.escape(msg) + "".join(r'[^\n]* %s=%s(?=\s)' % (k, re.escape(str(v)))
                                                  for k, v in kv.items())
    return re.search(pat, text) is not None


def test_keys_applied(confrund):
    srv = confrund(["quota-running = 1",
                    "quota-jobs = 7",
                    "admin = uid:65534",
                    "admin = uid:4321",
                    "max-log-bytes = 64K",
                    "default-profile = host",
                    "fsync = true",
                    "log-level = info"]).start()
    text = srv.stderr_text()
    assert log_has(text, "config", file='"%s"' % srv.conf, keys=10), text
    assert log_has(text, "quotas", running=1, jobs=7), text
    assert log_has(text, "state loaded", max_log_bytes=65536), text
    # two admins from the file plus the embedded CA's
    assert log_has(text, "auth", admins=3), text
    assert os.path.isdir(srv.state)
    # behaviour: uid 65534 is an admin (sees root's job, exempt from quotas)
    job = start_sleep(srv.stub()).job_id
    out = as_nobody(srv, [["start", "sleep", "60"], ["start", "sleep", "60"], ["list"]])
    assert out[0] != out[1] and not out[0].startswith("RESOURCE"), out
    assert job in out[2], out


def test_switch_values_and_comments(confrund):
    srv = confrund(["; a comment", "# another", "", "no-cgroups = yes",
                    "fsync=false", "tls12 = off"]).start()
    text = srv.stderr_text()
    assert 'reason="--no-cgroups"' in text, text
    r = call_error(lambda: srv.stub().Start(pb.StartRequest(
        command=pb.Command(path="true"), limits=pb.Limits(memory_max=64 << 20)), timeout=30))
    assert r.code() == grpc.StatusCode.FAILED_PRECONDITION, r


def test_command_line_wins(confrund):
    other = os.path.join("/tmp", "rr-conf-nosuch-%d.sock" % os.getpid())
    srv = confrund(["listen = unix:" + other, "quota-running = 1", "admin = uid:65534",
                    "admin = uid:4321"],
                   extra_args=["--quota-running", "3", "--admin", "uid:999"],
                   listen_in_file=False)
    srv.extra_args += ["--listen", srv.addr, "--state-dir", srv.state]
    srv.start()
    text = srv.stderr_text()
    assert log_has(text, "quotas", running=3), text
    # --admin replaced the file's two: one plus the embedded CA's
    assert log_has(text, "auth", admins=2), text
    # --listen replaced the file's listen
    assert not os.path.exists(other)
    assert text.count('msg="listening"') == 1, text


def test_config_none_and_default_path(confrund, tmp_path):
    srv = confrund(["quota-running = 1"], extra_args=["--config", "none"], listen_in_file=False)
    srv.extra_args += ["--listen", srv.addr, "--state-dir", srv.state]
    srv.start()
    text = srv.stderr_text()
    assert 'msg="config"' not in text, text
    assert log_has(text, "quotas", running=1000), text
    # --help documents the file
    p = subprocess.run([RUND, "--help"], stdout=subprocess.PIPE, timeout=30)
    assert b"--config FILE" in p.stdout and b"/etc/runrpc/rund.conf" in p.stdout


BAD_FILES = [
    (["listen = unix:/tmp/x.sock", "no-such-key = 1"], 2,
     'unknown key "no-such-key" (keys are rund\'s long flags'),
    (["quota-running = lots"], 1, 'quota-running "lots" is not a count'),
    (["log-level = loud"], 1, 'log-level "loud" is not debug, info, warn or error'),
    (["fsync = maybe"], 1, 'fsync "maybe": want true or false'),
    (["admin = root"], 1, "admin"),
    (["bind-allow = relative/dir"], 1, 'bind-allow "relative/dir": must be an absolute path'),
    (["# fine", "just some words"], 2, "not KEY = VALUE"),
    (["[rund]", "fsync = true"], 1, "sections are not used"),
    (["config = /etc/other.conf"], 1, 'unknown key "config" (a config file cannot name another)'),
    (["max-log-bytes = " + "9" * 5000], 1, "line longer than"),
]


@pytest.mark.parametrize("lines,line,reason", BAD_FILES)
def test_bad_file_at_start(tmp_path, lines, line, reason):
    conf = tmp_path / "rund.conf"
    conf.write_text("\n".join(lines) + "\n")
    p = subprocess.run([RUND, "--config", str(conf), "--state-dir", str(tmp_path / "state"),
                        "--listen", "unix:%s/s.sock" % tmp_path],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    err = p.stderr.decode()
    assert p.returncode == 2, err
    assert err.startswith("rund: %s:%d: " % (conf, line)), err
    assert reason in err, err
    assert err.count("\n") == 1, err


def test_missing_or_unreadable_file(tmp_path):
    for path, why in ((tmp_path / "nope.conf", "No such file"), (tmp_path, "Is a directory")):
        p = subprocess.run([RUND, "--config", str(path)], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        err = p.stderr.decode()
        assert p.returncode == 2 and 'cannot read config file "%s"' % path in err, err
    p = subprocess.run([RUND, "--config"], stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 2 and b"--config needs a value" in p.stderr, p.stderr


def test_reload_applies_live_keys(confrund):
    srv = confrund(["quota-running = 1"]).start()
    job = start_sleep(srv.stub()).job_id
    out = as_nobody(srv, [["start", "sleep", "60"], ["start", "sleep", "60"], ["list"]])
    assert out[1].startswith("RESOURCE_EXHAUSTED"), out
    assert job not in out[2], out
    text = srv.reload(["quota-running = 3", "admin = uid:65534", "log-level = debug",
                       "fsync = true", "retention = 1h"], r'msg="config reloaded"')
    assert log_has(text, "config key applied", key="quota", running=3), text
    assert log_has(text, "config key applied", key="admin"), text
    assert log_has(text, "config key applied", key="log-level"), text
    for key in ("fsync", "retention"):
        assert log_has(text, "config key changed: needs a restart", key=key), text
    out = as_nobody(srv, [["start", "sleep", "60"], ["list"]])
    assert not out[0].startswith("RESOURCE"), out
    assert job in out[1], out  # an admin now
    # log-level warn: no info line from now on (the restart warning marks each reload)
    warn = ["quota-running = 3", "log-level = warn", "retention = 2h"]
    srv.reload(warn, r"key=retention")
    n_info = srv.stderr_text().count("level=info")
    srv.stub().List(pb.ListRequest(), timeout=10)
    start_sleep(srv.stub(), 1)
    srv.reload(warn, r"key=retention")
    assert srv.stderr_text().count("level=info") == n_info, srv.stderr_text()


def test_reload_profile_live(confrund):
    srv = confrund(["min-profile = host"]).start()
    stub = srv.stub()
    r = stub.Start(pb.StartRequest(command=pb.Command(path="true")), timeout=30)
    assert wait(stub, r.job_id).profile == "host"
    text = srv.reload(["min-profile = default"], r'key=sandbox')
    assert log_has(text, "config key applied", key="sandbox", default_profile="host",
                   min_profile="default"), text
    r = stub.Start(pb.StartRequest(command=pb.Command(path="true")), timeout=30)
    st = wait(stub, r.job_id)
    assert st.profile == "default", st


@pytest.mark.parametrize("bad,line,reason", [
    ("unknown-key = 1", 4, 'unknown key "unknown-key"'),
    ("quota-running = -4", 4, 'quota-running "-4" is not a count'),
    ("this is not a pair", 4, "not KEY = VALUE"),
])
def test_reload_bad_file_keeps_old(confrund, bad, line, reason):
    srv = confrund(["quota-running = 1"]).start()
    text = srv.reload([bad, "quota-running = 5"], r'msg="config not reloaded')
    assert 'error="%s:%d: %s' % (srv.conf, line, reason.replace('"', '\\"')) in text, text
    assert "config key applied" not in text, text
    # still serving, the old quota in force
    out = as_nobody(srv, [["start", "sleep", "60"], ["start", "sleep", "60"]])
    assert out[1].startswith("RESOURCE_EXHAUSTED"), out
    # a good file afterwards applies
    text = srv.reload(["quota-running = 5"], r'msg="config reloaded"')
    out = as_nobody(srv, [["start", "sleep", "60"]])
    assert not out[0].startswith("RESOURCE"), out


def test_reload_token_file(tmp_path, secrund_factory, pki):
    tf1, tf2 = str(tmp_path / "t1"), str(tmp_path / "t2")
    write_private(tf1, "")
    write_private(tf2, "")
    alice = run_rund_cmd("tokens", "create", "alice", "--token-file", tf1).stdout.decode().strip()
    bob = run_rund_cmd("tokens", "create", "bob", "--token-file", tf2).stdout.decode().strip()
    conf = str(tmp_path / "rund.conf")
    with open(conf, "w") as f:
        f.write("token-file = %s\n" % tf1)
    srv = secrund_factory(extra_args=["--config", conf]).start()

    def owner(tok):
        stub = srv.tls_stub(pki.transport, token=tok)
        r = start_sleep(stub, 60)
        return list(stub.Status(pb.StatusRequest(job_id=r.job_id), timeout=15).status.owner)

    assert owner(alice) == ["token:alice"]
    assert call_error(lambda: owner(bob)).code() == grpc.StatusCode.UNAUTHENTICATED
    with open(conf, "w") as f:
        f.write("token-file = %s\n" % tf2)
    srv.proc.send_signal(signal.SIGHUP)
    end = time.monotonic() + 30
    while "key=token-file" not in srv.stderr_text():
        assert time.monotonic() < end, srv.stderr_text()
        time.sleep(0.05)
    assert owner(bob) == ["token:bob"]
    assert call_error(lambda: owner(alice)).code() == grpc.StatusCode.UNAUTHENTICATED
    # a token file that cannot be read: the one in use stays
    with open(conf, "w") as f:
        f.write("token-file = %s\n" % (tmp_path / "missing"))
    srv.proc.send_signal(signal.SIGHUP)
    while "the old token file stays" not in srv.stderr_text():
        assert time.monotonic() < end, srv.stderr_text()
        time.sleep(0.05)
    assert owner(bob) == ["token:bob"]


def test_example_file_is_valid(tmp_path):
    """dist/rund.conf (installed as an example) parses, and every key of rund
    --help is documented in it."""
    src = os.environ.get("RUNRPC_SOURCE_ROOT", ".")
    example = os.path.join(src, "dist", "rund.conf")
    text = open(example).read()
    help_text = subprocess.run([RUND, "--help"], stdout=subprocess.PIPE,
                               timeout=30).stdout.decode()
    flags = set(re.findall(r"--([a-z0-9-]+)", help_text)) - {"help", "version", "config", "image",
                                                              "san", "days", "out"}
    for f in sorted(flags):
        assert re.search(r"^#? ?%s = " % re.escape(f), text, re.M), "%s not in the example" % f
    # uncommented, it is a valid file (paths made to exist where they must)
    lines = [ln[2:] if re.match(r"# [a-z0-9-]+ = ", ln) else ln for ln in text.splitlines()]
    lines = [ln for ln in lines if ln.split(" ")[0] not in ("tls-cert", "tls-key", "client-ca")]
    conf = tmp_path / "all.conf"
    conf.write_text("\n".join(lines) + "\n")
    # only parsed: --help after the file is read would exit 0 before it; use a
    # bad flag at the end instead, which is reported after the file was read
    p = subprocess.run([RUND, "--config", str(conf), "--tls-cert", "x"],
                       stderr=subprocess.PIPE, timeout=30)
    assert p.returncode == 2 and b"go together" in p.stderr, p.stderr

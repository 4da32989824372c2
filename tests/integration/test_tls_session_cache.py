"""runctl's TLS session cache: sessions kept on disk so the next runctl
process resumes (TLS 1.3 ticket) instead of a full handshake. The server is
rpc-testserver with --probe-method /runrpc.v1.Jobs/List: `runctl list`
reaches it and the server says whether the TLS session was resumed (stderr
"tls-call ... resumed=N", and in the error runctl prints)."""
import datetime
import hashlib
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time

import pytest

import tls_testcerts
from test_tls_transport import RUNCTL, TlsServer

PROBE = "/runrpc.v1.Jobs/List"


@pytest.fixture(scope="module")
def pki():
    d = tempfile.mkdtemp(prefix="rr-tlscache-")
    p = tls_testcerts.standard(d)
    yield p
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def server(pki):
    s = TlsServer(pki, "--probe-method", PROBE)
    yield s
    s.stop()


@pytest.fixture
def xdg():
    d = tempfile.mkdtemp(prefix="rr-xdg-")
    os.chmod(d, 0o700)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def cache_dir(xdg):
    return os.path.join(xdg, "runrpc", "tls-sessions")


def cache_file(xdg, addr, name, pki, cert="client"):
    key = "runrpc-tls-session-v1\n%s\n%s\n%s\n%s" % (addr, name, pki.path(cert, "pem"),
                                                     pki.path("ca", "pem"))
    return os.path.join(cache_dir(xdg), hashlib.sha256(key.encode()).hexdigest() + ".session")


def runctl(pki, addr, xdg, *args, cert="client", env=None):
    e = dict(os.environ, XDG_RUNTIME_DIR=xdg)
    e.pop("RUNRPC_NO_SESSION_CACHE", None)
    e.update(env or {})
    argv = [RUNCTL, "--addr", addr, "--ca", pki.path("ca", "pem"), "--tls-cert",
            pki.path(cert, "pem"), "--tls-key", pki.path(cert, "key"), *args]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=e)
    assert not re.search(r"ERROR: (Address|Leak)Sanitizer|runtime error:", r.stderr), r.stderr
    return r


def resumed(r):
    """Whether the server saw a resumed session, from runctl's error line."""
    m = re.search(r"UNIMPLEMENTED: tls probe: resumed=([01])$", r.stderr.strip())
    assert m and r.returncode == 1, r.stderr
    return m.group(1) == "1"


def server_says(server):
    return re.findall(r"tls-call path=%s resumed=([01])" % re.escape(PROBE), server.stderr())


def test_second_run_resumes_and_files_are_private(server, pki, xdg):
    assert not resumed(runctl(pki, server.tls, xdg, "list"))
    f = cache_file(xdg, server.tls, "127.0.0.1", pki)
    st = os.stat(f)
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.geteuid()
    for d in (cache_dir(xdg), os.path.dirname(cache_dir(xdg))):
        assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    assert os.listdir(cache_dir(xdg)) == [os.path.basename(f)]  # no temporary files left
    assert resumed(runctl(pki, server.tls, xdg, "list"))
    assert resumed(runctl(pki, server.tls, xdg, "list"))
    # another name for the same server is another entry: full handshake first
    addr = "localhost:%d" % server.port
    assert not resumed(runctl(pki, addr, xdg, "list"))
    assert resumed(runctl(pki, addr, xdg, "list"))
    assert os.path.exists(cache_file(xdg, addr, "localhost", pki))
    assert server_says(server) == ["0", "1", "1", "0", "1"]
    assert server.refusals() == []


def test_home_cache_when_no_runtime_dir(server, pki, xdg):
    env = {"HOME": xdg, "XDG_RUNTIME_DIR": ""}
    assert not resumed(runctl(pki, server.tls, xdg, "list", env=env))
    assert resumed(runctl(pki, server.tls, xdg, "list", env=env))
    d = os.path.join(xdg, ".cache", "runrpc", "tls-sessions")
    assert len(os.listdir(d)) == 1
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700


@pytest.mark.parametrize("how", ["world-readable", "group-writable", "corrupt", "truncated",
                                 "symlink", "dir-open", "other-owner", "dir-other-owner"])
def test_bad_cache_file_is_ignored(server, pki, xdg, how):
    if how.endswith("other-owner") and os.geteuid() != 0:
        pytest.skip("giving a file to another user needs root")
    assert not resumed(runctl(pki, server.tls, xdg, "list"))
    f = cache_file(xdg, server.tls, "127.0.0.1", pki)
    if how == "other-owner":  # another user's session (still 0600): never offered
        os.chown(f, 65534, 65534)
    elif how == "dir-other-owner":
        os.chown(cache_dir(xdg), 65534, 65534)
    elif how == "world-readable":
        os.chmod(f, 0o644)
    elif how == "group-writable":
        os.chmod(f, 0o620)
    elif how == "corrupt":
        with open(f, "wb") as out:
            out.write(os.urandom(1200))
    elif how == "truncated":
        data = open(f, "rb").read()
        with open(f, "wb") as out:
            out.write(data[:len(data) // 2])
    elif how == "symlink":
        os.rename(f, f + ".real")
        os.symlink(f + ".real", f)
    elif how == "dir-open":
        os.chmod(cache_dir(xdg), 0o755)
    # a full handshake, and the call works
    assert not resumed(runctl(pki, server.tls, xdg, "list"))
    if how.startswith("dir-"):  # a directory open to or owned by others is not used at all
        assert os.listdir(cache_dir(xdg)) == [os.path.basename(f)]
        assert not resumed(runctl(pki, server.tls, xdg, "list"))
        return
    # the new ticket replaced the bad file with a good private one
    st = os.lstat(f)
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.geteuid()
    assert resumed(runctl(pki, server.tls, xdg, "list"))


def test_no_session_cache_writes_nothing(server, pki, xdg):
    for args, env in ((["--no-session-cache"], None),
                      ([], {"RUNRPC_NO_SESSION_CACHE": "1"})):
        assert not resumed(runctl(pki, server.tls, xdg, *args, "list", env=env))
        assert not resumed(runctl(pki, server.tls, xdg, *args, "list", env=env))
        assert os.listdir(xdg) == []
    # and an existing cache is not read either
    assert not resumed(runctl(pki, server.tls, xdg, "list"))
    assert not resumed(runctl(pki, server.tls, xdg, "--no-session-cache", "list"))
    assert resumed(runctl(pki, server.tls, xdg, "list"))


def test_cached_session_never_changes_server_name_check(server, pki, xdg):
    assert not resumed(runctl(pki, server.tls, xdg, "list"))
    good = cache_file(xdg, server.tls, "127.0.0.1", pki)
    # plant the session verified for 127.0.0.1 where evil.example's would be
    evil = cache_file(xdg, server.tls, "evil.example", pki)
    shutil.copy(good, evil)
    os.chmod(evil, 0o600)
    r = runctl(pki, server.tls, xdg, "--server-name", "evil.example", "list")
    assert r.returncode == 1
    assert r.stderr == ("runctl: connect: UNAVAILABLE: TLS handshake with %s failed: certificate "
                        "verify failed (hostname mismatch)\n" % server.tls)
    # and a session saved under a name that the certificate has is still fine
    assert resumed(runctl(pki, server.tls, xdg, "list"))


def test_replaced_ca_or_certificate_invalidates(server, pki, xdg):
    assert not resumed(runctl(pki, server.tls, xdg, "list"))
    assert resumed(runctl(pki, server.tls, xdg, "list"))
    time.sleep(0.05)
    os.utime(pki.path("client", "pem"))  # a renewed client certificate
    assert not resumed(runctl(pki, server.tls, xdg, "list"))
    assert resumed(runctl(pki, server.tls, xdg, "list"))


def test_server_refuses_resumption_gracefully(pki, xdg):
    s = TlsServer(pki, "--probe-method", PROBE)
    try:
        assert not resumed(runctl(pki, s.tls, xdg, "list"))
        assert resumed(runctl(pki, s.tls, xdg, "list"))
        port = s.port
    finally:
        s.stop()
    # a new server process has new ticket keys: the old ticket is refused,
    # a full handshake happens
    s = TlsServer(pki, "--probe-method", PROBE)
    try:
        os.rename(cache_file(xdg, "127.0.0.1:%d" % port, "127.0.0.1", pki),
                  cache_file(xdg, s.tls, "127.0.0.1", pki))
        assert not resumed(runctl(pki, s.tls, xdg, "list"))
        assert resumed(runctl(pki, s.tls, xdg, "list"))
        assert s.refusals() == []
    finally:
        s.stop()


def test_resumed_session_cannot_outlive_client_certificate(pki, xdg):
    end = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=4)
    pki.leaf("shortlived", sans=("URI:runrpc:short",), end=end.strftime("%Y%m%d%H%M%SZ"))
    s = TlsServer(pki, "--probe-method", PROBE)
    try:
        assert not resumed(runctl(pki, s.tls, xdg, "list", cert="shortlived"))
        assert resumed(runctl(pki, s.tls, xdg, "list", cert="shortlived"))
        time.sleep(max(0, (end - datetime.datetime.now(datetime.timezone.utc)).total_seconds())
                   + 1.2)
        r = runctl(pki, s.tls, xdg, "list", cert="shortlived")
        assert r.returncode == 1 and "UNAVAILABLE" in r.stderr, r.stderr
        assert s.wait_refusal(1) == ["certificate has expired"]
    finally:
        s.stop()

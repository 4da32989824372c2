"""TLS transport of our gRPC server (rpc-testserver --tls-cert/--tls-key/
--client-ca) with Debian's grpcio (grpc.ssl_channel_credentials) as the
independent client, openssl s_client and raw sockets for the protocol-level
refusals, and runctl (our client) for server verification. Certificates are
made at test time with the openssl CLI (tls_testcerts.py)."""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import grpc
import pytest

import tls_testcerts
from test_rpc_interop import find_testserver, pb  # noqa: F401 (pb is a fixture)

ROOT = os.environ.get("RUNRPC_SOURCE_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
RUNCTL = os.environ.get("RUNCTL") or os.path.join(ROOT, "build", "src", "runctl", "runctl")


@pytest.fixture(scope="module")
def pki():
    d = tempfile.mkdtemp(prefix="rr-tls-")
    p = tls_testcerts.standard(d)
    p.leaf("expired", sans=("URI:runrpc:x",), start="20200101000000Z", end="20210101000000Z")
    p.leaf("future", sans=("URI:runrpc:x",), start="20400101000000Z", end="20410101000000Z")
    p.leaf("serveronly", sans=("URI:runrpc:x",), eku="serverAuth")
    p.leaf("rsa2048", sans=("URI:runrpc:x",), key="rsa2048")
    p.ca("other")
    p.leaf("foreign", ca="other", sans=("URI:runrpc:alice",))
    p.leaf("wrongname", sans=("DNS:other.example",), eku="serverAuth")
    yield p
    shutil.rmtree(d, ignore_errors=True)


class TlsServer:
    def __init__(self, pki, *extra, cert="server"):
        self.dir = tempfile.mkdtemp(prefix="rr-tlssrv-")
        self.errpath = os.path.join(self.dir, "stderr")
        with open(self.errpath, "w") as err:
            self.proc = subprocess.Popen(
                [find_testserver(), "--listen", "127.0.0.1:0", "--listen", "h2c:127.0.0.1:0",
                 "--tls-cert", pki.path(cert, "pem"), "--tls-key", pki.path(cert, "key"),
                 "--client-ca", pki.path("ca", "pem"), *extra],
                stdout=subprocess.PIPE, stderr=err, text=True)
        self.tls = self.h2c = None
        deadline = time.time() + 20
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("rpc-testserver exited: " + self.stderr())
            m = re.match(r"listening (h2c:)?(127\.0\.0\.1:\d+)", line)
            if m and m.group(1):
                self.h2c = m.group(2)
            elif m:
                self.tls = m.group(2)
            if line.strip() == "ready":
                break
        self.port = int(self.tls.rsplit(":", 1)[1])

    def stderr(self):
        with open(self.errpath) as f:
            return f.read()

    def refusals(self):
        return re.findall(r"conn-log peer=127\.0\.0\.1:\d+ what=tls handshake refused: (.*)",
                          self.stderr())

    def wait_refusal(self, n, timeout=5):
        deadline = time.time() + timeout
        while time.time() < deadline:
            r = self.refusals()
            if len(r) >= n:
                return r
            time.sleep(0.02)
        return self.refusals()

    def stop(self):
        self.proc.terminate()
        assert self.proc.wait(timeout=20) == 0
        err = self.stderr()
        assert not re.search(r"ERROR: (Address|Leak)Sanitizer|runtime error:", err), err
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def server(pki):
    s = TlsServer(pki)
    yield s
    s.stop()


def creds(pki, name="client", ca="ca"):
    key = pki.read(name, "key") if name else None
    chain = pki.read(name, "pem") if name else None
    return grpc.ssl_channel_credentials(pki.read(ca, "pem"), key, chain)


def unary(pb, addr, credentials, timeout=10):
    with grpc.secure_channel(addr, credentials) as ch:
        resp, call = pb[1].EchoStub(ch).UnaryCall.with_call(
            pb[0].SimpleRequest(response_size=10), timeout=timeout)
        return resp, dict(call.initial_metadata())


def test_good_mtls_with_grpcio(server, pki, pb):
    resp, md = unary(pb, server.tls, creds(pki))
    assert len(resp.payload.body) == 10
    assert md["x-runrpc-peer-tls"] == "1"
    assert md["x-runrpc-peer-sans"] == ("uri:runrpc:alice,dns:alice.example,"
                                        "email:alice@example.com")
    # the h2c listener of the same server is plaintext, without identity
    with grpc.insecure_channel(server.h2c) as ch:
        _, call = pb[1].EchoStub(ch).UnaryCall.with_call(pb[0].SimpleRequest(), timeout=10)
        assert dict(call.initial_metadata())["x-runrpc-peer-tls"] == "0"
    assert server.refusals() == []


@pytest.mark.parametrize("name,reason", [
    (None, "no client certificate"),
    ("foreign", "unable to get local issuer certificate"),
    ("expired", "certificate has expired"),
    ("future", "certificate is not yet valid"),
    ("serveronly", "unsuitable certificate purpose"),
    ("rsa2048", "EE certificate key too weak"),
])
def test_bad_client_certificates_refused(server, pki, pb, name, reason):
    with pytest.raises(grpc.RpcError) as ei:
        unary(pb, server.tls, creds(pki, name), timeout=5)
    assert ei.value.code() == grpc.StatusCode.UNAVAILABLE
    assert server.wait_refusal(1) == [reason]
    # the server goes on serving good clients
    resp, _ = unary(pb, server.tls, creds(pki))
    assert len(resp.payload.body) == 10


def test_client_cert_optional(pki, pb):
    """--client-cert-optional (rund's mode): a client without a certificate
    is served (the application decides: rund wants a token), with peer-tls
    1 and no certificate; a presented certificate still has to verify."""
    s = TlsServer(pki, "--client-cert-optional")
    try:
        resp, md = unary(pb, s.tls, creds(pki, None))
        assert len(resp.payload.body) == 10
        assert (md["x-runrpc-peer-tls"], md["x-runrpc-peer-cert"]) == ("1", "0")
        assert md["x-runrpc-peer-sans"] == ""
        _, md = unary(pb, s.tls, creds(pki))
        assert (md["x-runrpc-peer-cert"], md["x-runrpc-peer-sans"]) == (
            "1", "uri:runrpc:alice,dns:alice.example,email:alice@example.com")
        assert s.refusals() == []
        for n, (name, reason) in enumerate((("foreign", "unable to get local issuer certificate"),
                                            ("expired", "certificate has expired"),
                                            ("serveronly", "unsuitable certificate purpose"))):
            with pytest.raises(grpc.RpcError) as ei:
                unary(pb, s.tls, creds(pki, name), timeout=5)
            assert ei.value.code() == grpc.StatusCode.UNAVAILABLE
            assert s.wait_refusal(n + 1)[n] == reason
    finally:
        s.stop()


def s_client(server, pki, *args, cert="client"):
    argv = ["openssl", "s_client", "-connect", server.tls, "-CAfile", pki.path("ca", "pem"),
            "-cert", pki.path(cert, "pem"), "-key", pki.path(cert, "key"), *args]
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=20)


@pytest.mark.parametrize("args,reason", [
    (("-tls1_2", "-alpn", "h2"), "TLS 1.2 or older refused (TLS 1.3 required)"),
    (("-alpn", "http/1.1"), "client offered no h2 ALPN"),
    ((), "client offered no h2 ALPN"),
])
def test_protocol_refusals_with_openssl(server, pki, pb, args, reason):
    r = s_client(server, pki, *args)
    assert "ALPN protocol: h2" not in r.stdout
    assert server.wait_refusal(1) == [reason]
    resp, _ = unary(pb, server.tls, creds(pki))
    assert len(resp.payload.body) == 10


def test_openssl_with_h2_is_accepted(server, pki):
    r = s_client(server, pki, "-alpn", "h2")
    assert "ALPN protocol: h2" in r.stdout and "New, TLSv1.3" in r.stdout, r.stdout
    assert server.refusals() == []


def test_plaintext_clients_refused(server, pki, pb):
    # raw HTTP/2 preface
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    s.settimeout(5)
    try:
        assert s.recv(100) == b""
    except ConnectionResetError:
        pass
    s.close()
    assert server.wait_refusal(1) == ["not TLS (plaintext HTTP/2 preface)"]
    # grpcio without TLS
    with grpc.insecure_channel(server.tls) as ch:
        with pytest.raises(grpc.RpcError) as ei:
            pb[1].EchoStub(ch).UnaryCall(pb[0].SimpleRequest(), timeout=5)
        assert ei.value.code() == grpc.StatusCode.UNAVAILABLE
    assert server.wait_refusal(2)[1] == "not TLS (plaintext HTTP/2 preface)"
    resp, _ = unary(pb, server.tls, creds(pki))
    assert len(resp.payload.body) == 10


def test_handshake_timeout_and_connection_limit_logged(pki, pb):
    s = TlsServer(pki, "--handshake-ms", "300", "--max-connections", "2")
    try:
        idle = socket.create_connection(("127.0.0.1", s.port))
        assert s.wait_refusal(1) == ["no handshake within 300 ms"]
        idle.close()
        held = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(3)]
        deadline = time.time() + 5
        while "limit of 2 connections reached" not in s.stderr() and time.time() < deadline:
            time.sleep(0.02)
        assert re.search(r"conn-log peer=127\.0\.0\.1:\d+ what=connection refused: limit of 2 "
                         r"connections reached", s.stderr()), s.stderr()
        for h in held:
            h.close()
        time.sleep(0.5)  # the held ones time out too
        resp, _ = unary(pb, s.tls, creds(pki))
        assert len(resp.payload.body) == 10
    finally:
        s.stop()


def runctl(*args, env=None):
    r = subprocess.run([RUNCTL, *args], capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, **(env or {})))
    assert not re.search(r"ERROR: (Address|Leak)Sanitizer|runtime error:", r.stderr), r.stderr
    return r


def tls_flags(pki, cert="client", ca="ca"):
    return ["--ca", pki.path(ca, "pem"), "--tls-cert", pki.path(cert, "pem"),
            "--tls-key", pki.path(cert, "key")]


def test_runctl_over_tls(server, pki):
    # the Echo server has no Jobs service: UNIMPLEMENTED proves TLS + HTTP/2 worked
    for addr in (server.tls, "localhost:%d" % server.port):
        r = runctl("--addr", addr, *tls_flags(pki), "list")
        assert r.returncode == 1
        assert "UNIMPLEMENTED" in r.stderr and "runrpc.v1.Jobs" in r.stderr, r.stderr
    assert server.refusals() == []


def test_runctl_refuses_wrong_server_name_and_unknown_ca(server, pki):
    r = runctl("--addr", server.tls, *tls_flags(pki), "--server-name", "evil.example", "list")
    assert r.returncode == 1
    assert r.stderr == ("runctl: connect: UNAVAILABLE: TLS handshake with %s failed: certificate "
                        "verify failed (hostname mismatch)\n" % server.tls)
    r = runctl("--addr", server.tls, *tls_flags(pki, ca="other"), "list")
    assert r.returncode == 1
    assert r.stderr.startswith("runctl: connect: UNAVAILABLE: TLS handshake with %s failed: "
                               "certificate verify failed (" % server.tls), r.stderr


def test_runctl_refuses_server_cert_with_wrong_name(pki):
    s = TlsServer(pki, cert="wrongname")
    try:
        r = runctl("--addr", s.tls, *tls_flags(pki), "list")
        assert r.returncode == 1
        assert "certificate verify failed (IP address mismatch)" in r.stderr, r.stderr
        r = runctl("--addr", s.tls, *tls_flags(pki), "--server-name", "other.example", "list")
        assert "UNIMPLEMENTED" in r.stderr, r.stderr
    finally:
        s.stop()


def test_runctl_client_refused_by_server(server, pki):
    r = runctl("--addr", server.tls, *tls_flags(pki, cert="expired"), "list")
    assert r.returncode == 1
    assert "UNAVAILABLE" in r.stderr and "certificate expired" in r.stderr, r.stderr
    assert server.wait_refusal(1) == ["certificate has expired"]


def test_runctl_tls_config_errors(server, pki):
    r = runctl("--addr", server.tls, "--ca", pki.path("ca", "pem"), "--tls-cert",
               pki.path("client", "pem"), "--tls-key", pki.path("server", "key"), "list")
    assert r.returncode == 1
    assert r.stderr == ('runctl: connect: FAILED_PRECONDITION: TLS private key "%s" does not '
                        'match certificate "%s"\n' % (pki.path("server", "key"),
                                                      pki.path("client", "pem")))
    empty = tempfile.mkdtemp(prefix="rr-nostate-")
    try:
        r = runctl("--addr", server.tls, "list", env={"RUNRPC_STATE_DIR": empty})
        assert r.returncode == 1
        assert "INVALID_ARGUMENT" in r.stderr and "is a TLS address" in r.stderr, r.stderr
    finally:
        shutil.rmtree(empty)
    # nothing reached the server: files are checked before connecting
    time.sleep(0.2)
    assert server.refusals() == []


def test_runctl_default_files_and_env(server, pki):
    state = tempfile.mkdtemp(prefix="rr-state-")
    try:
        os.mkdir(os.path.join(state, "tls"), 0o700)
        for src, dst in (("ca.pem", "ca.pem"), ("client.pem", "client.pem"),
                         ("client.key", "client.key")):
            shutil.copy(os.path.join(pki.d, src), os.path.join(state, "tls", dst))
        r = runctl("--addr", server.tls, "list", env={"RUNRPC_STATE_DIR": state})
        assert "UNIMPLEMENTED" in r.stderr, r.stderr
        env = {"RUNRPC_STATE_DIR": "/nonexistent", "RUNRPC_CA": pki.path("ca", "pem"),
               "RUNRPC_TLS_CERT": pki.path("client", "pem"),
               "RUNRPC_TLS_KEY": pki.path("client", "key")}
        r = runctl("--addr", server.tls, "list", env=env)
        assert "UNIMPLEMENTED" in r.stderr, r.stderr
    finally:
        shutil.rmtree(state)
    assert server.refusals() == []


def test_runctl_token_needs_tls(server, pki):
    want = ("runctl: connect: INVALID_ARGUMENT: a bearer token needs TLS; use --allow-insecure "
            "to send it in the clear\n")
    r = runctl("--addr", "h2c:" + server.h2c, "--token", "rr_secret", "list")
    assert r.returncode == 1 and r.stderr == want
    r = runctl("--addr", "h2c:" + server.h2c, "list", env={"RUNRPC_TOKEN": "rr_secret"})
    assert r.returncode == 1 and r.stderr == want
    r = runctl("--addr", "h2c:" + server.h2c, "--token", "rr_secret", "--allow-insecure", "list")
    assert "UNIMPLEMENTED" in r.stderr, r.stderr
    r = runctl("--addr", server.tls, *tls_flags(pki), "--token", "rr_secret", "list")
    assert "UNIMPLEMENTED" in r.stderr, r.stderr

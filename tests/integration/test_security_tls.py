"""mTLS (docs/dev/SECURITY.md, issue 4): the handshake attack matrix against
rund's TLS listener, with python grpcio (grpc.ssl_channel_credentials),
openssl s_client and python's ssl module as independent clients, plus the
happy paths through grpcio and runctl.

Every refusal must: fail the call (UNAVAILABLE), run nothing, and make rund
log one `msg="tls handshake refused" peer=... reason="..."` line.
"""

import hashlib
import re
import socket
import ssl

import grpc
import pytest

from conftest import pb
from security_helpers import (REASON_RE, SecCtl, call_error, list_ids, pki,  # noqa: F401
                              s_client, secrund_factory, start_sleep, status_of, tls_flags)

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS_EMPTY = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


@pytest.fixture
def srv(secrund_factory):
    return secrund_factory().start()


def attempt(stub, marker):
    """What a refused client tries: a job that would leave a marker file."""
    return stub.Start(pb.StartRequest(command=pb.Command(
        path="/bin/sh", args=["-c", "echo ran > " + marker])), timeout=15)


def assert_refused(srv, stub, tmp_path, reason_re):
    before = len(srv.refusals())
    marker = tmp_path / "ran"
    e = call_error(lambda: attempt(stub, str(marker)))
    assert e.code() == grpc.StatusCode.UNAVAILABLE, (e.code(), e.details())
    e = call_error(lambda: stub.List(pb.ListRequest(), timeout=15))
    assert e.code() == grpc.StatusCode.UNAVAILABLE, (e.code(), e.details())
    line = srv.wait_refusal(before)
    assert "level=warn" in line and "peer=" in line, line
    m = REASON_RE.search(line)
    assert m and m.group(1).strip(), "no reason in %r" % line
    assert re.search(reason_re, m.group(1), re.I), "reason %r !~ %r" % (m.group(1), reason_re)
    assert not marker.exists(), "a refused client ran a command"
    # nothing was created: root on the unix socket sees every job
    assert list_ids(srv.unix_stub()) == []
    return line


# --------------------------------------------------------------------------
# happy paths


def test_tls_cert_happy_path_grpcio(srv, pki):
    stub = srv.tls_stub(pki.alice)
    r = stub.Start(pb.StartRequest(command=pb.Command(path="/bin/sh",
                                                      args=["-c", "echo tls-ok"])), timeout=15)
    st = stub.Wait(pb.WaitRequest(job_id=r.job_id), timeout=30).status
    assert st.state == pb.JOB_STATE_EXITED and st.exit_code == 0
    out = b"".join(m.data for m in stub.Logs(pb.LogsRequest(job_id=r.job_id), timeout=15)
                   if m.stream == pb.STREAM_STDOUT)
    assert out == b"tls-ok\n"
    assert sorted(st.owner) == sorted(pki.alice.principals())
    assert list_ids(stub) == [r.job_id]
    assert srv.refusals() == []


@pytest.mark.parametrize("who", ["dns_only", "email_only", "bob", "rsa3072"])
def test_tls_each_san_kind_is_an_identity(srv, pki, who):
    cert = getattr(pki, who)
    stub = srv.tls_stub(cert)
    r = start_sleep(stub, 30)
    st = status_of(stub, r.job_id)
    assert st.state == pb.JOB_STATE_RUNNING
    assert sorted(st.owner) == sorted(cert.principals())
    assert list_ids(stub) == [r.job_id]
    stub.Stop(pb.StopRequest(job_id=r.job_id, grace_ms=100), timeout=15)


def test_tls_exec_stream_grpcio(srv, pki):
    stub = srv.tls_stub(pki.alice)
    data = bytes(range(256)) * 512

    def reqs():
        yield pb.ExecRequest(start=pb.ExecStart(command=pb.Command(path="sha256sum")))
        for i in range(0, len(data), 16384):
            yield pb.ExecRequest(stdin=data[i:i + 16384])
        yield pb.ExecRequest(close_stdin=True)

    out, ex = b"", None
    for m in stub.Exec(reqs(), timeout=30):
        if m.WhichOneof("msg") == "stdout":
            out += m.stdout
        elif m.WhichOneof("msg") == "exit":
            ex = m.exit
    assert ex is not None and ex.exit_code == 0
    assert out.split()[0].decode() == hashlib.sha256(data).hexdigest()


def test_runctl_tls_flags_and_env(srv, pki):
    ctl = SecCtl(srv.tls_addr, tls_flags(pki.alice, pki.ca))
    r = ctl("exec", "--", "sh", "-c", "echo via-runctl; exit 3")
    assert r.rc == 3, r
    assert r.out == b"via-runctl\n", r
    r = ctl("start", "--", "sleep", "30")
    assert r.rc == 0, r
    jid = r.text.strip()
    r = ctl("status", jid, "--json")
    assert r.rc == 0 and jid in r.text, r
    # the same through the environment, and with a DNS name as ADDR
    env = {"RUNRPC_TLS_CERT": pki.alice.cert, "RUNRPC_TLS_KEY": pki.alice.key,
           "RUNRPC_CA": pki.ca.cert}
    r = SecCtl("localhost:%d" % srv.tls_port)("list", env=env)
    assert r.rc == 0 and jid in r.text, r
    # the job is alice's: runctl as bob does not see it
    r = SecCtl(srv.tls_addr, tls_flags(pki.bob, pki.ca))("status", jid)
    assert r.rc == 1 and "NOT_FOUND" in r.errtext, r
    r = ctl("stop", jid, "--grace", "100ms")
    assert r.rc == 0, r


# --------------------------------------------------------------------------
# the attack matrix (grpcio as the client)


# (no client certificate at all is not refused at the handshake: its calls
# need a bearer token, test_tls_token_only.py)
ATTACKS = {
    "other-ca": ("foreign", r"unable to get local issuer|unknown ca|verify failed"),
    "expired": ("expired", r"expired"),
    "not-yet-valid": ("not_yet", r"not yet valid"),
    "server-auth-only": ("server_auth_only", r"purpose"),
    "rsa-2048": ("rsa2048", r"too (weak|small)|key"),
}


@pytest.mark.parametrize("case", list(ATTACKS))
def test_bad_client_certificate_refused(srv, pki, tmp_path, case):
    who, reason = ATTACKS[case]
    cert = getattr(pki, who)
    assert_refused(srv, srv.tls_stub(cert), tmp_path, reason)


@pytest.mark.parametrize("case", ["other-ca", "expired", "server-auth-only"])
def test_bad_client_certificate_refused_runctl(srv, pki, tmp_path, case):
    who, _ = ATTACKS[case]
    cert = getattr(pki, who)
    before = len(srv.refusals())
    marker = tmp_path / "ran"
    r = SecCtl(srv.tls_addr, tls_flags(cert, pki.ca))("exec", "--", "touch", str(marker))
    assert r.rc == 125, r
    lines = [x for x in r.errtext.splitlines() if x.strip()]
    assert len(lines) == 1 and "UNAVAILABLE" in lines[0], r
    srv.wait_refusal(before)
    assert not marker.exists()
    assert list_ids(srv.unix_stub()) == []


def test_plaintext_grpc_to_tls_port_refused(srv, tmp_path):
    assert_refused(srv, srv.plain_to_tls_stub(), tmp_path, r".")


def test_plaintext_h2_preface_gets_no_http2(srv):
    before = len(srv.refusals())
    s = socket.create_connection(("127.0.0.1", srv.tls_port), timeout=10)
    try:
        s.sendall(H2_PREFACE + SETTINGS_EMPTY)
        data = b""
        try:
            while len(data) < 9:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, socket.timeout):
            pass
    finally:
        s.close()
    # nothing, or a TLS alert record (0x15): never an HTTP/2 frame
    assert data == b"" or data[0] == 0x15, data[:32]
    srv.wait_refusal(before)


def test_tls12_client_refused(srv, pki):
    before = len(srv.refusals())
    rc, out = s_client(srv.tls_addr, "-tls1_2", "-alpn", "h2", "-servername", "localhost",
                       "-CAfile", pki.ca.cert, "-cert", pki.alice.cert, "-key", pki.alice.key)
    assert not re.search(r"Cipher is (?!\(NONE\))", out), out
    assert rc != 0 or "Cipher is (NONE)" in out, out
    line = srv.wait_refusal(before)
    assert re.search(r"protocol|version|TLS 1\.[0-2]", REASON_RE.search(line).group(1), re.I), line


def test_tls13_s_client_negotiates_h2(srv, pki):
    rc, out = s_client(srv.tls_addr, "-tls1_3", "-alpn", "h2", "-servername", "localhost",
                       "-CAfile", pki.ca.cert, "-cert", pki.alice.cert, "-key", pki.alice.key,
                       "-verify_return_error")
    assert "ALPN protocol: h2" in out, out
    assert re.search(r"New, TLSv1.3, Cipher is TLS_", out), out
    assert "Verify return code: 0 (ok)" in out, out


def _ssl_client(pki, cert, alpn, maxver=ssl.TLSVersion.TLSv1_3):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(pki.ca.cert)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = maxver
    if cert:
        ctx.load_cert_chain(cert.cert, cert.key)
    if alpn is not None:
        ctx.set_alpn_protocols(alpn)
    return ctx


def _h2_exchange(ctx, port):
    """Handshake, send the HTTP/2 preface, return what the server answers
    (b"" / an exception text when refused)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s = ctx.wrap_socket(raw, server_hostname="localhost")
        s.sendall(H2_PREFACE + SETTINGS_EMPTY)
        data = b""
        while len(data) < 9:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError, socket.timeout) as e:
        return "error: %s" % e
    finally:
        raw.close()


def test_python_ssl_control_gets_http2_settings(srv, pki):
    # the positive control for the two ALPN cases below
    data = _h2_exchange(_ssl_client(pki, pki.alice, ["h2"]), srv.tls_port)
    assert isinstance(data, bytes) and len(data) >= 9 and data[3] == 0x04, data


def test_rsa1024_client_key_refused(srv, pki):
    # grpcio (BoringSSL) will not even load a 1024-bit key: use python's ssl
    # at security level 0 so that the server is the one refusing
    before = len(srv.refusals())
    ctx = _ssl_client(pki, None, ["h2"])
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.load_cert_chain(pki.rsa1024.cert, pki.rsa1024.key)
    data = _h2_exchange(ctx, srv.tls_port)
    assert not (isinstance(data, bytes) and len(data) >= 9 and data[3] == 0x04), data
    line = srv.wait_refusal(before)
    assert re.search(r"too (weak|small)", REASON_RE.search(line).group(1), re.I), line
    assert list_ids(srv.unix_stub()) == []


@pytest.mark.parametrize("alpn", [None, ["http/1.1"]], ids=["no-alpn", "http1.1-only"])
def test_alpn_without_h2_refused(srv, pki, alpn):
    before = len(srv.refusals())
    data = _h2_exchange(_ssl_client(pki, pki.alice, alpn), srv.tls_port)
    assert not (isinstance(data, bytes) and len(data) >= 9 and data[3] == 0x04), data
    srv.wait_refusal(before)
    assert list_ids(srv.unix_stub()) == []


# --------------------------------------------------------------------------
# the client verifies the server


def test_runctl_refuses_server_from_other_ca(srv, pki):
    r = SecCtl(srv.tls_addr, tls_flags(pki.alice, pki.other_ca))("list")
    assert r.rc == 1, r
    lines = [x for x in r.errtext.splitlines() if x.strip()]
    assert len(lines) == 1, r
    assert re.search(r"UNAVAILABLE: TLS handshake with 127\.0\.0\.1:%d failed: "
                     r"certificate verify failed" % srv.tls_port, lines[0]), r


def test_runctl_checks_server_name(secrund_factory, pki):
    # server cert says DNS:elsewhere.test only
    srv = secrund_factory(server_cert=pki.wrong_name_server).start()
    flags = tls_flags(pki.alice, pki.ca)
    r = SecCtl(srv.tls_addr, flags)("list")
    assert r.rc == 1 and "TLS handshake" in r.errtext, r
    r = SecCtl(srv.tls_addr, flags + ["--server-name", "elsewhere.test"])("list")
    assert r.rc == 0, r
    r = SecCtl(srv.tls_addr, flags + ["--server-name", "other.test"])("list")
    assert r.rc == 1 and "TLS handshake" in r.errtext, r


def test_grpcio_refuses_wrong_server_name(secrund_factory, pki):
    srv = secrund_factory(server_cert=pki.wrong_name_server).start()
    e = call_error(lambda: srv.tls_stub(pki.alice).List(pb.ListRequest(), timeout=15))
    assert e.code() == grpc.StatusCode.UNAVAILABLE
    ok = srv.tls_stub(pki.alice, server_name="elsewhere.test")
    assert list_ids(ok) == []


# --------------------------------------------------------------------------
# --tls12: 1.2 allowed, ECDHE + AEAD only


def test_tls12_opt_in(secrund_factory, pki):
    srv = secrund_factory(tls12=True).start()
    common = ["-tls1_2", "-alpn", "h2", "-servername", "localhost", "-CAfile", pki.ca.cert,
              "-cert", pki.alice.cert, "-key", pki.alice.key]
    rc, out = s_client(srv.tls_addr, *common, "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384")
    assert "Cipher is ECDHE-ECDSA-AES256-GCM-SHA384" in out, out
    before = len(srv.refusals())
    rc, out = s_client(srv.tls_addr, *common, "-cipher", "ECDHE-ECDSA-AES256-SHA")
    assert not re.search(r"Cipher is (?!\(NONE\))", out), out
    srv.wait_refusal(before)

"""Token-only clients over TLS (issue 15): rund asks for a client certificate
but accepts a client without one, whose calls then need a valid bearer
token (else UNAUTHENTICATED saying a certificate or a token is needed); a
certificate that is presented must still verify (test_security_tls.py's
attack matrix). Clients: python grpcio with ssl_channel_credentials(CA only)
plus an access-token call credential, and runctl with --ca and --token.
"""

import json
import os

import grpc
import pytest

from conftest import pb
from security_helpers import (SecCtl, call_error, list_ids, new_token, pki,  # noqa: F401
                              run_rund_cmd, secrund_factory, start_sleep, status_of)

TOKENS = {"alice": new_token(), "bob": new_token(), "carol": new_token()}
NEEDS = "no identity: a TLS client needs a client certificate or a bearer token"


@pytest.fixture
def srv(secrund_factory):
    return secrund_factory(h2c=True, tokens=TOKENS, admins=["token:carol"]).start()


def token_stub(srv, token):
    """grpcio with the CA and a token, no client certificate."""
    return srv.tls_stub(None, token=token)


def ctl(srv, tmp_path, *flags):
    # an empty state dir: runctl must not pick up any default client cert
    env = {"RUNRPC_STATE_DIR": str(tmp_path / "no-state")}
    c = SecCtl(srv.tls_addr, ["--ca", srv.pki.ca.cert] + list(flags))
    return lambda *a, **kw: c(*a, env=dict(env, **kw.pop("env", {})), **kw)


def test_grpcio_token_only_served(srv, tmp_path):
    before = len(srv.refusals())
    a = token_stub(srv, TOKENS["alice"])
    r = start_sleep(a, 60)
    st = status_of(a, r.job_id)
    assert list(st.owner) == ["token:alice"]
    assert list_ids(a) == [r.job_id]
    # ownership for token identities is what it always was: bob sees
    # nothing and gets NOT_FOUND; the admin token sees everything
    b = token_stub(srv, TOKENS["bob"])
    assert list_ids(b) == []
    e = call_error(lambda: status_of(b, r.job_id))
    assert e.code() == grpc.StatusCode.NOT_FOUND, (e.code(), e.details())
    e = call_error(lambda: b.Stop(pb.StopRequest(job_id=r.job_id, grace_ms=100), timeout=15))
    assert e.code() == grpc.StatusCode.NOT_FOUND, (e.code(), e.details())
    assert status_of(a, r.job_id).state == pb.JOB_STATE_RUNNING
    assert list_ids(token_stub(srv, TOKENS["carol"])) == [r.job_id]
    # the exec stream works the same way
    x = list(a.Exec(iter([pb.ExecRequest(start=pb.ExecStart(command=pb.Command(
        path="/bin/echo", args=["token-only"])))]), timeout=30))
    out = b"".join(m.stdout for m in x if m.WhichOneof("msg") == "stdout")
    assert out == b"token-only\n", x
    a.Stop(pb.StopRequest(job_id=r.job_id, grace_ms=100), timeout=15)
    # no handshake was refused, and no token reached the log
    assert len(srv.refusals()) == before
    srv.assert_not_logged(*TOKENS.values())


def test_no_cert_no_token_unauthenticated(srv, tmp_path):
    before = len(srv.refusals())
    s = srv.tls_stub(None)
    marker = tmp_path / "ran"
    for fn in (lambda: s.List(pb.ListRequest(), timeout=10),
               lambda: s.Start(pb.StartRequest(command=pb.Command(
                   path="/bin/touch", args=[str(marker)])), timeout=10)):
        e = call_error(fn)
        assert e.code() == grpc.StatusCode.UNAUTHENTICATED, (e.code(), e.details())
        assert e.details().startswith(NEEDS), e.details()
    assert not marker.exists()
    assert list_ids(srv.unix_stub()) == []
    # the handshake itself went through (the refusal is per call)
    assert len(srv.refusals()) == before
    # health needs no identity, as on every other transport
    check = srv.tls_channel(None).unary_unary("/grpc.health.v1.Health/Check")
    assert check(b"", timeout=10) == b"\x08\x01"  # status: SERVING


def test_wrong_and_revoked_token_refused(srv, tmp_path):
    e = call_error(lambda: list_ids(token_stub(srv, new_token())))
    assert e.code() == grpc.StatusCode.UNAUTHENTICATED and e.details() == "invalid bearer token"
    a = token_stub(srv, TOKENS["alice"])
    assert list_ids(a) == []
    p = run_rund_cmd("tokens", "revoke", "alice", "--token-file", srv.token_file)
    assert p.returncode == 0, p.stderr
    # the next call, on the same connection and on a new one, is refused
    for stub in (a, token_stub(srv, TOKENS["alice"])):
        e = call_error(lambda: list_ids(stub))
        assert e.code() == grpc.StatusCode.UNAUTHENTICATED, (e.code(), e.details())
        assert e.details() == "invalid bearer token"
    r = ctl(srv, tmp_path, "--token", TOKENS["alice"])("list")
    assert r.rc == 1 and "UNAUTHENTICATED: invalid bearer token" in r.errtext, r
    # bob's token is untouched
    assert list_ids(token_stub(srv, TOKENS["bob"])) == []
    srv.assert_not_logged(*TOKENS.values())


def test_runctl_token_only(srv, tmp_path):
    run = ctl(srv, tmp_path, "--token", TOKENS["alice"])
    r = run("exec", "--", "echo", "hi")
    assert r.rc == 0 and r.out == b"hi\n", r
    r = run("start", "--", "sleep", "60")
    assert r.rc == 0, r
    jid = r.text.strip()
    # the token from the environment, the CA from the flag
    envrun = ctl(srv, tmp_path)
    r = envrun("list", "--json", env={"RUNRPC_TOKEN": TOKENS["alice"]})
    assert r.rc == 0 and [j["job_id"] for j in json.loads(r.out)] == [jid], r
    assert json.loads(r.out)[0]["owner"] == ["token:alice"]
    r = envrun("status", jid, env={"RUNRPC_TOKEN": TOKENS["bob"]})
    assert r.rc == 1 and "NOT_FOUND" in r.errtext, r
    # -v says no certificate is used, and never shows the token
    r = SecCtl(srv.tls_addr, ["-v", "--ca", srv.pki.ca.cert, "--token", TOKENS["alice"]])(
        "list", env={"RUNRPC_STATE_DIR": str(tmp_path / "no-state")})
    assert r.rc == 0, r
    assert "runctl: client certificate: none" in r.errtext, r.errtext
    assert TOKENS["alice"] not in r.errtext
    # neither a certificate nor a token: one clear line, exit 1
    r = envrun("list")
    lines = [x for x in r.errtext.splitlines() if x.strip()]
    assert r.rc == 1 and len(lines) == 1, r
    assert lines[0].startswith("runctl: list: UNAUTHENTICATED: " + NEEDS), lines
    r = run("stop", jid, "--grace", "100ms")
    assert r.rc == 0, r
    srv.assert_not_logged(*TOKENS.values())


def test_runctl_token_only_never_over_plaintext(srv, tmp_path):
    # the token is not sent over h2c or unix unless --allow-insecure, and
    # rund refuses it there anyway (test_security_identity.py has the rest)
    tok = TOKENS["alice"]
    for addr in (srv.addr, srv.h2c_addr):
        r = SecCtl(addr, ["--token", tok])("list")
        assert r.rc != 0 and "needs TLS" in r.errtext and tok not in r.errtext, r
    s = srv.h2c_stub()
    e = call_error(lambda: s.List(pb.ListRequest(), timeout=10,
                                  metadata=[("authorization", "Bearer " + tok)]))
    assert e.code() == grpc.StatusCode.UNAUTHENTICATED
    assert e.details() == "bearer tokens are accepted only over TLS"
    srv.assert_not_logged(tok)

"""Identity and ownership (docs/dev/SECURITY.md, issue 4): certificate SANs,
bearer tokens and unix peer uids; a caller sees and acts only on its own jobs
(admins: all); someone else's job is NOT_FOUND with the very message an
unknown id gets, and is left untouched.
"""

import json
import os
import random
import re

import grpc
import pytest

from conftest import pb, pid_alive
from security_helpers import (BY_ID, UNKNOWN_ID, SecCtl, assert_not_found_like_unknown,  # noqa
                              call_error, job_calls, list_ids, new_token, pki, secrund_factory,
                              start_sleep, status_of, tls_flags)

TOKENS = {"alice": new_token(), "bob": new_token()}
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


@pytest.fixture
def srv(secrund_factory):
    return secrund_factory(h2c=True, tokens=TOKENS, admins=["san:dns:admin.test"]).start()


def assert_running(stub, job_id, pid):
    st = status_of(stub, job_id)
    assert st.state == pb.JOB_STATE_RUNNING, st
    assert pid_alive(pid)


def auth_md(token):
    return [("authorization", "Bearer " + token)]


# --------------------------------------------------------------------------
# certificate SANs


@pytest.mark.parametrize("method", BY_ID)
def test_san_b_cannot_touch_job_of_a(srv, pki, method):
    a, b = srv.tls_stub(pki.alice), srv.tls_stub(pki.bob)
    r = start_sleep(a, 60)
    unknown = call_error(job_calls(b, UNKNOWN_ID)[method])
    e = call_error(job_calls(b, r.job_id)[method])
    assert_not_found_like_unknown(e, r.job_id, UNKNOWN_ID, unknown)
    assert e.details() == "job %s not found" % r.job_id, e.details()
    assert_running(a, r.job_id, r.pid)
    assert list_ids(b) == []
    srv.assert_not_logged(*TOKENS.values())
    a.Stop(pb.StopRequest(job_id=r.job_id, grace_ms=100), timeout=15)


def test_shared_san_gives_access(srv, pki):
    # alice2 shares DNS:alice.test with alice
    a, a2, b = (srv.tls_stub(c) for c in (pki.alice, pki.alice2, pki.bob))
    r = start_sleep(a, 60)
    assert list_ids(a2) == [r.job_id]
    assert status_of(a2, r.job_id).state == pb.JOB_STATE_RUNNING
    a2.Signal(pb.SignalRequest(job_id=r.job_id, name="KILL"), timeout=10)
    st = a.Wait(pb.WaitRequest(job_id=r.job_id), timeout=20).status
    assert st.state == pb.JOB_STATE_KILLED
    assert list_ids(b) == []


def test_list_per_identity_and_admins(srv, pki):
    a, b, c = (srv.tls_stub(x) for x in (pki.alice, pki.bob, pki.dns_only))
    ja = sorted([start_sleep(a, 60).job_id, start_sleep(a, 60).job_id])
    jb = [start_sleep(b, 60).job_id]
    jc = [start_sleep(c, 60).job_id]
    ju = [start_sleep(srv.unix_stub(), 60).job_id]  # root on the unix socket
    assert list_ids(a) == ja
    assert list_ids(b) == jb
    assert list_ids(c) == jc
    everything = sorted(ja + jb + jc + ju)
    admin = srv.tls_stub(pki.admin)  # --admin san:dns:admin.test
    assert list_ids(admin) == everything
    assert list_ids(srv.unix_stub()) == everything
    assert list_ids(a, state=pb.JOB_STATE_RUNNING) == ja
    # the admin acts on anyone's job; the others never see root's
    assert status_of(admin, jb[0]).state == pb.JOB_STATE_RUNNING
    for s in (a, b, c):
        e = call_error(lambda: status_of(s, ju[0]))
        assert e.code() == grpc.StatusCode.NOT_FOUND
    for j in everything:
        admin.Stop(pb.StopRequest(job_id=j, grace_ms=100), timeout=15)


def test_owner_recorded(srv, pki):
    a = srv.tls_stub(pki.alice)
    r = start_sleep(a, 60)
    st = status_of(a, r.job_id)
    assert sorted(st.owner) == sorted(["san:uri:runrpc:alice", "san:dns:alice.test",
                                       "san:email:alice@example.test"])
    ru = start_sleep(srv.unix_stub(), 60)
    assert list(status_of(srv.unix_stub(), ru.job_id).owner) == ["uid:0"]
    for j in (r.job_id, ru.job_id):
        srv.unix_stub().Stop(pb.StopRequest(job_id=j, grace_ms=100), timeout=15)


def _guesses(job_id, n=20):
    rnd = random.Random(job_id)
    out = set()
    # same millisecond, other randomness; and neighbours of the real id
    while len(out) < n:
        out.add(job_id[:10] + "".join(rnd.choice(CROCKFORD) for _ in range(16)))
    last = CROCKFORD.index(job_id[-1])
    for d in (-1, 1):
        out.add(job_id[:-1] + CROCKFORD[(last + d) % 32])
    out.discard(job_id)
    return sorted(out)


def test_guessed_ulids_not_found(srv, pki):
    a, b = srv.tls_stub(pki.alice), srv.tls_stub(pki.bob)
    r = start_sleep(a, 60)
    for g in _guesses(r.job_id):
        for who in (a, b):
            for method in ("Status", "Signal", "Stop"):
                e = call_error(job_calls(who, g)[method])
                assert e.code() == grpc.StatusCode.NOT_FOUND, (g, method, e)
                assert e.details() == "job %s not found" % g, e.details()
    assert_running(a, r.job_id, r.pid)
    a.Stop(pb.StopRequest(job_id=r.job_id, grace_ms=100), timeout=15)


@pytest.mark.parametrize("method", BY_ID)
@pytest.mark.parametrize("bad", ["", "not-a-ulid", "01ARZ3NDEKTSV4RRFFQ69G5FA",
                                 "01ARZ3NDEKTSV4RRFFQ69G5FAVX", "01ARZ3NDEKTSV4RRFFQ69G5FAU",
                                 "../../../../etc/passwd0000", "01ARZ3NDEK%00V4RRFFQ69G5FA"])
def test_malformed_ids_invalid_over_tls(srv, pki, method, bad):
    e = call_error(job_calls(srv.tls_stub(pki.bob), bad)[method])
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (e.code(), e.details())


# --------------------------------------------------------------------------
# bearer tokens


def test_token_over_tls(srv, pki):
    ta = srv.tls_stub(pki.transport, token=TOKENS["alice"])
    r = start_sleep(ta, 60)
    st = status_of(ta, r.job_id)
    assert list(st.owner) == ["token:alice"]
    assert list_ids(ta) == [r.job_id]
    # the token replaced the certificate's identity: the bare cert sees nothing
    bare = srv.tls_stub(pki.transport)
    assert list_ids(bare) == []
    e = call_error(lambda: status_of(bare, r.job_id))
    assert e.code() == grpc.StatusCode.NOT_FOUND
    # the same token over another certificate's connection is still alice
    assert list_ids(srv.tls_stub(pki.bob, token=TOKENS["alice"])) == [r.job_id]
    # per-call metadata works as well as call credentials
    s = srv.tls_stub(pki.transport)
    assert [j.job_id for j in s.List(pb.ListRequest(), timeout=10,
                                     metadata=auth_md(TOKENS["alice"])).jobs] == [r.job_id]
    ta.Stop(pb.StopRequest(job_id=r.job_id, grace_ms=100), timeout=15)
    srv.assert_not_logged(*TOKENS.values())


@pytest.mark.parametrize("method", BY_ID)
def test_token_a_on_job_of_b(srv, pki, method):
    tb = srv.tls_stub(pki.transport, token=TOKENS["bob"])
    ta = srv.tls_stub(pki.transport, token=TOKENS["alice"])
    r = start_sleep(tb, 60)
    unknown = call_error(job_calls(ta, UNKNOWN_ID)[method])
    e = call_error(job_calls(ta, r.job_id)[method])
    assert_not_found_like_unknown(e, r.job_id, UNKNOWN_ID, unknown)
    assert_running(tb, r.job_id, r.pid)
    assert list_ids(ta) == []
    tb.Stop(pb.StopRequest(job_id=r.job_id, grace_ms=100), timeout=15)
    srv.assert_not_logged(*TOKENS.values())


@pytest.mark.parametrize("bad", ["wrong", "other-shape", "empty-bearer", "near-miss"])
def test_wrong_token_unauthenticated(srv, pki, tmp_path, bad):
    good = TOKENS["alice"]
    tok = {"wrong": new_token(), "other-shape": "x" * 40, "empty-bearer": "",
           "near-miss": good[:-1] + ("A" if good[-1] != "A" else "B")}[bad]
    marker = tmp_path / "ran"
    s = srv.tls_stub(pki.alice)
    # (a value with trailing whitespace is malformed HTTP/2: nghttp2 resets it)
    md = [("authorization", ("Bearer " + tok) if tok else "Bearer")]
    for fn in (lambda: s.List(pb.ListRequest(), timeout=10, metadata=md),
               lambda: s.Start(pb.StartRequest(command=pb.Command(
                   path="/bin/touch", args=[str(marker)])), timeout=10, metadata=md)):
        e = call_error(fn)
        assert e.code() == grpc.StatusCode.UNAUTHENTICATED, (e.code(), e.details())
        assert e.details() == "invalid bearer token", e.details()
        if tok:
            assert tok not in (e.details() or "")
    assert not marker.exists()
    assert list_ids(srv.unix_stub()) == []
    if tok:
        srv.assert_not_logged(tok)
    srv.assert_not_logged(*TOKENS.values())


def test_token_over_plaintext_refused(srv, tmp_path):
    marker = tmp_path / "ran"
    for stub in (srv.unix_stub(), srv.h2c_stub()):
        for tok in (TOKENS["alice"], new_token()):
            for fn in (lambda: stub.List(pb.ListRequest(), timeout=10, metadata=auth_md(tok)),
                       lambda: stub.Start(pb.StartRequest(command=pb.Command(
                           path="/bin/touch", args=[str(marker)])), timeout=10,
                           metadata=auth_md(tok))):
                e = call_error(fn)
                assert e.code() == grpc.StatusCode.UNAUTHENTICATED, (e.code(), e.details())
                assert e.details() == "bearer tokens are accepted only over TLS", e.details()
                assert tok not in e.details()
    assert not marker.exists()
    assert list_ids(srv.unix_stub()) == []
    srv.assert_not_logged(*TOKENS.values())


def test_h2c_without_token_unauthenticated(srv, tmp_path):
    h = srv.h2c_stub()
    marker = tmp_path / "ran"
    e = call_error(lambda: h.Start(pb.StartRequest(command=pb.Command(
        path="/bin/touch", args=[str(marker)])), timeout=10))
    assert e.code() == grpc.StatusCode.UNAUTHENTICATED, (e.code(), e.details())
    e = call_error(lambda: h.List(pb.ListRequest(), timeout=10))
    assert e.code() == grpc.StatusCode.UNAUTHENTICATED
    assert not marker.exists()


def test_token_over_plaintext_with_allow_insecure_tokens(secrund_factory):
    srv = secrund_factory(h2c=True, tokens=TOKENS, allow_insecure_tokens=True).start()
    u = srv.unix_stub()
    root_job = start_sleep(u, 60).job_id
    ra = u.Start(pb.StartRequest(command=pb.Command(path="sleep", args=["60"])), timeout=10,
                 metadata=auth_md(TOKENS["alice"]))
    st = u.Status(pb.StatusRequest(job_id=ra.job_id), timeout=10,
                  metadata=auth_md(TOKENS["alice"])).status
    assert list(st.owner) == ["token:alice"]
    # the token replaces uid 0: alice does not see root's job
    ids = [j.job_id for j in u.List(pb.ListRequest(), timeout=10,
                                    metadata=auth_md(TOKENS["alice"])).jobs]
    assert ids == [ra.job_id]
    h = srv.h2c_stub()
    ids = [j.job_id for j in h.List(pb.ListRequest(), timeout=10,
                                    metadata=auth_md(TOKENS["bob"])).jobs]
    assert ids == []
    e = call_error(lambda: h.Status(pb.StatusRequest(job_id=ra.job_id), timeout=10,
                                    metadata=auth_md(TOKENS["bob"])))
    assert e.code() == grpc.StatusCode.NOT_FOUND
    e = call_error(lambda: h.List(pb.ListRequest(), timeout=10,
                                  metadata=auth_md(new_token())))
    assert e.code() == grpc.StatusCode.UNAUTHENTICATED
    e = call_error(lambda: h.List(pb.ListRequest(), timeout=10))
    assert e.code() == grpc.StatusCode.UNAUTHENTICATED
    assert list_ids(u) == sorted([root_job, ra.job_id])
    for j in (root_job, ra.job_id):
        u.Stop(pb.StopRequest(job_id=j, grace_ms=100), timeout=15)
    srv.assert_not_logged(*TOKENS.values())


def test_runctl_token(srv, pki):
    base = SecCtl(srv.tls_addr, tls_flags(pki.transport, pki.ca))
    r = SecCtl(srv.tls_addr, tls_flags(pki.transport, pki.ca)
               + ["--token", TOKENS["alice"]])("start", "--", "sleep", "60")
    assert r.rc == 0, r
    jid = r.text.strip()
    r = base("list", "--json", env={"RUNRPC_TOKEN": TOKENS["alice"]})
    assert r.rc == 0, r
    assert [j["job_id"] for j in json.loads(r.out)] == [jid]
    r = base("list", "--json", env={"RUNRPC_TOKEN": TOKENS["bob"]})
    assert r.rc == 0 and json.loads(r.out) == [], r
    r = base("status", jid, env={"RUNRPC_TOKEN": TOKENS["bob"]})
    assert r.rc == 1 and "NOT_FOUND" in r.errtext, r
    r = base("list", env={"RUNRPC_TOKEN": new_token()})
    assert r.rc == 1 and "UNAUTHENTICATED" in r.errtext, r
    # no token: the transport certificate's identity, which owns nothing
    r = base("list", "--json")
    assert r.rc == 0 and json.loads(r.out) == [], r
    r = base("stop", jid, "--grace", "100ms", env={"RUNRPC_TOKEN": TOKENS["alice"]})
    assert r.rc == 0, r
    srv.assert_not_logged(*TOKENS.values())


def test_runctl_token_without_tls(srv):
    tok = TOKENS["alice"]
    for addr in (srv.addr, srv.h2c_addr):
        r = SecCtl(addr, ["--token", tok])("list")
        assert r.rc != 0, r
        assert "INVALID_ARGUMENT" in r.errtext and "needs TLS" in r.errtext, r
        assert tok not in r.errtext
        r = SecCtl(addr, ["--token", tok, "--allow-insecure"])("list")
        assert r.rc == 1, r
        assert "UNAUTHENTICATED" in r.errtext and "only over TLS" in r.errtext, r
        assert tok not in r.errtext
    srv.assert_not_logged(tok)


# --------------------------------------------------------------------------
# unix peer uid


def test_unix_uid_sees_only_own_jobs(srv):
    os.chmod(srv.base, 0o711)  # let uid 65534 reach the socket
    nobody = SecCtl(srv.addr, nobody=True)
    r = nobody("start", "--", "sleep", "60")
    assert r.rc == 0, r
    mine = r.text.strip()
    root = srv.unix_stub()
    theirs = start_sleep(root, 60)
    r = nobody("list", "--json")
    assert r.rc == 0, r
    assert [j["job_id"] for j in json.loads(r.out)] == [mine]
    for args in (("status", theirs.job_id), ("logs", theirs.job_id),
                 ("signal", theirs.job_id, "KILL"), ("stop", theirs.job_id),
                 ("wait", theirs.job_id)):
        r = nobody(*args)
        assert r.rc != 0 and "NOT_FOUND" in r.errtext, r
        assert "job %s not found" % theirs.job_id in r.errtext, r
    assert_running(root, theirs.job_id, theirs.pid)
    r = nobody("status", mine, "--json")
    assert r.rc == 0, r
    assert list(status_of(root, mine).owner) == ["uid:65534"]
    # root sees both
    assert list_ids(root) == sorted([mine, theirs.job_id])
    r = nobody("stop", mine, "--grace", "100ms")
    assert r.rc == 0, r
    root.Stop(pb.StopRequest(job_id=theirs.job_id, grace_ms=100), timeout=15)


def test_unix_uid_python_client_as_nobody(srv, pki):
    # an independent client: python grpcio running as uid 65534
    import subprocess
    import sys
    os.chmod(srv.base, 0o711)
    root = srv.unix_stub()
    theirs = start_sleep(root, 60)
    code = r"""
import grpc, json, sys
sys.path.insert(0, sys.argv[1])
from runrpc.v1 import jobs_pb2 as pb, jobs_pb2_grpc as g
s = g.JobsStub(grpc.insecure_channel("unix:" + sys.argv[2]))
r = s.Start(pb.StartRequest(command=pb.Command(path="sleep", args=["60"])), timeout=10)
ids = [j.job_id for j in s.List(pb.ListRequest(), timeout=10).jobs]
try:
    s.Status(pb.StatusRequest(job_id=sys.argv[3]), timeout=10)
    res = "visible"
except grpc.RpcError as e:
    res = e.code().name + ":" + e.details()
print(json.dumps([r.job_id, ids, res]))
"""
    import conftest
    stubdir = conftest._STUB_DIR
    os.chmod(stubdir, 0o755)
    for d, dirs, files in os.walk(stubdir):
        for x in dirs:
            os.chmod(os.path.join(d, x), 0o755)
        for x in files:
            os.chmod(os.path.join(d, x), 0o644)
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                        sys.executable, "-c", code, stubdir, srv.sock, theirs.job_id],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60,
                       env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"})
    assert p.returncode == 0, p.stderr.decode()
    mine, ids, res = json.loads(p.stdout)
    assert ids == [mine]
    assert res == "NOT_FOUND:job %s not found" % theirs.job_id, res
    assert list(status_of(root, mine).owner) == ["uid:65534"]
    for j in (mine, theirs.job_id):
        root.Stop(pb.StopRequest(job_id=j, grace_ms=100), timeout=15)


def test_not_found_message_does_not_reveal(srv, pki):
    # the message for another's job must not name an owner or a state
    a, b = srv.tls_stub(pki.alice), srv.tls_stub(pki.bob)
    r = start_sleep(a, 60)
    e = call_error(lambda: status_of(b, r.job_id))
    assert not re.search(r"alice|owner|permission|running|denied", e.details(), re.I), e.details()
    a.Stop(pb.StopRequest(job_id=r.job_id, grace_ms=100), timeout=15)

"""Secrets (docs/dev/SECURITY.md, issue 4): `secret://NAME` env values are
resolved by rund just before exec; the value reaches the job and nothing
else (responses, errors, rund's log, the state dir). Plus rund's refusal to
start with loose permissions on the token file or the secrets dir.
"""

import hashlib
import os
import secrets
import signal
import subprocess

import grpc
import pytest

from conftest import pb
from security_helpers import (SecCtl, SecRund, call_error, list_ids, new_token, pki,  # noqa
                              secrund_factory, token_hash, tls_flags, write_private)

VALUE = "S3cr3t-" + secrets.token_hex(16)
MULTI = "first line " + secrets.token_hex(8) + "\nsecond\n\n"
TOKEN = new_token()
# the job writes the value where the test can read it, and prints only a hash
SCRIPT = 'printf %s "$DB_PASS" > "$OUT"; printf %s "$DB_PASS" | sha256sum; echo "plain=$PLAIN"'


@pytest.fixture
def srv(secrund_factory):
    return secrund_factory(secrets_={"db": VALUE + "\n", "multi": MULTI},
                           tokens={"alice": TOKEN}).start()


def no_value(*msgs):
    for m in msgs:
        data = m.SerializeToString() if hasattr(m, "SerializeToString") else m
        if isinstance(data, str):
            data = data.encode()
        assert VALUE.encode() not in data, "secret value in %r" % (m,)
        assert MULTI.split("\n")[0].encode() not in data, "secret value in %r" % (m,)


def sha(s):
    return hashlib.sha256(s.encode()).hexdigest()


@pytest.mark.parametrize("via", ["tls", "unix"])
def test_secret_reaches_job_and_nothing_else(srv, pki, tmp_path, via):
    stub = srv.tls_stub(pki.alice) if via == "tls" else srv.unix_stub()
    out = tmp_path / "seen"
    env = {"DB_PASS": "secret://db", "OUT": str(out), "PLAIN": "visible"}
    req = pb.StartRequest(command=pb.Command(path="/bin/sh", args=["-c", SCRIPT], env=env),
                          tags=["sec"])
    r = stub.Start(req, timeout=15)
    w = stub.Wait(pb.WaitRequest(job_id=r.job_id), timeout=30)
    assert w.status.state == pb.JOB_STATE_EXITED and w.status.exit_code == 0, w
    # the job saw the value (one trailing newline stripped)
    assert out.read_text() == VALUE
    msgs = list(stub.Logs(pb.LogsRequest(job_id=r.job_id), timeout=15))
    stdout = b"".join(m.data for m in msgs if m.stream == pb.STREAM_STDOUT).decode()
    assert stdout == "%s  -\nplain=visible\n" % sha(VALUE), stdout
    st = stub.Status(pb.StatusRequest(job_id=r.job_id), timeout=10)
    lst = stub.List(pb.ListRequest(), timeout=10)
    assert dict(st.status.request.command.env) == env
    assert [dict(j.request.command.env) for j in lst.jobs] == [env]
    assert dict(w.status.request.command.env)["DB_PASS"] == "secret://db"
    no_value(r, w, st, lst, *msgs)
    # runctl's renderings too
    ctl = SecCtl(srv.tls_addr, tls_flags(pki.alice, pki.ca)) if via == "tls" \
        else SecCtl(srv.addr)
    for args in (("status", r.job_id, "--json"), ("status", r.job_id), ("list", "--json"),
                 ("list",)):
        c = ctl(*args)
        assert c.rc == 0, c
        no_value(c.out, c.err)
    assert "secret://db" in ctl("status", r.job_id, "--json").text
    srv.assert_not_logged(VALUE, TOKEN)
    srv.assert_state_free_of(VALUE)


def test_secret_one_trailing_newline_stripped(srv, tmp_path):
    out = tmp_path / "seen"
    stub = srv.unix_stub()
    r = stub.Start(pb.StartRequest(command=pb.Command(
        path="/bin/sh", args=["-c", 'printf %s "$M" > "$OUT"'],
        env={"M": "secret://multi", "OUT": str(out)})), timeout=15)
    assert stub.Wait(pb.WaitRequest(job_id=r.job_id), timeout=30).status.exit_code == 0
    assert out.read_text() == MULTI[:-1]


def test_secret_in_exec(srv, pki):
    stub = srv.tls_stub(pki.alice)

    def reqs():
        yield pb.ExecRequest(start=pb.ExecStart(command=pb.Command(
            path="/bin/sh", args=["-c", 'printf %s "$DB_PASS" | sha256sum'],
            env={"DB_PASS": "secret://db"})))
        yield pb.ExecRequest(close_stdin=True)

    msgs = list(stub.Exec(reqs(), timeout=30))
    out = b"".join(m.stdout for m in msgs if m.WhichOneof("msg") == "stdout").decode()
    assert out == "%s  -\n" % sha(VALUE)
    assert msgs[-1].exit.exit_code == 0
    no_value(*msgs)
    # runctl exec --env K=secret://NAME
    c = SecCtl(srv.tls_addr, tls_flags(pki.alice, pki.ca))(
        "exec", "--env", "DB_PASS=secret://db", "--", "/bin/sh", "-c",
        'printf %s "$DB_PASS" | sha256sum')
    assert c.rc == 0 and c.text == "%s  -\n" % sha(VALUE), c
    srv.assert_not_logged(VALUE)


def test_unknown_secret_fails_naming_it(srv, pki, tmp_path):
    marker = tmp_path / "ran"
    stub = srv.tls_stub(pki.alice)
    cmd = pb.Command(path="/bin/touch", args=[str(marker)],
                     env={"DB_PASS": "secret://nosuch", "OK": "secret://db"})
    e = call_error(lambda: stub.Start(pb.StartRequest(command=cmd), timeout=15))
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION, (e.code(), e.details())
    assert e.details() == 'env "DB_PASS": secret "nosuch" not found', e.details()

    def reqs():
        yield pb.ExecRequest(start=pb.ExecStart(command=cmd))
        yield pb.ExecRequest(close_stdin=True)

    e2 = call_error(lambda: list(stub.Exec(reqs(), timeout=15)))
    assert e2.code() == grpc.StatusCode.FAILED_PRECONDITION, (e2.code(), e2.details())
    assert 'secret "nosuch" not found' in e2.details()
    no_value(e.details(), e2.details())
    assert not marker.exists()
    assert list_ids(srv.unix_stub()) == []
    c = SecCtl(srv.addr)("start", "--env", "X=secret://nosuch", "--", "true")
    assert c.rc == 1 and "FAILED_PRECONDITION" in c.errtext and "nosuch" in c.errtext, c
    srv.assert_not_logged(VALUE)


@pytest.mark.parametrize("name", ["../secrets/db", "./db", "db/", "a b", "", "x" * 129, "..",
                                  "../../etc/passwd", "/etc/passwd"])
def test_bad_secret_names_never_resolve(srv, tmp_path, name):
    # either refused, or passed through literally: never a file's content
    out = tmp_path / "seen"
    stub = srv.unix_stub()
    try:
        r = stub.Start(pb.StartRequest(command=pb.Command(
            path="/bin/sh", args=["-c", 'printf %s "$S" > "$OUT"'],
            env={"S": "secret://" + name, "OUT": str(out)})), timeout=15)
    except grpc.RpcError as e:
        assert e.code() in (grpc.StatusCode.FAILED_PRECONDITION,
                            grpc.StatusCode.INVALID_ARGUMENT), (e.code(), e.details())
        assert "root:" not in e.details()
        no_value(e.details())
        assert list_ids(stub) == []
        return
    assert stub.Wait(pb.WaitRequest(job_id=r.job_id), timeout=30).status.exit_code == 0
    assert out.read_text() == "secret://" + name


def test_errors_with_secrets_do_not_carry_the_value(srv, pki):
    stub = srv.tls_stub(pki.alice)
    for cmd in (pb.Command(path="/nonexistent/prog", env={"DB_PASS": "secret://db"}),
                pb.Command(path="true", workdir="/nonexistent-dir",
                           env={"DB_PASS": "secret://db"}),
                pb.Command(path="true", env={"DB_PASS": "secret://db", "BAD=KEY": "x"})):
        e = call_error(lambda: stub.Start(pb.StartRequest(command=cmd), timeout=15))
        no_value(e.details())

        def reqs():
            yield pb.ExecRequest(start=pb.ExecStart(command=cmd))
            yield pb.ExecRequest(close_stdin=True)

        try:
            msgs = list(stub.Exec(reqs(), timeout=15))
            no_value(*msgs)
        except grpc.RpcError as e2:
            no_value(e2.details())
    srv.assert_not_logged(VALUE)
    srv.assert_state_free_of(VALUE)


def test_no_secrets_dir_fails_like_unknown(secrund_factory):
    srv = secrund_factory(tls=False)
    srv.start()
    e = call_error(lambda: srv.unix_stub().Start(pb.StartRequest(command=pb.Command(
        path="true", env={"DB_PASS": "secret://db"})), timeout=15))
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION, (e.code(), e.details())
    assert e.details() == 'env "DB_PASS": secret "db" not found', e.details()


# --------------------------------------------------------------------------
# rund refuses to start on loose permissions / malformed files


def expect_refuse(mutate, expect_in_err, **kw):
    """Start rund whose token file / secrets dir `mutate` spoils: exit 1, one line."""
    r = SecRund(tls=False, **kw)
    try:
        mutate(r)
        r.start(wait=False)
        try:
            rc = r.proc.wait(20)
        except subprocess.TimeoutExpired:
            raise AssertionError("rund started despite: %s\n%s" % (expect_in_err,
                                                                    r.stderr_text()))
        err = r.stderr_text()
        r.assert_clean_stderr()
        assert rc == 1, (rc, err)
        lines = [x for x in err.splitlines() if x.strip()]
        assert len(lines) == 1, "expected one line:\n" + err
        for s in expect_in_err:
            assert s in lines[0], (s, lines[0])
        for v in list(r.tokens.values()) + list(r.secrets.values()):
            assert v.strip() not in err
        return lines[0]
    finally:
        if r.proc is not None and r.proc.poll() is None:
            r.proc.send_signal(signal.SIGKILL)
            r.proc.wait()
        import shutil
        shutil.rmtree(r.base, ignore_errors=True)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o602, 0o644])
def test_refuses_loose_token_file(mode):
    expect_refuse(lambda r: os.chmod(r.token_file, mode), [],
                  tokens={"alice": new_token()})


@pytest.mark.parametrize("mode", [0o750, 0o705, 0o770, 0o701])
def test_refuses_loose_secrets_dir(mode):
    expect_refuse(lambda r: os.chmod(r.secrets_dir, mode), [],
                  secrets_={"db": VALUE})


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_refuses_loose_secret_file(mode):
    expect_refuse(lambda r: os.chmod(os.path.join(r.secrets_dir, "db"), mode), [],
                  secrets_={"db": VALUE, "other": "other-" + secrets.token_hex(8)})


@pytest.mark.parametrize("bad", ["alice", "alice sha256:zz", "bad/id " + token_hash("x"),
                                 "alice md5:" + "0" * 32, "alice sha256:" + "0" * 63])
def test_refuses_malformed_token_file(bad):
    good = "bob %s\n" % token_hash(new_token())

    def spoil(r):
        write_private(r.token_file, good + bad + "\n")

    line = expect_refuse(spoil, ["line 2"], tokens={"bob": new_token()})
    assert "rr_" not in line


def test_token_file_messages_name_the_file():
    line = expect_refuse(lambda r: os.chmod(r.token_file, 0o640), [],
                         tokens={"alice": new_token()})
    assert "tokens" in line, line

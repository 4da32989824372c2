"""Secrets (docs/dev/SECURITY.md, issues 4 and 9): `secret://NAME` env values
are resolved by rund just before exec; the value reaches the job and nothing
else (responses, errors, rund's log, the state dir). Each secret has owners
(SECRETS_DIR/secrets.acl, `rund secrets allow|deny|list`): anyone else but
admins gets the NOT_FOUND of a missing secret. Plus rund's refusal to start
with loose permissions on the token file or the secrets dir.
"""

import hashlib
import os
import re
import secrets
import signal
import subprocess

import grpc
import pytest

from conftest import pb
from security_helpers import (SecCtl, SecRund, call_error, list_ids, new_token, pki,  # noqa
                              run_rund_cmd, secrund_factory, token_hash, tls_flags,
                              write_private)

VALUE = "S3cr3t-" + secrets.token_hex(16)
MULTI = "first line " + secrets.token_hex(8) + "\nsecond\n\n"
TOKEN = new_token()
# the job writes the value where the test can read it, and prints only a hash
SCRIPT = 'printf %s "$DB_PASS" > "$OUT"; printf %s "$DB_PASS" | sha256sum; echo "plain=$PLAIN"'


# alice (her certificate) may use both secrets; root on the unix socket is admin
ACL = "# NAME PRINCIPAL\ndb san:uri:runrpc:alice\nmulti san:dns:alice.test\n"


@pytest.fixture
def srv(secrund_factory):
    return secrund_factory(secrets_={"db": VALUE + "\n", "multi": MULTI, "secrets.acl": ACL},
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
    assert e.code() == grpc.StatusCode.NOT_FOUND, (e.code(), e.details())
    assert e.details() == 'env "DB_PASS": secret "nosuch" not found', e.details()

    def reqs():
        yield pb.ExecRequest(start=pb.ExecStart(command=cmd))
        yield pb.ExecRequest(close_stdin=True)

    e2 = call_error(lambda: list(stub.Exec(reqs(), timeout=15)))
    assert e2.code() == grpc.StatusCode.NOT_FOUND, (e2.code(), e2.details())
    assert 'secret "nosuch" not found' in e2.details()
    no_value(e.details(), e2.details())
    assert not marker.exists()
    assert list_ids(srv.unix_stub()) == []
    c = SecCtl(srv.addr)("start", "--env", "X=secret://nosuch", "--", "true")
    assert c.rc == 1 and "NOT_FOUND" in c.errtext and "nosuch" in c.errtext, c
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
        assert e.code() in (grpc.StatusCode.NOT_FOUND,
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
    assert e.code() == grpc.StatusCode.NOT_FOUND, (e.code(), e.details())
    assert e.details() == 'env "DB_PASS": secret "db" not found', e.details()


# --------------------------------------------------------------------------
# owners of secrets (issue 9)

HASH_CMD = ["/bin/sh", "-c", 'printf %s "$X" | sha256sum']


def exec_secret(stub, name, key="X"):
    """Exec printing the hash of secret NAME; returns stdout, or raises."""
    def reqs():
        yield pb.ExecRequest(start=pb.ExecStart(command=pb.Command(
            path=HASH_CMD[0], args=HASH_CMD[1:], env={key: "secret://" + name})))
        yield pb.ExecRequest(close_stdin=True)

    msgs = list(stub.Exec(reqs(), timeout=30))
    assert msgs[-1].exit.exit_code == 0, msgs[-1]
    no_value(*msgs)
    return b"".join(m.stdout for m in msgs if m.WhichOneof("msg") == "stdout").decode()


def start_secret(stub, name, key="X"):
    return stub.Start(pb.StartRequest(command=pb.Command(
        path=HASH_CMD[0], args=HASH_CMD[1:], env={key: "secret://" + name})), timeout=15)


def assert_like_missing(fn_for, name):
    """fn_for(name) fails exactly as fn_for(<a missing name>) does."""
    e = call_error(lambda: fn_for(name))
    missing = call_error(lambda: fn_for("nosuch"))
    assert e.code() == grpc.StatusCode.NOT_FOUND, (e.code(), e.details())
    assert missing.code() == grpc.StatusCode.NOT_FOUND, missing
    assert e.details() == missing.details().replace('"nosuch"', '"%s"' % name), (
        e.details(), missing.details())
    no_value(e.details())


@pytest.fixture
def owners(secrund_factory, pki):
    srv = secrund_factory(secrets_={"db": VALUE + "\n", "multi": MULTI, "secrets.acl": ACL},
                          tokens={"alice": TOKEN}, admins=["san:dns:admin.test"]).start()
    os.chmod(srv.base, 0o711)  # let uid 65534 reach the socket
    return srv


def test_owners_refused_exactly_like_missing(owners, pki):
    bob = owners.tls_stub(pki.bob)
    for name in ("db", "multi"):
        assert_like_missing(lambda n: exec_secret(bob, n), name)
        assert_like_missing(lambda n: start_secret(bob, n), name)
    # alice2 shares san:dns:alice.test with alice: granted multi, not db
    alice2 = owners.tls_stub(pki.alice2)
    assert exec_secret(alice2, "multi") == "%s  -\n" % sha(MULTI[:-1])
    assert_like_missing(lambda n: exec_secret(alice2, n), "db")
    # a token identity is its own principal (token:alice), not the certificate's
    tok = owners.tls_stub(pki.transport, token=TOKEN)
    assert_like_missing(lambda n: exec_secret(tok, n), "db")
    # an unprivileged local user on the unix socket
    c = SecCtl(owners.addr, nobody=True)("exec", "--env", "X=secret://db", "--", *HASH_CMD)
    c2 = SecCtl(owners.addr, nobody=True)("exec", "--env", "X=secret://nosuch", "--", *HASH_CMD)
    assert c.rc == c2.rc != 0, (c, c2)
    assert "NOT_FOUND" in c.errtext and c.errtext == c2.errtext.replace("nosuch", "db"), (c, c2)
    assert list_ids(owners.unix_stub()) == []
    owners.assert_not_logged(VALUE)


def test_owners_admins_and_granted_get_the_value(owners, pki):
    want = "%s  -\n" % sha(VALUE)
    assert exec_secret(owners.tls_stub(pki.alice), "db") == want
    assert exec_secret(owners.tls_stub(pki.admin), "db") == want  # --admin
    assert exec_secret(owners.unix_stub(), "db") == want  # root on the unix socket
    r = start_secret(owners.tls_stub(pki.alice), "db")
    w = owners.tls_stub(pki.alice).Wait(pb.WaitRequest(job_id=r.job_id), timeout=30)
    assert w.status.exit_code == 0
    log = owners.stderr_text()
    # each use logged with identity, job (or exec) and name; never the value
    assert re.search(r'msg="secret used" identity="[^"]*san:uri:runrpc:alice[^"]*" admin=false '
                     r'job="%s" secret="db" env="X"' % r.job_id, log), log[-3000:]
    assert re.search(r'msg="secret used" identity="[^"]*san:uri:runrpc:alice[^"]*" admin=false '
                     r'job="exec" secret="db" env="X"', log), log[-3000:]
    assert re.search(r'msg="secret used" identity="san:dns:admin.test" admin=true '
                     r'job="exec" secret="db"', log), log[-3000:]
    assert re.search(r'msg="secret used" identity="uid:0" admin=true job="exec" secret="db"',
                     log), log[-3000:]
    # refusals are logged for the operator (who may tell refused from missing)
    assert_like_missing(lambda n: exec_secret(owners.tls_stub(pki.bob), n), "db")
    log = owners.stderr_text()
    assert re.search(r'msg="secret refused" identity="san:uri:runrpc:bob" secret="db" env="X" '
                     r'reason=not-an-owner', log), log[-3000:]
    assert re.search(r'msg="secret refused" identity="san:uri:runrpc:bob" secret="nosuch" '
                     r'env="X" reason=not-an-owner', log), log[-3000:]
    owners.assert_not_logged(VALUE, MULTI.split("\n")[0], TOKEN)


def secrets_cmd(srv, *args):
    return run_rund_cmd("secrets", *args, "--secrets-dir", srv.secrets_dir, timeout=30)


def test_owner_changes_take_effect_without_restart(owners, pki):
    pid = owners.proc.pid
    ctl = SecCtl(owners.addr, nobody=True)
    bob = owners.tls_stub(pki.bob)
    want = "%s  -\n" % sha(VALUE)
    assert_like_missing(lambda n: exec_secret(bob, n), "db")
    for p in ("uid:65534", "san:uri:runrpc:bob", "token:alice"):
        r = secrets_cmd(owners, "allow", "db", p)
        assert r.returncode == 0, r.stderr
        assert b"may now be used by " + p.encode() in r.stderr, r.stderr
    c = ctl("exec", "--env", "X=secret://db", "--", *HASH_CMD)
    assert c.rc == 0 and c.text == want, c
    assert exec_secret(bob, "db") == want
    assert exec_secret(owners.tls_stub(pki.transport, token=TOKEN), "db") == want
    assert re.search(r'msg="secret used" identity="uid:65534" admin=false job="exec" '
                     r'secret="db"', owners.stderr_text())
    lst = secrets_cmd(owners, "list", "db")
    assert lst.returncode == 0, lst.stderr
    assert lst.stdout.decode().splitlines() == [
        "db san:uri:runrpc:alice", "db san:uri:runrpc:bob", "db token:alice", "db uid:65534"]
    assert secrets_cmd(owners, "deny", "db", "uid:65534").returncode == 0
    assert secrets_cmd(owners, "deny", "db", "san:uri:runrpc:bob").returncode == 0
    c = ctl("exec", "--env", "X=secret://db", "--", *HASH_CMD)
    assert c.rc != 0 and "NOT_FOUND" in c.errtext, c
    assert_like_missing(lambda n: exec_secret(bob, n), "db")
    assert owners.proc.pid == pid and owners.proc.poll() is None
    st = os.stat(os.path.join(owners.secrets_dir, "secrets.acl"))
    assert st.st_mode & 0o777 == 0o600
    owners.assert_not_logged(VALUE)


def test_secrets_cmd_bad_input(owners):
    for args, rc, want in (
            (("allow", "db", "user:1"), 2, "want uid:N, token:ID or san"),
            (("allow", "../db", "uid:1"), 2, "has a character outside"),
            (("allow", "secrets.acl", "uid:1"), 2, "is reserved"),
            (("allow", "db"), 2, "missing PRINCIPAL"),
            (("allow",), 2, "missing NAME PRINCIPAL"),
            (("grant", "db", "uid:1"), 2, 'unknown verb "grant"'),
            (("list", "db", "x"), 2, 'unexpected argument "x"'),
            (("deny", "db", "uid:4242"), 1, 'is not allowed to "uid:4242": nothing to deny')):
        r = secrets_cmd(owners, *args)
        assert r.returncode == rc and want in r.stderr.decode(), (args, r.returncode, r.stderr)
    r = run_rund_cmd("secrets", "list", "--secrets-dir", "/nonexistent-rr")
    assert r.returncode == 1 and b"/nonexistent-rr" in r.stderr, r.stderr


def test_unusable_owner_list_fails_closed(owners, pki):
    acl = os.path.join(owners.secrets_dir, "secrets.acl")
    os.chmod(acl, 0o644)
    e = call_error(lambda: exec_secret(owners.tls_stub(pki.alice), "db"))
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION, (e.code(), e.details())
    assert e.details() == "the secret store cannot be used now (rund's log says why)"
    assert re.search(r'msg="secret store unusable: secret:// references refused" .*'
                     r'is accessible by group or others', owners.stderr_text())
    # admins do not depend on it
    assert exec_secret(owners.unix_stub(), "db") == "%s  -\n" % sha(VALUE)
    os.chmod(acl, 0o600)
    assert exec_secret(owners.tls_stub(pki.alice), "db") == "%s  -\n" % sha(VALUE)


def test_secret_limits_per_request(secrund_factory):
    big = "b" * (100 * 1024)
    srv = secrund_factory(tls=False, secrets_={"db": VALUE, "big": big}).start()
    stub = srv.unix_stub()
    many = {"K%d" % i: "secret://db" for i in range(33)}
    e = call_error(lambda: stub.Start(pb.StartRequest(command=pb.Command(
        path="true", env=many)), timeout=15))
    assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (e.code(), e.details())
    assert e.details() == "command.env has 33 secret:// references (max 32 per request)"
    # 11 x 100 KiB resolved: over the request's 1 MiB, which counts resolved secrets
    env = {"B%02d" % i: "secret://big" for i in range(11)}
    e = call_error(lambda: stub.Start(pb.StartRequest(command=pb.Command(
        path="true", env=env)), timeout=15))
    assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (e.code(), e.details())
    assert "exceed 1048576 bytes (the request size limit counts resolved secrets)" in \
        e.details(), e.details()
    assert big[:64] not in e.details()
    # the same through Exec, and 10 of them fit
    e = call_error(lambda: exec_secret(stub, "big", key="B" * 31 * 1024))
    assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (e.code(), e.details())
    assert "longer than 131072 bytes (the limit of one env entry)" in e.details(), e.details()
    env = {"B%02d" % i: "secret://big" for i in range(10)}
    r = stub.Start(pb.StartRequest(command=pb.Command(
        path="/bin/sh", args=["-c", 'test ${#B09} = 102400'], env=env)), timeout=15)
    assert stub.Wait(pb.WaitRequest(job_id=r.job_id), timeout=30).status.exit_code == 0
    assert list_ids(stub) == [r.job_id]
    srv.assert_not_logged(VALUE, big[:64])


def test_refuses_malformed_owner_list():
    line = expect_refuse(lambda r: write_private(os.path.join(r.secrets_dir, "secrets.acl"),
                                                 "db uid:0\ndb nobody\n"),
                         ["secrets.acl", "line 2"], secrets_={"db": VALUE})
    assert VALUE not in line


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

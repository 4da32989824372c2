"""Tokens and secrets without signals (issue 15): `rund tokens create`,
`tokens revoke` and new, changed or removed secret files, or a secrets
directory made after start, apply to the next call. A token file that
turns bad is logged once and the tokens loaded before stay.
"""

import os
import re
import shutil

import grpc
import pytest

from conftest import exec_call, pb
from security_helpers import (call_error, pki, run_rund_cmd, secrund_factory,  # noqa: F401
                              start_sleep, write_private)

TOKEN_RE = re.compile(r"^rr_[A-Za-z0-9_-]{43}$")


def create_token(tf, ident):
    p = run_rund_cmd("tokens", "create", ident, "--token-file", tf)
    assert p.returncode == 0, p.stderr
    tok = p.stdout.decode().strip()
    assert TOKEN_RE.match(tok), p.stdout
    return tok


def whoami(stub):
    """The caller's principals as a started job records them."""
    r = start_sleep(stub, 60)
    owner = list(stub.Status(pb.StatusRequest(job_id=r.job_id), timeout=15).status.owner)
    stub.Stop(pb.StopRequest(job_id=r.job_id, grace_ms=100), timeout=15)
    return owner


def test_tokens_created_and_revoked_apply_at_once(tmp_path, secrund_factory, pki):
    tf = str(tmp_path / "tokens")
    write_private(tf, "")
    srv = secrund_factory(token_file=tf).start()
    alice = create_token(tf, "alice")
    assert whoami(srv.tls_stub(pki.transport, token=alice)) == ["token:alice"]
    bob = create_token(tf, "bob")
    alice2 = create_token(tf, "alice")
    assert whoami(srv.tls_stub(pki.transport, token=bob)) == ["token:bob"]
    p = run_rund_cmd("tokens", "list", "--token-file", tf)
    assert p.returncode == 0 and [ln.split()[0] for ln in p.stdout.decode().splitlines()] == [
        "alice", "bob", "alice"], p
    assert alice not in p.stdout.decode()
    p = run_rund_cmd("tokens", "revoke", "alice", "--token-file", tf)
    assert p.returncode == 0 and b"2 tokens" in p.stderr, p.stderr
    assert (os.stat(tf).st_mode & 0o777) == 0o600
    for tok in (alice, alice2):
        e = call_error(lambda: whoami(srv.tls_stub(pki.transport, token=tok)))
        assert e.code() == grpc.StatusCode.UNAUTHENTICATED, e
    assert whoami(srv.tls_stub(pki.transport, token=bob)) == ["token:bob"]
    # revoking one that has none: exit 1, file unchanged
    before = open(tf).read()
    p = run_rund_cmd("tokens", "revoke", "alice", "--token-file", tf)
    assert p.returncode == 1 and b'no token of "alice"' in p.stderr, p.stderr
    assert open(tf).read() == before
    text = srv.stderr_text()
    assert text.count('msg="token file reloaded"') >= 3, text
    srv.assert_not_logged(alice, bob, alice2)


def test_token_file_gone_bad_keeps_old_tokens(tmp_path, secrund_factory, pki):
    tf = str(tmp_path / "tokens")
    write_private(tf, "")
    srv = secrund_factory(token_file=tf).start()
    tok = create_token(tf, "carol")
    assert whoami(srv.tls_stub(pki.transport, token=tok)) == ["token:carol"]
    with open(tf, "a") as f:
        f.write("this line is not a token\n")
    assert whoami(srv.tls_stub(pki.transport, token=tok)) == ["token:carol"]
    assert whoami(srv.tls_stub(pki.transport, token=tok)) == ["token:carol"]
    text = srv.stderr_text()
    assert text.count("token file not reloaded") == 1, text
    assert "line 2" in text, text


@pytest.mark.parametrize("args,code,msg", [
    (["tokens", "revoke"], 2, "missing IDENTITY"),
    (["tokens", "revoke", "bad identity"], 2, "identity"),
    (["tokens", "revoke", "a", "b"], 2, 'unexpected argument "b"'),
    (["tokens", "list", "x"], 2, 'unexpected argument "x"'),
    (["tokens", "delete", "a"], 2, 'unknown verb "delete"'),
])
def test_tokens_bad_arguments(tmp_path, args, code, msg):
    p = run_rund_cmd(*(args + ["--token-file", str(tmp_path / "t")]))
    assert p.returncode == code and msg.encode() in p.stderr, p.stderr


def test_tokens_revoke_refuses_unsafe_or_missing_file(tmp_path):
    tf = str(tmp_path / "tokens")
    p = run_rund_cmd("tokens", "revoke", "a", "--token-file", tf)
    assert p.returncode == 1 and b"cannot open token file" in p.stderr, p.stderr
    write_private(tf, "")
    os.chmod(tf, 0o644)
    p = run_rund_cmd("tokens", "revoke", "a", "--token-file", tf)
    assert p.returncode == 1 and b"group" in p.stderr, p.stderr


def exec_env(stub, key, value):
    """Run printenv KEY with KEY=value; returns (stdout, error code or None)."""
    try:
        _, out, _, _, _ = exec_call(stub, "/usr/bin/printenv", key, env={key: value})
        return out, None
    except grpc.RpcError as e:
        return b"", e.code()


def test_secrets_dir_made_after_start_and_changes(rund_factory):
    r = rund_factory()
    r.start()
    stub = r.stub()
    out, code = exec_env(stub, "S", "secret://db")
    assert code == grpc.StatusCode.NOT_FOUND, (out, code)
    sd = os.path.join(r.state, "secrets")
    os.mkdir(sd, 0o700)
    write_private(os.path.join(sd, "db"), "one\n")
    out, code = exec_env(stub, "S", "secret://db")
    assert code is None and out == b"one\n", (out, code)
    write_private(os.path.join(sd, "db"), "two\n")
    out, code = exec_env(stub, "S", "secret://db")
    assert code is None and out == b"two\n", (out, code)
    os.unlink(os.path.join(sd, "db"))
    out, code = exec_env(stub, "S", "secret://db")
    assert code == grpc.StatusCode.NOT_FOUND, (out, code)
    # the directory replaced by another one: that one is used
    shutil.rmtree(sd)
    os.mkdir(sd, 0o700)
    write_private(os.path.join(sd, "db"), "three\n")
    out, code = exec_env(stub, "S", "secret://db")
    assert code is None and out == b"three\n", (out, code)
    # an unsafe new directory is refused, not used
    shutil.rmtree(sd)
    os.mkdir(sd, 0o755)
    write_private(os.path.join(sd, "db"), "four\n")
    out, code = exec_env(stub, "S", "secret://db")
    assert code == grpc.StatusCode.FAILED_PRECONDITION, (out, code)
    assert b"four" not in out
    assert "accessible by group or others" in r.stderr_text()
    assert 'msg="secret store opened"' in r.stderr_text()

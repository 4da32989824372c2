"""`rund tokens create` and `rund certs issue` (docs/dev/SECURITY.md), and the
embedded-default certificate generation where it can be reached without
touching /run or /var/lib.
"""

import datetime
import hashlib
import os
import re
import shutil
import stat
import subprocess

import grpc
import pytest

from conftest import RUNCTL, pb
from security_helpers import (OPENSSL, call_error, cert_text, list_ids, pki,  # noqa: F401
                              run_openssl, run_rund_cmd, secrund_factory, start_sleep,
                              status_of)

TOKEN_RE = re.compile(r"^rr_[A-Za-z0-9_-]{43}$")


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


# --------------------------------------------------------------------------
# tokens create


def test_tokens_create_prints_once_stores_hash(tmp_path, secrund_factory, pki):
    tf = tmp_path / "tokens"
    p = run_rund_cmd("tokens", "create", "alice@example.test", "--token-file", str(tf))
    assert p.returncode == 0, p.stderr
    lines = p.stdout.decode().splitlines()
    assert len(lines) == 1 and TOKEN_RE.match(lines[0]), p.stdout
    tok = lines[0]
    assert tok.encode() not in p.stderr
    assert mode(tf) == 0o600
    content = tf.read_text()
    assert content == "alice@example.test sha256:%s\n" % hashlib.sha256(tok.encode()).hexdigest()
    assert tok not in content and tok[3:] not in content
    p2 = run_rund_cmd("tokens", "create", "bob", "--token-file", str(tf))
    assert p2.returncode == 0, p2.stderr
    tok2 = p2.stdout.decode().strip()
    assert TOKEN_RE.match(tok2) and tok2 != tok
    assert tf.read_text().splitlines()[1] == "bob sha256:" + hashlib.sha256(
        tok2.encode()).hexdigest()
    assert mode(tf) == 0o600
    # rund accepts the file and the tokens work
    srv = secrund_factory(token_file=str(tf)).start()
    ta = srv.tls_stub(pki.transport, token=tok)
    r = start_sleep(ta, 60)
    assert list(status_of(ta, r.job_id).owner) == ["token:alice@example.test"]
    tb = srv.tls_stub(pki.transport, token=tok2)
    assert list_ids(tb) == []
    e = call_error(lambda: status_of(tb, r.job_id))
    assert e.code() == grpc.StatusCode.NOT_FOUND
    ta.Stop(pb.StopRequest(job_id=r.job_id, grace_ms=100), timeout=15)
    srv.assert_not_logged(tok, tok2)


def test_tokens_create_default_path_in_state_dir(tmp_path):
    state = tmp_path / "state"
    os.mkdir(state, 0o700)  # made by rund's first start
    p = run_rund_cmd("tokens", "create", "ci-bot", "--state-dir", str(state))
    assert p.returncode == 0, p.stderr
    tok = p.stdout.decode().strip()
    assert TOKEN_RE.match(tok)
    tf = state / "tokens"
    assert mode(tf) == 0o600
    assert tf.read_text() == "ci-bot sha256:%s\n" % hashlib.sha256(tok.encode()).hexdigest()


@pytest.mark.parametrize("ident", ["", "has space", "a/b", "x" * 129, "semi;colon", "new\nline"])
def test_tokens_create_bad_identity(tmp_path, ident):
    tf = tmp_path / "tokens"
    p = run_rund_cmd("tokens", "create", ident, "--token-file", str(tf))
    assert p.returncode != 0, p
    assert p.stdout == b"", p.stdout
    assert not tf.exists() or tf.read_text() == ""


# --------------------------------------------------------------------------
# certs issue


def state_with_ca(tmp_path, pki):
    """A state dir whose tls/ holds the test CA (what the embedded default
    would have made)."""
    state = tmp_path / "state"
    tls = state / "tls"
    os.makedirs(tls)
    os.chmod(state, 0o700)
    os.chmod(tls, 0o700)
    for src, dst in ((pki.ca.cert, "ca.pem"), (pki.ca.key, "ca.key")):
        shutil.copy(src, tls / dst)
        os.chmod(tls / dst, 0o600)
    return state


def test_certs_issue_makes_working_client_cert(tmp_path, pki, secrund_factory):
    state = state_with_ca(tmp_path, pki)
    out = tmp_path / "out"
    os.mkdir(out)
    p = run_rund_cmd("certs", "issue", "carol", "--san", "uri:runrpc:carol",
                     "--san", "dns:carol.example.test", "--san", "email:carol@example.test",
                     "--days", "3", "--out", str(out), "--state-dir", str(state))
    assert p.returncode == 0, p.stderr
    crt, key = out / "carol.pem", out / "carol.key"
    printed = p.stdout.decode().split()
    assert str(crt) in printed and str(key) in printed, p.stdout
    assert mode(crt) == 0o600 and mode(key) == 0o600
    txt = cert_text(str(crt))
    # a P-256 key, signed with the digest of the issuer's curve (this CA is P-384)
    assert "ecdsa-with-SHA384" in txt and "NIST CURVE: P-256" in txt, txt
    assert "TLS Web Client Authentication" in txt
    assert "TLS Web Server Authentication" not in txt
    assert "URI:runrpc:carol" in txt and "DNS:carol.example.test" in txt
    assert "email:carol@example.test" in txt
    v = subprocess.run([OPENSSL, "verify", "-CAfile", pki.ca.cert, "-purpose", "sslclient",
                        str(crt)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert v.returncode == 0, v.stdout
    end = run_openssl("x509", "-in", str(crt), "-noout", "-enddate").decode().strip()
    na = datetime.datetime.strptime(end.split("=", 1)[1], "%b %d %H:%M:%S %Y GMT")
    left = na - datetime.datetime.utcnow()
    assert datetime.timedelta(days=2) < left < datetime.timedelta(days=4), end
    # the issued certificate is an identity on a rund trusting that CA
    srv = secrund_factory().start()

    class Issued:
        def pem(self):
            return crt.read_bytes()

        def key_pem(self):
            return key.read_bytes()

    stub = srv.tls_stub(Issued())
    r = start_sleep(stub, 60)
    assert sorted(status_of(stub, r.job_id).owner) == sorted(
        ["san:uri:runrpc:carol", "san:dns:carol.example.test", "san:email:carol@example.test"])
    stub.Stop(pb.StopRequest(job_id=r.job_id, grace_ms=100), timeout=15)


@pytest.mark.parametrize("san", ["foo:bar", "uri:", "dns:", "email:", "ip:999.1.1.1", "nocolon",
                                 "dns:has space", "", "URI"])
def test_certs_issue_bad_san_refused(tmp_path, pki, san):
    state = state_with_ca(tmp_path, pki)
    out = tmp_path / "out"
    os.mkdir(out)
    p = run_rund_cmd("certs", "issue", "eve", "--san", san, "--out", str(out),
                     "--state-dir", str(state))
    assert p.returncode != 0, p.stdout
    assert p.stderr.strip(), "no error message"
    assert os.listdir(out) == []


def test_certs_issue_needs_a_san(tmp_path, pki):
    state = state_with_ca(tmp_path, pki)
    out = tmp_path / "out"
    os.mkdir(out)
    p = run_rund_cmd("certs", "issue", "nosan", "--out", str(out), "--state-dir", str(state))
    assert p.returncode != 0
    assert os.listdir(out) == []


# --------------------------------------------------------------------------
# embedded default: generation path


def test_embedded_default_generation(tmp_path, rund_factory):
    """`rund certs init` makes exactly what rund's first start makes (the
    embedded default itself listens on /run and 127.0.0.1:7734, which a test
    must not take); runctl then finds the admin files by itself."""
    state = tmp_path / "state"
    p = run_rund_cmd("certs", "init", "--state-dir", str(state))
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().strip() == str(state / "tls")
    assert b"made ca server client" in p.stderr
    tls = state / "tls"
    assert mode(tls) == 0o700
    for f in ("ca.pem", "ca.key", "server.pem", "server.key", "client.pem", "client.key"):
        assert mode(tls / f) == 0o600, f
    before = (tls / "ca.pem").read_bytes()
    again = run_rund_cmd("certs", "init", "--state-dir", str(state))
    assert again.returncode == 0 and again.stderr == b""  # nothing to remake
    assert (tls / "ca.pem").read_bytes() == before
    ca = cert_text(str(tls / "ca.pem"))
    assert re.search(r"Subject: CN ?= ?runrpc CA \S+", ca), ca
    assert "NIST CURVE: P-256" in ca and "ecdsa-with-SHA256" in ca
    srv = cert_text(str(tls / "server.pem"))
    assert "DNS:localhost" in srv and "IP Address:127.0.0.1" in srv
    assert "IP Address:0:0:0:0:0:0:0:1" in srv
    assert "TLS Web Server Authentication" in srv
    cl = cert_text(str(tls / "client.pem"))
    assert "URI:runrpc:admin" in cl and "TLS Web Client Authentication" in cl
    assert "CN = admin" in cl or "CN=admin" in cl
    # a rund serving TLS with those files; runctl picks the admin files up by default
    r = rund_factory(extra_args=[
        "--listen", "127.0.0.1:0", "--tls-cert", str(tls / "server.pem"),
        "--tls-key", str(tls / "server.key"), "--client-ca", str(tls / "ca.pem"),
        "--admin", "san:uri:runrpc:admin"]).start()
    m = re.search(r'msg="listening" addr="?127\.0\.0\.1:(\d+)"? tls=true', r.stderr_text())
    assert m, r.stderr_text()
    env = dict(os.environ, RUNRPC_STATE_DIR=str(state))
    for k in ("RUNRPC_TLS_CERT", "RUNRPC_TLS_KEY", "RUNRPC_CA", "RUNRPC_TOKEN"):
        env.pop(k, None)
    out = subprocess.run([RUNCTL, "--addr", "localhost:" + m.group(1), "exec", "--", "echo", "ok"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=30)
    assert out.returncode == 0 and out.stdout == b"ok\n", out.stderr
    for f in ("server.pem", "client.pem"):
        v = subprocess.run([OPENSSL, "verify", "-CAfile", str(tls / "ca.pem"), str(tls / f)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert v.returncode == 0, v.stdout

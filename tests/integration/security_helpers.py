"""Helpers for the security tests (docs/dev/SECURITY.md): a test PKI made with
the openssl CLI, rund started with TLS / h2c listeners, a token file and a
secrets dir, grpcio channels for each identity kind, and log checks.

Fixtures here are imported by the test_security_*.py modules (conftest.py is
left as it is).
"""

import atexit
import datetime
import hashlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time

import grpc
import pytest

from conftest import (MiB, RUNCTL, RUND, Ctl, CtlResult, Rund, check_no_sanitizer, pb, pb_grpc,
                      short_tmpdir)

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"

REFUSED_RE = re.compile(r'^.*msg="tls handshake refused".*$', re.M)
REASON_RE = re.compile(r'reason="((?:[^"\\]|\\.)*)"')

# --------------------------------------------------------------------------
# PKI (openssl CLI)

_REQ_CNF = """\
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = placeholder
[ v3_ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
"""

_CA_CNF = """\
[ ca ]
default_ca = CA_default
[ CA_default ]
dir = {dir}
database = {dir}/index.txt
new_certs_dir = {dir}/newcerts
serial = {dir}/serial
default_md = sha384
policy = policy_any
unique_subject = no
copy_extensions = none
email_in_dn = no
[ policy_any ]
commonName = supplied
"""


def run_openssl(*args, input=None, timeout=60):
    p = subprocess.run([OPENSSL] + list(args), input=input, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError("openssl %s failed (%d): %s" % (
            " ".join(args), p.returncode, p.stderr.decode(errors="replace")))
    return p.stdout


def gen_key(path, kind="ec384"):
    if kind == "ec384":
        run_openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384",
                    "-out", path)
    elif kind == "ec256":
        run_openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-out", path)
    elif kind.startswith("rsa"):
        run_openssl("genpkey", "-algorithm", "RSA", "-pkeyopt",
                    "rsa_keygen_bits:%d" % int(kind[3:]), "-out", path)
    else:
        raise ValueError(kind)
    os.chmod(path, 0o600)


def asn1_time(dt):
    # UTCTime as `openssl ca -startdate/-enddate` wants it
    return dt.astimezone(datetime.timezone.utc).strftime("%y%m%d%H%M%SZ")


class Cert:
    def __init__(self, name, cert, key, sans=()):
        self.name, self.cert, self.key, self.sans = name, cert, key, list(sans)

    def pem(self):
        with open(self.cert, "rb") as f:
            return f.read()

    def key_pem(self):
        with open(self.key, "rb") as f:
            return f.read()

    def principals(self):
        # "URI:x" -> "san:uri:x" (docs/dev/SECURITY.md)
        out = []
        for s in self.sans:
            kind, val = s.split(":", 1)
            kind = {"URI": "uri", "DNS": "dns", "email": "email", "IP": "ip"}[kind]
            out.append("san:%s:%s" % (kind, val))
        return out


class CA:
    """A CA (ECDSA P-384, SHA-384) in its own dir, signing with `openssl ca`."""

    def __init__(self, dir, name):
        self.dir = dir
        self.name = name
        os.makedirs(os.path.join(dir, "newcerts"))
        open(os.path.join(dir, "index.txt"), "w").close()
        with open(os.path.join(dir, "serial"), "w") as f:
            f.write("1000\n")
        self.req_cnf = os.path.join(dir, "req.cnf")
        with open(self.req_cnf, "w") as f:
            f.write(_REQ_CNF)
        self.ca_cnf = os.path.join(dir, "ca.cnf")
        with open(self.ca_cnf, "w") as f:
            f.write(_CA_CNF.format(dir=dir))
        self.key = os.path.join(dir, "ca.key")
        self.cert = os.path.join(dir, "ca.pem")
        gen_key(self.key, "ec384")
        run_openssl("req", "-config", self.req_cnf, "-x509", "-new", "-key", self.key,
                    "-sha384", "-days", "3650", "-subj", "/CN=" + name,
                    "-extensions", "v3_ca", "-out", self.cert)

    def pem(self):
        with open(self.cert, "rb") as f:
            return f.read()

    def issue(self, name, sans, eku="clientAuth", key_kind="ec384", days=30,
              not_before=None, not_after=None, key_usage=None):
        """Issue a leaf certificate; sans like ["URI:runrpc:alice", "DNS:x"]."""
        key = os.path.join(self.dir, name + ".key")
        csr = os.path.join(self.dir, name + ".csr")
        crt = os.path.join(self.dir, name + ".pem")
        ext = os.path.join(self.dir, name + ".ext")
        gen_key(key, key_kind)
        if key_usage is None:
            key_usage = "digitalSignature" + (", keyEncipherment" if key_kind.startswith("rsa")
                                              else "")
        lines = ["[ ext ]", "basicConstraints = critical, CA:FALSE",
                 "keyUsage = critical, " + key_usage,
                 "subjectKeyIdentifier = hash", "authorityKeyIdentifier = keyid"]
        if eku:
            lines.append("extendedKeyUsage = " + eku)
        if sans:
            lines.append("subjectAltName = " + ", ".join(sans))
        with open(ext, "w") as f:
            f.write("\n".join(lines) + "\n")
        run_openssl("req", "-config", self.req_cnf, "-new", "-key", key, "-subj", "/CN=" + name,
                    "-sha384", "-out", csr)
        args = ["ca", "-batch", "-config", self.ca_cnf, "-cert", self.cert, "-keyfile", self.key,
                "-in", csr, "-out", crt, "-notext", "-rand_serial", "-md", "sha384",
                "-extfile", ext, "-extensions", "ext"]
        now = datetime.datetime.now(datetime.timezone.utc)
        if not_before is not None or not_after is not None:
            nb = not_before if not_before is not None else now - datetime.timedelta(hours=1)
            na = not_after if not_after is not None else now + datetime.timedelta(days=days)
            args += ["-startdate", asn1_time(nb), "-enddate", asn1_time(na)]
        else:
            # a little in the past: no clock-skew surprises
            args += ["-startdate", asn1_time(now - datetime.timedelta(hours=1)),
                     "-enddate", asn1_time(now + datetime.timedelta(days=days))]
        run_openssl(*args)
        return Cert(name, crt, key, sans)


class Pki:
    """Every certificate the security tests use, made once per session."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="rr-pki-", dir="/tmp")
        os.chmod(self.dir, 0o755)  # `nobody` runs runctl with some of these
        self.ca = CA(os.path.join(self.dir, "ca"), "runrpc test CA")
        self.other_ca = CA(os.path.join(self.dir, "other"), "runrpc other CA")
        now = datetime.datetime.now(datetime.timezone.utc)
        day = datetime.timedelta(days=1)
        self.server = self.ca.issue("server", ["DNS:localhost", "IP:127.0.0.1", "IP:::1"],
                                    eku="serverAuth")
        self.alice = self.ca.issue("alice", ["URI:runrpc:alice", "DNS:alice.test",
                                             "email:alice@example.test"])
        self.bob = self.ca.issue("bob", ["URI:runrpc:bob"])
        # shares one SAN (DNS:alice.test) with alice, nothing else
        self.alice2 = self.ca.issue("alice2", ["DNS:alice.test", "URI:runrpc:alice-laptop"])
        self.dns_only = self.ca.issue("dnsonly", ["DNS:carol.test"])
        self.email_only = self.ca.issue("emailonly", ["email:dave@example.test"])
        self.admin = self.ca.issue("admin", ["DNS:admin.test"])
        # a client cert that only carries a TLS identity for token calls
        self.transport = self.ca.issue("transport", ["URI:runrpc:transport"])
        # attack certs
        self.foreign = self.other_ca.issue("foreign", ["URI:runrpc:alice"])
        self.expired = self.ca.issue("expired", ["URI:runrpc:alice"],
                                     not_before=now - 30 * day, not_after=now - day)
        self.not_yet = self.ca.issue("notyet", ["URI:runrpc:alice"],
                                     not_before=now + day, not_after=now + 30 * day)
        self.server_auth_only = self.ca.issue("srvonly", ["URI:runrpc:alice"], eku="serverAuth")
        self.rsa1024 = self.ca.issue("rsa1024", ["URI:runrpc:alice"], key_kind="rsa1024")
        self.rsa2048 = self.ca.issue("rsa2048", ["URI:runrpc:alice"], key_kind="rsa2048")
        self.rsa3072 = self.ca.issue("rsa3072", ["URI:runrpc:rsa3072"], key_kind="rsa3072")
        # a server certificate from the other CA (client must refuse it)
        self.foreign_server = self.other_ca.issue("fserver", ["DNS:localhost", "IP:127.0.0.1"],
                                                  eku="serverAuth")
        # a server cert for a name that is not the one dialled
        self.wrong_name_server = self.ca.issue("wserver", ["DNS:elsewhere.test"],
                                               eku="serverAuth")
        for d, _, files in os.walk(self.dir):
            os.chmod(d, 0o755)
            for f in files:
                os.chmod(os.path.join(d, f), 0o644)

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


_PKI = []


@pytest.fixture(scope="session")
def pki():
    # one PKI for the whole session, whichever test module asks first
    if not _PKI:
        _PKI.append(Pki())
        atexit.register(_PKI[0].cleanup)
    return _PKI[0]


# --------------------------------------------------------------------------
# rund with TLS / h2c listeners, tokens, secrets


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def new_token():
    # the shape `rund tokens create` prints: rr_ + 43 base64url chars
    raw = secrets.token_urlsafe(32)
    assert len(raw) == 43
    return "rr_" + raw


def token_hash(token):
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def write_private(path, data, mode=0o600):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    os.chmod(path, mode)


class SecRund(Rund):
    """rund on unix:BASE/rund.sock plus optional TLS and h2c loopback listeners.

    tokens: {identity: token} written (hashed) to BASE/tokens (0600);
    secrets: {name: value} written to BASE/secrets/NAME (dir 0700, files 0600).
    """

    def __init__(self, pki=None, tls=True, h2c=False, tokens=None, secrets_=None, admins=(),
                 allow_insecure_tokens=False, tls12=False, extra_args=(), token_file=None,
                 secrets_dir=None, server_cert=None):
        base = short_tmpdir("rrs-")
        args = []
        self.pki = pki
        self.tls_port = self.h2c_port = None
        if tls:
            srv = server_cert or pki.server
            self.tls_port = free_port()
            args += ["--listen", "127.0.0.1:%d" % self.tls_port, "--tls-cert", srv.cert,
                     "--tls-key", srv.key, "--client-ca", pki.ca.cert]
        if h2c:
            self.h2c_port = free_port()
            args += ["--listen", "h2c:127.0.0.1:%d" % self.h2c_port]
        self.tokens = dict(tokens or {})
        self.token_file = token_file
        if tokens is not None:
            self.token_file = os.path.join(base, "tokens")
            write_private(self.token_file, "".join(
                "%s %s\n" % (ident, token_hash(tok)) for ident, tok in self.tokens.items()))
        if self.token_file:
            args += ["--token-file", self.token_file]
        self.secrets = dict(secrets_ or {})
        self.secrets_dir = secrets_dir
        if secrets_ is not None:
            self.secrets_dir = os.path.join(base, "secrets")
            os.mkdir(self.secrets_dir, 0o700)
            for name, value in self.secrets.items():
                write_private(os.path.join(self.secrets_dir, name), value)
        if self.secrets_dir:
            args += ["--secrets-dir", self.secrets_dir]
        for a in admins:
            args += ["--admin", a]
        if allow_insecure_tokens:
            args.append("--allow-insecure-tokens")
        if tls12:
            args.append("--tls12")
        args += list(extra_args)
        super().__init__(base=base, extra_args=args)
        self._tls_channels = []

    @property
    def tls_addr(self):
        return "127.0.0.1:%d" % self.tls_port

    @property
    def h2c_addr(self):
        return "h2c:127.0.0.1:%d" % self.h2c_port

    def wait_ready(self, timeout=30.0):
        super().wait_ready(timeout)
        # no probe connection (it would log a refusal): rund logs
        # msg="listening" for each listener once it accepts connections
        end = time.monotonic() + timeout
        for port in (self.tls_port, self.h2c_port):
            if port is None:
                continue
            pat = re.compile(r'msg="listening" addr="?(h2c:)?127\.0\.0\.1:%d\b' % port)
            while not pat.search(self.stderr_text()):
                if time.monotonic() > end or self.proc.poll() is not None:
                    raise AssertionError("rund does not listen on 127.0.0.1:%d\n%s"
                                         % (port, self.stderr_text()[-4000:]))
                time.sleep(0.05)

    # -- channels -----------------------------------------------------------

    def _opts(self, extra=()):
        # a private subchannel pool: each channel gets its own connection, so
        # two identities never share one
        return [("grpc.max_receive_message_length", 64 * MiB), ("grpc.enable_retries", 0),
                ("grpc.use_local_subchannel_pool", 1)] + list(extra)

    def tls_channel(self, client=None, ca=None, token=None, server_name=None):
        pki = self.pki
        creds = grpc.ssl_channel_credentials(
            root_certificates=(ca or pki.ca).pem(),
            private_key=client.key_pem() if client else None,
            certificate_chain=client.pem() if client else None)
        if token is not None:
            creds = grpc.composite_channel_credentials(
                creds, grpc.access_token_call_credentials(token))
        extra = [("grpc.ssl_target_name_override", server_name)] if server_name else []
        ch = grpc.secure_channel(self.tls_addr, creds, options=self._opts(extra))
        self._channels.append(ch)
        return ch

    def tls_stub(self, client=None, **kw):
        return pb_grpc.JobsStub(self.tls_channel(client, **kw))

    def h2c_stub(self):
        ch = grpc.insecure_channel("127.0.0.1:%d" % self.h2c_port, options=self._opts())
        self._channels.append(ch)
        return pb_grpc.JobsStub(ch)

    def plain_to_tls_stub(self):
        ch = grpc.insecure_channel(self.tls_addr, options=self._opts())
        self._channels.append(ch)
        return pb_grpc.JobsStub(ch)

    def unix_stub(self):
        ch = grpc.insecure_channel(self.addr, options=self._opts())
        self._channels.append(ch)
        return pb_grpc.JobsStub(ch)

    # -- logs ---------------------------------------------------------------

    def refusals(self):
        return REFUSED_RE.findall(self.stderr_text())

    def wait_refusal(self, before, timeout=10.0):
        """Wait for a new "tls handshake refused" line; return it."""
        end = time.monotonic() + timeout
        while True:
            lines = self.refusals()
            if len(lines) > before:
                return lines[before]
            if time.monotonic() > end:
                raise AssertionError('no new `msg="tls handshake refused"` line in rund stderr '
                                     '(had %d):\n%s' % (before, self.stderr_text()[-3000:]))
            time.sleep(0.05)

    def assert_not_logged(self, *values):
        text = self.stderr_text()
        for v in values:
            assert v and v not in text, "rund's stderr contains %r:\n%s" % (v, text[-3000:])

    def assert_state_free_of(self, *values):
        """No file in the state dir (job.json, ...) holds any of values."""
        for d, _, files in os.walk(self.state):
            for f in files:
                p = os.path.join(d, f)
                try:
                    with open(p, "rb") as fh:
                        data = fh.read()
                except OSError:
                    continue
                for v in values:
                    assert v.encode() not in data, "%s contains %r" % (p, v)


@pytest.fixture
def secrund_factory(pki):
    made = []

    def make(**kw):
        kw.setdefault("pki", pki)
        r = SecRund(**kw)
        made.append(r)
        return r

    yield make
    errors = []
    for r in made:
        try:
            r.stop()
        except AssertionError as e:
            errors.append(str(e))
        finally:
            r.kill()
    for r in made:
        shutil.rmtree(r.base, ignore_errors=True)
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)


# --------------------------------------------------------------------------
# calls


def job_calls(stub, job_id):
    """The by-id calls of the Jobs API, each a thunk."""
    return {
        "Status": lambda: stub.Status(pb.StatusRequest(job_id=job_id), timeout=10),
        "Logs": lambda: list(stub.Logs(pb.LogsRequest(job_id=job_id), timeout=10)),
        "Wait": lambda: stub.Wait(pb.WaitRequest(job_id=job_id), timeout=10),
        "Signal": lambda: stub.Signal(pb.SignalRequest(job_id=job_id, name="KILL"), timeout=10),
        "Stop": lambda: stub.Stop(pb.StopRequest(job_id=job_id, grace_ms=100), timeout=10),
    }


BY_ID = ["Status", "Logs", "Wait", "Signal", "Stop"]


def call_error(fn):
    try:
        fn()
    except grpc.RpcError as e:
        return e
    raise AssertionError("call succeeded; expected an error")


def start_sleep(stub, secs=60, **kw):
    r = stub.Start(pb.StartRequest(command=pb.Command(path="sleep", args=[str(secs)]), **kw),
                   timeout=30)
    return r


def list_ids(stub, **kw):
    return sorted(j.job_id for j in stub.List(pb.ListRequest(**kw), timeout=10).jobs)


def status_of(stub, job_id):
    return stub.Status(pb.StatusRequest(job_id=job_id), timeout=10).status


def assert_not_found_like_unknown(e, job_id, unknown_id, unknown_err):
    """NOT_FOUND with exactly the text an unknown id gets (id swapped)."""
    assert e.code() == grpc.StatusCode.NOT_FOUND, (e.code(), e.details())
    assert unknown_err.code() == grpc.StatusCode.NOT_FOUND, unknown_err
    assert e.details() == unknown_err.details().replace(unknown_id, job_id), (
        e.details(), unknown_err.details())


_NOBODY_RUNCTL = []


def runctl_for_nobody():
    """A copy of runctl that uid 65534 can execute (test.sh installs into a
    0700 temp dir)."""
    if not _NOBODY_RUNCTL:
        d = tempfile.mkdtemp(prefix="rr-nobody-", dir="/tmp")
        os.chmod(d, 0o755)
        atexit.register(shutil.rmtree, d, True)
        dst = os.path.join(d, "runctl")
        shutil.copy(RUNCTL, dst)
        os.chmod(dst, 0o755)
        _NOBODY_RUNCTL.append(dst)
    return _NOBODY_RUNCTL[0]


def as_nobody_argv(argv):
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"] + list(argv)


class SecCtl(Ctl):
    """runctl with extra global flags (TLS, token) before the command."""

    def __init__(self, addr, flags=(), nobody=False):
        super().__init__(addr)
        self.flags = list(flags)
        self.nobody = nobody

    def __call__(self, *args, input=b"", timeout=30, env=None):
        prog = runctl_for_nobody() if self.nobody else RUNCTL
        argv = [prog, "--addr", self.addr] + self.flags + list(args)
        if self.nobody:
            argv = as_nobody_argv(argv)
        e = dict(os.environ)
        for k in ("RUNRPC_TLS_CERT", "RUNRPC_TLS_KEY", "RUNRPC_CA", "RUNRPC_TOKEN",
                  "RUNRPC_ADDR"):
            e.pop(k, None)
        if env:
            e.update(env)
        p = subprocess.run(argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, env=e)
        check_no_sanitizer(p.stderr, "runctl %r" % (args,))
        return CtlResult(args, p.returncode, p.stdout, p.stderr)


def tls_flags(client, ca):
    f = ["--ca", ca.cert]
    if client is not None:
        f = ["--tls-cert", client.cert, "--tls-key", client.key] + f
    return f


def run_rund_cmd(*args, timeout=60, env=None):
    e = dict(os.environ)
    if env:
        e.update(env)
    p = subprocess.run([RUND] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, env=e, stdin=subprocess.DEVNULL)
    check_no_sanitizer(p.stderr, "rund %r" % (args,))
    return p


def cert_text(path):
    return run_openssl("x509", "-in", path, "-noout", "-text").decode()


def s_client(addr, *args, input=b"", timeout=20):
    """openssl s_client; returns (rc, stdout+stderr text)."""
    p = subprocess.run([OPENSSL, "s_client", "-connect", addr] + list(args), input=input,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace")


UNKNOWN_ID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"

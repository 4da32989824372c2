"""Test PKI made with the openssl CLI at test time (ECDSA P-384, SHA-384).

Pki(dir).ca("ca") makes a CA; .leaf(...) issues certificates from it with
chosen SANs, EKU, key type and validity window (openssl ca, so start and end
dates can lie in the past or future)."""
import os
import subprocess

CA_CNF = """
[ ca ]
default_ca = local
[ local ]
dir = {dir}
database = {dir}/{name}.index
serial = {dir}/{name}.serial
new_certs_dir = {dir}
certificate = {dir}/{name}.pem
private_key = {dir}/{name}.key
default_md = sha384
policy = anything
unique_subject = no
copy_extensions = none
[ anything ]
commonName = supplied
"""


def _run(*args, **kw):
    r = subprocess.run(list(args), capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(args), r.stderr))
    return r


def _newkey(kind):
    if kind == "p384":
        return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"]
    if kind == "p224":
        return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-224"]
    if kind.startswith("rsa"):
        return ["-newkey", "rsa:" + kind[3:]]
    raise ValueError(kind)


class Pki:
    def __init__(self, d):
        self.d = d

    def path(self, name, ext):
        return os.path.join(self.d, "%s.%s" % (name, ext))

    def ca(self, name="ca", cn=None):
        _run("openssl", "req", "-x509", *_newkey("p384"), "-sha384", "-nodes",
             "-keyout", self.path(name, "key"), "-out", self.path(name, "pem"),
             "-days", "3650", "-subj", "/CN=" + (cn or "test CA " + name),
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        open(self.path(name, "index"), "w").close()
        with open(self.path(name, "serial"), "w") as f:
            f.write("1000\n")
        with open(self.path(name, "cnf"), "w") as f:
            f.write(CA_CNF.format(dir=self.d, name=name))
        return self.path(name, "pem")

    def leaf(self, name, ca="ca", sans=(), eku="clientAuth", key="p384",
             start=None, end=None, days=30):
        """Issue NAME.pem/NAME.key signed by CA; start/end as YYYYMMDDHHMMSSZ."""
        csr = self.path(name, "csr")
        _run("openssl", "req", "-new", *_newkey(key), "-nodes", "-keyout", self.path(name, "key"),
             "-out", csr, "-subj", "/CN=" + name)
        ext = self.path(name, "ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=critical,CA:FALSE\n")
            f.write("keyUsage=critical,digitalSignature%s\n" %
                    (",keyEncipherment" if key.startswith("rsa") else ""))
            if eku:
                f.write("extendedKeyUsage=%s\n" % eku)
            if sans:
                f.write("subjectAltName=%s\n" % ",".join(sans))
        args = ["openssl", "ca", "-batch", "-notext", "-config", self.path(ca, "cnf"),
                "-in", csr, "-out", self.path(name, "pem"), "-extfile", ext]
        if start:
            args += ["-startdate", start]
        if end:
            args += ["-enddate", end]
        else:
            args += ["-days", str(days)]
        _run(*args)
        os.chmod(self.path(name, "key"), 0o600)
        return self.path(name, "pem"), self.path(name, "key")

    def read(self, name, ext):
        with open(self.path(name, ext), "rb") as f:
            return f.read()


def standard(d):
    """CA + server cert (localhost, 127.0.0.1, ::1) + client cert (URI SAN)."""
    p = Pki(d)
    p.ca("ca")
    p.leaf("server", sans=("DNS:localhost", "IP:127.0.0.1", "IP:::1"), eku="serverAuth")
    p.leaf("client", sans=("URI:runrpc:alice", "DNS:alice.example", "email:alice@example.com"),
           eku="clientAuth")
    return p

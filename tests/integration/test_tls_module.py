"""OpenSSL only for TLS addresses: runctl and librunrpc.so do not link
libssl/libcrypto (no DT_NEEDED); the client's TLS transport is the module
$libdir/runrpc/librunrpc-tls.so, loaded on the first TLS address (beside
librunrpc.so, or ../lib/runrpc from runctl's bin/, else the configured path;
$RUNRPC_TLS_MODULE overrides). A missing or foreign module is a clear error
naming the path, and unix:/h2c: addresses never need it. The server is
rpc-testserver with --probe-method /runrpc.v1.Jobs/List, whose answer says
whether the TLS session was resumed."""
import glob
import os
import re
import shutil
import subprocess
import tempfile

import pytest

import tls_testcerts
from test_tls_transport import RUNCTL, TlsServer

ROOT = os.environ.get("RUNRPC_SOURCE_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
PREFIX = os.environ.get("PREFIX") or os.path.dirname(os.path.dirname(RUNCTL))
LIBDIR = os.path.join(PREFIX, "lib")
MODULE = os.path.join(LIBDIR, "runrpc", "librunrpc-tls.so")
PROBE = "/runrpc.v1.Jobs/List"
OPENSSL = ("libssl.so", "libcrypto.so")


@pytest.fixture(scope="module")
def pki():
    d = tempfile.mkdtemp(prefix="rr-tlsmod-")
    p = tls_testcerts.standard(d)
    yield p
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def server(pki):
    s = TlsServer(pki, "--probe-method", PROBE)
    yield s
    s.stop()


@pytest.fixture
def tmp():
    d = tempfile.mkdtemp(prefix="rr-tlsmod-t-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def no_sanitizer(err):
    assert not re.search(r"ERROR: (Address|Leak)Sanitizer|runtime error:", err), err


def needed(path):
    out = subprocess.run(["readelf", "-d", path], capture_output=True, text=True,
                         check=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def is_openssl(name):
    return os.path.basename(name).startswith(OPENSSL)


def runctl(pki, addr, *args, env=None, exe=RUNCTL):
    e = dict(os.environ, RUNRPC_NO_SESSION_CACHE="1")
    e.pop("RUNRPC_TLS_MODULE", None)
    e.update(env or {})
    argv = [exe, "--addr", addr, "--ca", pki.path("ca", "pem"), "--tls-cert",
            pki.path("client", "pem"), "--tls-key", pki.path("client", "key"), *args]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=e)
    no_sanitizer(r.stderr)
    return r


def probe_answer(r):
    """The server's answer to the List probe: the call went through TLS."""
    m = re.search(r"^runctl: .*UNIMPLEMENTED: tls probe: resumed=([01])$", r.stderr, re.M)
    assert m and r.returncode == 1, (r.returncode, r.stderr)
    return m.group(1)


def loaded(r):
    """Shared objects the dynamic loader opened (LD_DEBUG=files)."""
    return set(re.findall(r"file=(\S+) \[\d+\];\s+(?:needed by|dynamically loaded by)",
                          r.stderr))


def test_runctl_and_librunrpc_do_not_link_openssl():
    so = os.path.join(LIBDIR, "librunrpc.so")
    for path in (RUNCTL, so):
        n = needed(path)
        assert "libc.so.6" in n, (path, n)  # the reading works
        assert not [x for x in n if is_openssl(x)], (path, n)
        ldd = subprocess.run(["ldd", path], capture_output=True, text=True, check=True).stdout
        assert "libnghttp2" in ldd and "libssl" not in ldd and "libcrypto" not in ldd, ldd
    n = needed(MODULE)
    assert "libssl.so.3" in n and "libcrypto.so.3" in n, n
    # the module exports its table and nothing else of ours
    syms = subprocess.run(["nm", "-D", "--defined-only", MODULE], capture_output=True, text=True,
                          check=True).stdout.split("\n")
    ours = [s.split()[-1] for s in syms if re.search(r" (rr|rpc|tls|runrpc)_\w+$", s)]
    assert ours == ["runrpc_tls_module_v1"], ours
    # the pkg-config file does not ask for OpenSSL either
    with open(os.path.join(LIBDIR, "pkgconfig", "runrpc.pc")) as f:
        pc = f.read()
    assert "libssl" not in pc and "libcrypto" not in pc, pc


def test_openssl_loaded_for_tls_addresses_only(server, pki):
    dbg = {"LD_DEBUG": "files"}
    r = runctl(pki, "h2c:" + server.h2c, "list", env=dbg)
    # the call reached the server (its answer, not a connection error)
    assert "UNIMPLEMENTED" in r.stderr and "connect" not in r.stderr, r.stderr
    assert "libnghttp2.so.14" in {os.path.basename(x) for x in loaded(r)}, r.stderr[-2000:]
    assert not [x for x in loaded(r) if is_openssl(x) or "runrpc-tls" in x], loaded(r)
    r = runctl(pki, server.tls, "list", env=dbg)
    assert probe_answer(r) == "0"
    libs = {os.path.basename(x) for x in loaded(r)}
    assert {"librunrpc-tls.so", "libssl.so.3", "libcrypto.so.3"} <= libs, libs
    assert os.path.realpath(MODULE) in {os.path.realpath(x) for x in loaded(r)}


def test_missing_module_is_a_clear_error(server, pki, tmp):
    gone = os.path.join(tmp, "none", "librunrpc-tls.so")
    env = {"RUNRPC_TLS_MODULE": gone}
    r = runctl(pki, server.tls, "list", env=env)
    assert r.returncode == 1
    assert r.stderr == ("runctl: connect: FAILED_PRECONDITION: TLS support is not installed: no "
                        "librunrpc-tls.so at \"%s\" (set RUNRPC_TLS_MODULE to its path)\n" % gone)
    r = runctl(pki, server.tls, "exec", "--", "true", env=env)
    assert r.returncode == 125 and "TLS support is not installed" in r.stderr, r.stderr
    # plaintext addresses do not need it
    r = runctl(pki, "h2c:" + server.h2c, "list", env=env)
    assert "UNIMPLEMENTED" in r.stderr and "TLS support" not in r.stderr, r.stderr


def test_module_found_from_the_program_directory(server, pki, tmp):
    """runctl looks in ../lib/runrpc from its own directory (then the
    configured path), whatever the current directory."""
    bindir = os.path.join(tmp, "bin")
    os.mkdir(bindir)
    exe = os.path.join(bindir, "runctl")
    shutil.copy(RUNCTL, exe)
    here = os.path.join(tmp, "lib", "runrpc", "librunrpc-tls.so")
    r = runctl(pki, server.tls, "list", exe=exe)
    if r.returncode == 1 and "TLS support is not installed" in r.stderr:
        m = re.search(r"no librunrpc-tls\.so at \"([^\"]+)\", \"([^\"]+)\" \(set", r.stderr)
        assert m and os.path.normpath(m.group(1)) == here, r.stderr
        assert os.path.isabs(m.group(2)) and m.group(2).endswith("/runrpc/librunrpc-tls.so")
    else:  # a system-wide install at the configured path answered
        assert probe_answer(r) == "0"
    os.makedirs(os.path.dirname(here))
    shutil.copy(MODULE, here)
    r = runctl(pki, server.tls, "list", exe=exe, env={"LD_DEBUG": "files"})
    assert probe_answer(r) == "0"
    assert os.path.realpath(here) in {os.path.realpath(x) for x in loaded(r)}


@pytest.mark.parametrize("what", ["not-elf", "other-library", "directory"])
def test_foreign_module_is_refused_clearly(server, pki, tmp, what):
    path = os.path.join(tmp, "librunrpc-tls.so")
    if what == "not-elf":
        with open(path, "w") as f:
            f.write("not a shared object\n")
        want = r"cannot load the TLS module \"%s\": .*" % re.escape(path)
    elif what == "other-library":
        shutil.copy(os.path.join(LIBDIR, "librunrpc.so"), path)
        want = (r"\"%s\" is not a runrpc TLS module \(no symbol runrpc_tls_module_v1\)"
                % re.escape(path))
    else:
        os.mkdir(path)
        want = r"cannot load the TLS module \"%s\": .*" % re.escape(path)
    r = runctl(pki, server.tls, "list", env={"RUNRPC_TLS_MODULE": path})
    assert r.returncode == 1
    assert re.fullmatch(r"runctl: connect: FAILED_PRECONDITION: " + want + "\n", r.stderr), \
        r.stderr


LIB_PROGRAM = r"""
#include <runrpc/client.h>
#include <stdio.h>

/* ADDR CA CERT KEY: two connections, each a List call (the probe) */
int main(int argc, char **argv) {
  if (argc != 5)
    return 2;
  runrpc_options o;
  runrpc_options_init(&o);
  o.tls_ca_file = argv[2];
  o.tls_cert_file = argv[3];
  o.tls_key_file = argv[4];
  for (int i = 0; i < 2; i++) {
    runrpc_client *c;
    runrpc_error err;
    if (runrpc_connect(argv[1], &o, &c, &err) < 0) {
      printf("connect %s: %s\n", runrpc_code_name(err.code), err.message);
      return 1;
    }
    runrpc_conn_info ci;
    runrpc_conn_info_get(c, &ci);
    runrpc_job_status *jobs = NULL;
    size_t n = 0;
    int r = runrpc_list(c, RUNRPC_JOB_UNSPECIFIED, NULL, &jobs, &n, &err);
    printf("tls=%d resumed=%d %s\n", ci.tls, ci.resumed, r < 0 ? err.message : "ok");
    if (r == 0)
      runrpc_job_list_free(jobs, n);
    runrpc_close(c);
  }
  return 0;
}
"""


def build_lib_program(tmp, static):
    src = os.path.join(tmp, "prog.c")
    with open(src, "w") as f:
        f.write(LIB_PROGRAM)
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(LIBDIR, "pkgconfig"))
    pc = lambda *a: subprocess.run(["pkg-config", "--define-prefix", *a, "runrpc"],  # noqa: E731
                                   env=env, capture_output=True, text=True,
                                   check=True).stdout.split()
    san = []
    so = glob.glob(os.path.join(LIBDIR, "librunrpc.so*"))
    if so and b"__asan" in open(so[0], "rb").read():
        san = ["-fsanitize=address,undefined"]
    out = os.path.join(tmp, "prog-static" if static else "prog")
    if static:  # the archive itself, then what `pkg-config --static` says it needs
        libs = [os.path.join(LIBDIR, "librunrpc.a")] + [
            x for x in pc("--libs", "--static") if x != "-lrunrpc"]
    else:
        libs = pc("--libs")
    subprocess.run(["cc", "-o", out, src, *pc("--cflags"), *libs, *san], check=True)
    return out


@pytest.mark.parametrize("static", [False, True], ids=["shared", "static"])
def test_librunrpc_over_tls(server, pki, tmp, static):
    prog = build_lib_program(tmp, static)
    assert not [x for x in needed(prog) if is_openssl(x)], needed(prog)
    if static:
        assert not [x for x in needed(prog) if "librunrpc" in x], needed(prog)
    args = [prog, server.tls, pki.path("ca", "pem"), pki.path("client", "pem"),
            pki.path("client", "key")]
    env = dict(os.environ)
    env.pop("RUNRPC_TLS_MODULE", None)
    if static:  # not in bin/: only the configured path, unless told
        r = subprocess.run(args, capture_output=True, text=True, timeout=60, env=env)
        no_sanitizer(r.stderr)
        if r.returncode == 1:
            assert re.match(r"connect FAILED_PRECONDITION: TLS support is not installed: no "
                            r"librunrpc-tls\.so at .*\"/[^\"]*/runrpc/librunrpc-tls\.so\" "
                            r"\(set RUNRPC_TLS_MODULE to its path\)\n$", r.stdout), r.stdout
        env["RUNRPC_TLS_MODULE"] = MODULE
    r = subprocess.run(args, capture_output=True, text=True, timeout=60, env=env)
    no_sanitizer(r.stderr)
    assert r.returncode == 0, (r.stdout, r.stderr)
    # the second connection of the process resumes the first one's session
    assert r.stdout == ("tls=1 resumed=0 tls probe: resumed=0\n"
                        "tls=1 resumed=1 tls probe: resumed=1\n"), r.stdout

"""runctl's client side (issue 9): `localhost` is loopback even without
/etc/hosts (RFC 6761), so TLS to rund's default certificate works in minimal
images; `-v` says which address and TLS files runctl uses.
"""

import os
import shutil
import subprocess

import pytest

from security_helpers import (RUNCTL, pki, secrund_factory, tls_flags)  # noqa: F401

UNSHARE = shutil.which("unshare")


def run_without_hosts(tmp_path, argv, timeout=20):
    """argv in a mount namespace where /etc/hosts is an empty file."""
    empty = tmp_path / "hosts"
    empty.write_text("")
    script = 'mount --bind "$1" /etc/hosts || exit 99; shift; ' \
             'if getent hosts localhost >/dev/null; then echo HOSTS_RESOLVES >&2; fi; exec "$@"'
    return subprocess.run([UNSHARE, "-m", "--propagation", "private", "sh", "-c", script, "sh",
                           str(empty)] + list(argv),
                          capture_output=True, timeout=timeout, env=clean_env())


def clean_env():
    e = dict(os.environ, RUNRPC_STATE_DIR="/nonexistent", RUNRPC_NO_SESSION_CACHE="1")
    for k in ("RUNRPC_TLS_CERT", "RUNRPC_TLS_KEY", "RUNRPC_CA", "RUNRPC_TOKEN", "RUNRPC_ADDR"):
        e.pop(k, None)
    return e


@pytest.mark.skipif(UNSHARE is None or os.geteuid() != 0, reason="needs unshare -m as root")
def test_localhost_without_etc_hosts(secrund_factory, pki, tmp_path):
    srv = secrund_factory().start()
    port = srv.tls_port
    argv = [RUNCTL, "--addr", "localhost:%d" % port] + tls_flags(pki.alice, pki.ca) + \
        ["exec", "--", "echo", "ok"]
    r = run_without_hosts(tmp_path, argv)
    err = r.stderr.decode()
    assert r.returncode == 0 and r.stdout == b"ok\n", (r.returncode, err)
    # the namespace really had no name for localhost
    assert "HOSTS_RESOLVES" not in err, "getent still resolves localhost: test proves nothing"
    # any case, a final dot, and names under .localhost too
    for host in ("LocalHost.", "rund.localhost"):
        argv = [RUNCTL, "--addr", "%s:%d" % (host, port), "--server-name", "localhost"] + \
            tls_flags(pki.alice, pki.ca) + ["exec", "--", "true"]
        r = run_without_hosts(tmp_path, argv)
        assert r.returncode == 0, (host, r.stderr)
    # a name that is not localhost still goes through the resolver, and fails
    argv = [RUNCTL, "--addr", "nosuch.invalid:%d" % port] + tls_flags(pki.alice, pki.ca) + \
        ["exec", "--", "true"]
    r = run_without_hosts(tmp_path, argv)
    assert r.returncode != 0
    assert 'cannot resolve "nosuch.invalid"' in r.stderr.decode(), r.stderr


def test_verbose_names_address_and_files(secrund_factory, pki):
    srv = secrund_factory(tokens={"alice": "rr_" + "a" * 43}).start()
    argv = [RUNCTL, "-v", "--addr", srv.tls_addr] + tls_flags(pki.alice, pki.ca) + \
        ["exec", "--", "true"]
    r = subprocess.run(argv, capture_output=True, timeout=30, env=clean_env())
    err = r.stderr.decode()
    assert r.returncode == 0, err
    assert "runctl: address: %s (TLS)\n" % srv.tls_addr in err, err
    assert "runctl: CA file: %s (--ca)\n" % pki.ca.cert in err, err
    assert "runctl: client certificate: %s (--tls-cert)\n" % pki.alice.cert in err, err
    assert "runctl: client key: %s (--tls-key)\n" % pki.alice.key in err, err
    assert "runctl: connected: TLS 1.3" in err, err
    # from the environment, and no client certificate at all
    env = dict(clean_env(), RUNRPC_CA=pki.ca.cert, RUNRPC_TOKEN="rr_" + "a" * 43)
    r = subprocess.run([RUNCTL, "-v", "--addr", srv.tls_addr, "list"], capture_output=True,
                       timeout=30, env=env)
    err = r.stderr.decode()
    assert "runctl: CA file: %s ($RUNRPC_CA)\n" % pki.ca.cert in err, err
    assert "runctl: client certificate: none\n" in err, err
    assert "runctl: bearer token: given (not shown)\n" in err and "a" * 43 not in err, err
    # a unix socket: no TLS files
    r = subprocess.run([RUNCTL, "-v", "--addr", srv.addr, "list"], capture_output=True,
                       timeout=30, env=clean_env())
    err = r.stderr.decode()
    assert r.returncode == 0, err
    assert err == "runctl: address: %s (unix socket, plaintext)\n" % srv.addr, err
    # without -v: nothing
    r = subprocess.run([RUNCTL, "--addr", srv.addr, "list"], capture_output=True, timeout=30,
                       env=clean_env())
    assert r.returncode == 0 and r.stderr == b"", r.stderr

"""A local user on the unix socket runs commands as itself, never as rund's
user: the socket is world-connectable, so anything else would hand every
local user root."""
import os
import subprocess

import pytest

from conftest import RUNCTL

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as nobody")


def as_nobody(rund, *args, input=b""):
    os.chmod(rund.base, 0o755)  # nobody must reach the socket
    return subprocess.run(NOBODY + [RUNCTL, "--addr", rund.addr] + list(args), input=input,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)


def test_exec_runs_as_the_calling_uid(rund, ctl):
    p = as_nobody(rund, "exec", "--", "id", "-u")
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"65534\n"
    # root's own commands still run as root
    assert ctl("exec", "--", "id", "-u").out == b"0\n"


def test_started_job_runs_as_the_calling_uid(rund, tmp_path):
    p = as_nobody(rund, "start", "--", "sh", "-c", "id -u; id -G; touch /root/rr-runas-probe")
    assert p.returncode == 0, p.stderr
    job = p.stdout.decode().strip()
    w = as_nobody(rund, "wait", job)
    assert w.returncode == 1  # touch was refused
    logs = as_nobody(rund, "logs", job)
    assert logs.stdout == b"65534\n65534\n"
    assert b"Permission denied" in logs.stderr
    assert not os.path.exists("/root/rr-runas-probe")


def test_workdir_is_entered_with_the_callers_rights(rund):
    os.makedirs("/tmp/rr-runas-private", mode=0o700, exist_ok=True)
    try:
        p = as_nobody(rund, "exec", "--workdir", "/tmp/rr-runas-private", "--", "pwd")
        assert p.returncode == 125
        assert b"INVALID_ARGUMENT" in p.stderr and b"Permission denied" in p.stderr
    finally:
        os.rmdir("/tmp/rr-runas-private")


def test_command_is_looked_up_with_the_callers_rights(rund):
    # rund (root) must not tell a local user which files exist where that
    # user cannot look: a present and an absent file behind a 0700 directory
    # get the same answer
    d = "/tmp/rr-runas-hidden"
    os.makedirs(d, mode=0o700, exist_ok=True)
    try:
        with open(d + "/tool", "w") as f:
            f.write("#!/bin/sh\necho secret\n")
        os.chmod(d + "/tool", 0o755)
        there = as_nobody(rund, "exec", "--", d + "/tool")
        absent = as_nobody(rund, "exec", "--", d + "/absent")
        assert there.returncode == absent.returncode != 0, (there, absent)
        assert b"PERMISSION_DENIED" in there.stderr and b"PERMISSION_DENIED" in absent.stderr
        assert b"secret" not in there.stdout
        # through PATH too, and a plain miss is still NOT_FOUND
        p = as_nobody(rund, "exec", "--env", "PATH=%s:/usr/bin" % d, "--", "tool")
        assert p.returncode != 0 and b"PERMISSION_DENIED" in p.stderr, p
        p = as_nobody(rund, "exec", "--", "rr-no-such-command")
        assert p.returncode == 127 and b"NOT_FOUND" in p.stderr, p
        assert as_nobody(rund, "exec", "--", "true").returncode == 0
        assert as_nobody(rund, "exec", "--env", "PATH=/nonexistent:/bin", "--", "true").returncode == 0
    finally:
        for f in ("tool",):
            try:
                os.unlink(os.path.join(d, f))
            except FileNotFoundError:
                pass
        os.rmdir(d)

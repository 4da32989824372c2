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

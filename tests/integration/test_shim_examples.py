"""examples/ run against the installed runrpc: each must exit 0 and print
what it promises (their own checks are exact: chain of pids, order and
count of numbers, results in request order)."""

import os
import re
import subprocess

import pytest

from conftest import ROOT, SANITIZER_RE
from shim_helpers import RUNRPC

EXAMPLES = os.path.join(ROOT, "examples")


def run_example(name, *args, timeout=120):
    env = dict(os.environ, RUNRPC=RUNRPC, RUNRPC_PROTO_DIR=os.path.join(ROOT, "proto"))
    p = subprocess.run(["/usr/bin/python3", os.path.join(EXAMPLES, name)] + list(args),
                       capture_output=True, timeout=timeout, env=env, cwd=EXAMPLES)
    out, err = p.stdout.decode(), p.stderr.decode("utf-8", "replace")
    assert p.returncode == 0, out + err
    assert not SANITIZER_RE.search(err), err[-6000:]
    return out


def test_forktest_five_deep():
    out = run_example("forktest.py", "5")
    lines = out.splitlines()
    assert [int(m.group(1)) for m in (re.match(r"depth (\d+) pid", line) for line in lines)
            if m] == [0, 1, 2, 3, 4, 5]
    assert "forked 5 deep" in out


@pytest.mark.timeout(180)
def test_pipeline_exact():
    out = run_example("pipeline.py", "5", "3000")
    assert "3000 numbers through 5 forked runrpc stages (each adds one): exact" in out


def test_batchtest():
    out = run_example("batchtest.py")
    assert "4: not started: command \"no-such-command\" not found" in out
    assert "7: pid" in out and "exit 6" in out


def test_reflection_client():
    out = run_example("reflection_client.py", "sh", "-c", "echo from-$0", "reflected")
    assert "commander.Commander" in out.splitlines()[0]
    assert "from-reflected\nexit 0\n" in out


def test_pty_cli_on_a_terminal():
    """Typed lines on a pty: each runs through Commander.Shell; cd; the
    prompt's last status; a bad directory; exit."""
    import pty
    import select
    import time
    env = dict(os.environ, RUNRPC=RUNRPC, RUNRPC_PROTO_DIR=os.path.join(ROOT, "proto"))
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(EXAMPLES)
        os.execve("/usr/bin/python3", ["python3", "pty_cli.py"], env)
    out = b""

    def read_until(token, timeout=60):
        nonlocal out
        end = time.monotonic() + timeout
        while token not in out and time.monotonic() < end:
            r, _, _ = select.select([fd], [], [], 0.5)
            if r:
                try:
                    out += os.read(fd, 65536)
                except OSError:
                    break
        assert token in out, out.decode("utf-8", "replace")

    read_until(b"runrpc / [0]$ ")
    os.write(fd, b"echo hello from $0; false\n")
    read_until(b"runrpc / [1]$ ")
    assert b"hello from /bin/sh" in out
    os.write(fd, b"cd /tmp\n")
    read_until(b"runrpc /tmp [1]$ ")
    os.write(fd, b"pwd\n")
    read_until(b"runrpc /tmp [0]$ ")
    os.write(fd, b"cd /no/such/dir\n")
    read_until(b"NOT_FOUND")
    os.write(fd, b"exit\n")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    text = out.decode("utf-8", "replace")
    assert "/tmp\r\n" in text
    assert not SANITIZER_RE.search(text)

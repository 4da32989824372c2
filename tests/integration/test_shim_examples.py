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

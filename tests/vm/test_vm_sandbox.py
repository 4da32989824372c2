"""Sandbox profiles on cgroup v2 (tests/vm/run.py): namespaces and the
job's cgroup together, CLONE_INTO_CGROUP with namespace flags, a cgroup
namespace rooted at the job's cgroup, strict's limits enforced by v2."""
import json
import os
import subprocess

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RUNCTL = os.environ.get("RUNCTL") or os.path.join(ROOT, "build", "src", "runctl", "runctl")
TARGET = {k: os.environ.get("RUNRPC_TARGET_" + k) for k in ("ADDR", "CERT", "KEY", "CA")}

pytestmark = pytest.mark.skipif(not all(TARGET.values()),
                                reason="no VM target (run tests/vm/run.py)")


def ctl(*args, timeout=120):
    cmd = [RUNCTL, "--addr", TARGET["ADDR"], "--tls-cert", TARGET["CERT"],
           "--tls-key", TARGET["KEY"], "--ca", TARGET["CA"], "--no-session-cache"] + list(args)
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout)


def fields(text):
    return dict(l.split(":", 1) for l in text.splitlines() if ":" in l)


def test_strict_on_cgroup_v2():
    r = ctl("exec", "--profile", "strict", "--", "/bin/sh", "-c",
            "echo pid=$$; cat /proc/self/cgroup; ls /sys/class/net; cat /proc/self/status;"
            " cat /sys/fs/cgroup/pids.max /sys/fs/cgroup/memory.max 2>/dev/null; true")
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    lines = out.splitlines()
    assert int(lines[0].split("=")[1]) < 10
    assert lines[1] == "0::/", "the cgroup namespace is rooted at the job's cgroup: %r" % lines
    assert lines[2] == "lo"
    st = {k: v.strip() for k, v in fields(out).items()}
    assert st["CapEff"] == "0000000000000000" and st["NoNewPrivs"] == "1"
    assert st["Seccomp"] == "2"


def test_strict_limits_are_enforced_by_v2():
    r = ctl("start", "--profile", "strict", "--", "/bin/sh", "-c",
            # sleeps that outlast the loop (it takes 20 s under TCG on a busy
            # host: sleep 5 ended before 256 were alive at once); the pid
            # namespace's init ends them when the shell exits
            "i=0; while [ $i -lt 400 ]; do sleep 120 & i=$((i+1)); done 2>/dev/null; exit 0")
    assert r.returncode == 0, r.stderr
    jid = r.stdout.decode().strip()
    w = ctl("wait", jid, timeout=180)
    st = json.loads(ctl("status", jid, "--json").stdout)
    assert st["profile"] == "strict"
    assert st["limits"]["pids_max"] == 256
    assert st["usage"]["pids_refused"] > 0, st["usage"]
    assert w.returncode in (0, 1, 2), w


def test_default_with_limits_and_signals():
    r = ctl("exec", "--profile", "default", "--max-pids", "8", "--", "/bin/sh", "-c",
            "cat /proc/self/cgroup; kill -TERM $$")
    assert r.returncode == 128 + 15, (r.returncode, r.stderr)
    assert r.stdout.decode().splitlines()[0] == "0::/"


def test_exec_in_a_job_on_cgroup_v2():
    """exec --in: the job's namespaces, a child of its v2 cgroup (the cgroup
    namespace shows it below the job's root), the job's pids.max holding
    for what it starts, and the job's stop ending it."""
    r = ctl("start", "--profile", "default", "--hostname", "vmjob", "--max-pids", "12", "--",
            "/bin/sleep", "600")
    assert r.returncode == 0, r.stderr
    jid = r.stdout.decode().strip()
    try:
        r = ctl("exec", "--in", jid, "--", "/bin/sh", "-c",
                "hostname; cat /proc/self/cgroup; echo pid=$$")
        assert r.returncode == 0, r.stderr
        lines = r.stdout.decode().splitlines()
        assert lines[0] == "vmjob", lines
        assert lines[1].startswith("0::/exec-"), lines  # below the job's cgroup
        assert int(lines[2].split("=")[1]) < 20, lines  # in the job's pid namespace
        r = ctl("exec", "--in", jid, "--", "/bin/sh", "-c",
                "i=0; while [ $i -lt 30 ]; do sleep 60 & i=$((i+1)); done 2>/dev/null; exit 0")
        st = json.loads(ctl("status", jid, "--json").stdout)
        assert st["state"] == "running", st
        assert st["usage"]["pids_refused"] > 0, st["usage"]  # the job's limit held
    finally:
        ctl("stop", jid, "--grace", "0s")
    w = ctl("wait", jid, timeout=180)
    assert w.returncode == 128 + 15 or w.returncode == 128 + 9, w

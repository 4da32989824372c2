"""Smoke test of the cgroup v2 VM (tests/vm/run.py): runctl on the host talks
TLS to rund in the VM, jobs run in a cgroup v2 hierarchy with the cpu, memory,
io and pids controllers, and exit codes pass through.

Needs RUNRPC_TARGET_ADDR, _CERT, _KEY, _CA (set by run.py); skipped without.
"""

import json
import os
import re
import subprocess
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RUNCTL = os.environ.get("RUNCTL") or os.path.join(ROOT, "build", "src", "runctl", "runctl")
TARGET = {k: os.environ.get("RUNRPC_TARGET_" + k) for k in ("ADDR", "CERT", "KEY", "CA")}

pytestmark = pytest.mark.skipif(not all(TARGET.values()),
                                reason="no VM target (run tests/vm/run.py)")


def ctl(*args, timeout=60):
    cmd = [RUNCTL, "--addr", TARGET["ADDR"], "--tls-cert", TARGET["CERT"],
           "--tls-key", TARGET["KEY"], "--ca", TARGET["CA"], "--no-session-cache"] + list(args)
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout)


def test_job_runs_in_a_cgroup_v2_hierarchy():
    r = ctl("exec", "--", "/bin/cat", "/proc/self/cgroup")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    # v2 only: a single "0::/path" line, no v1 controller lines
    assert len(lines) == 1 and lines[0].startswith("0::/"), lines


def test_layout_below_a_delegated_cgroup():
    """rund started in /rund.service (as under systemd with Delegate=yes) has
    moved itself into a leaf of its subtree; a command with limits runs in a
    cgroup of its own below the subtree's jobs/."""
    r = ctl("exec", "--", "/bin/sh", "-c", "cat /proc/$(cat /run/rund.pid)/cgroup")
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"0::/rund\.service/runrpc-[0-9a-f]{12}/supervisor\n",
                        r.stdout.decode()), r.stdout
    r = ctl("exec", "--max-pids", "10", "--", "/bin/cat", "/proc/self/cgroup")
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"0::/rund\.service/runrpc-[0-9a-f]{12}/jobs/exec-[0-9A-Z]{26}\n",
                        r.stdout.decode()), r.stdout
    # controllers reach the job level
    r = ctl("exec", "--", "/bin/sh", "-c",
            "cat /sys/fs/cgroup/rund.service/runrpc-*/jobs/cgroup.subtree_control")
    assert {"cpu", "memory", "io", "pids"} <= set(r.stdout.decode().split()), r.stdout


def test_memory_limit_files():
    """--max-memory writes memory.max and, as v1's memsw, no swap."""
    r = ctl("exec", "--max-memory", "64M", "--", "/bin/sh", "-c",
            "d=/sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup); "
            "cat $d/memory.max $d/memory.swap.max")
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().split() == [str(64 << 20), "0"], r.stdout


def test_guest_kernel_offers_the_controllers():
    r = ctl("exec", "--", "/bin/cat", "/sys/fs/cgroup/cgroup.controllers")
    assert r.returncode == 0, r.stderr
    have = set(r.stdout.decode().split())
    assert {"cpu", "memory", "io", "pids"} <= have, have


def test_guest_is_not_the_host():
    # a different kernel than the host's proves the calls really cross into the VM
    r = ctl("exec", "--", "/bin/uname", "-r")
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().strip() != os.uname().release


def test_exit_codes_pass_through():
    assert ctl("exec", "--", "/bin/true").returncode == 0
    assert ctl("exec", "--", "/bin/sh", "-c", "exit 42").returncode == 42
    # killed by SIGKILL: 128 + 9
    assert ctl("exec", "--", "/bin/sh", "-c", "kill -9 $$").returncode == 137


def test_io_file_is_on_a_block_device_with_direct_io():
    path = os.environ.get("RUNRPC_TARGET_IO_FILE")
    if not path:
        pytest.skip("RUNRPC_TARGET_IO_FILE not set")
    r = ctl("exec", "--", "/bin/sh", "-c",
            "dd if=/dev/zero of=%s bs=64k count=16 oflag=direct 2>&1 && "
            "stat -c %%s %s && rm -f %s" % (path, path, path))
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert r.stdout.decode().split()[-1] == str(64 * 1024 * 16), r.stdout


def test_commands_without_limits_get_a_cgroup():
    """Issue 9: an Exec and a job without limits run in a cgroup of their own
    below jobs/, not in rund's leaf (rund's alone: clone3 places the command,
    and rund-waiter moves itself into the job's cgroup as it starts)."""
    r = ctl("exec", "--", "/bin/cat", "/proc/self/cgroup")
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"0::/rund\.service/runrpc-[0-9a-f]{12}/jobs/exec-[0-9A-Z]{26}\n",
                        r.stdout.decode()), r.stdout
    r = ctl("start", "--", "/bin/sleep", "300")
    assert r.returncode == 0, r.stderr
    jid = r.stdout.decode().strip()
    try:
        r = ctl("status", jid, "--json")
        assert r.returncode == 0, r.stderr
        s = json.loads(r.stdout)
        assert s["cgroup"] == "v2" and s["limits"] is None, s
        for _ in range(50):  # the waiter moves itself just after the start
            r = ctl("exec", "--", "/bin/sh", "-c",
                    "cat /sys/fs/cgroup/rund.service/runrpc-*/jobs/%s/cgroup.procs; echo --; "
                    "cat /sys/fs/cgroup/rund.service/runrpc-*/supervisor/cgroup.procs" % jid)
            assert r.returncode == 0, r.stderr
            job, sup = r.stdout.decode().split("--\n")
            if len(job.split()) == 2:
                break
            time.sleep(0.1)
        assert len(job.split()) == 2, r.stdout  # rund-waiter and the command
        assert len(sup.split()) == 1, r.stdout  # rund alone
    finally:
        ctl("stop", jid, "--grace", "0")


@pytest.mark.timeout(300)  # a TLS handshake per runctl call, under TCG
def test_running_jobs_hold_one_fd_each():
    """Issue 16 on v2: a running job (limits or not) costs rund its pidfd
    only: no log fds, no cgroup directory or cgroup.procs fd."""
    count = ["exec", "--", "/bin/sh", "-c", "ls /proc/$(cat /run/rund.pid)/fd | wc -l"]
    r = ctl(*count)
    assert r.returncode == 0, r.stderr
    before = int(r.stdout)
    jobs = []
    try:
        for k in range(8):
            limits = ["--max-pids", "10"] if k % 2 else []
            r = ctl("start", *limits, "--", "/bin/sleep", "300")
            assert r.returncode == 0, r.stderr
            jobs.append(r.stdout.decode().strip())
        r = ctl(*count)
        assert r.returncode == 0, r.stderr
        held = int(r.stdout) - before
        assert held <= 8 + 3, "8 running jobs hold %d fds" % held
    finally:
        for jid in jobs:
            ctl("stop", jid, "--grace", "0")

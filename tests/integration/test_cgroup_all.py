"""Every job in a cgroup of its own (issue 9): with or without limits, a job
or Exec runs outside rund's cgroup when rund has cgroups, so a stop, a
timeout or a dropped Exec stream kills its whole tree (setsid daemons too);
a restarted rund adopts plain jobs with their cgroups; --no-cgroups keeps
them in rund's cgroup as before. Local rund on this (cgroup v1) host; the v2
side runs in the VM (tests/vm/test_vm_smoke.py)."""

import json
import os
import re
import signal
import time

import pytest

from conftest import Ctl, pid_alive, wait_pid_gone

# hierarchies a job without limits gets on v1 (its kill and its usage)
PLAIN_V1 = ("freezer", "cpuacct")


def cgroups_of(pid):
    """{controller or "": path} from /proc/PID/cgroup ("" for the v2 line)."""
    out = {}
    with open("/proc/%d/cgroup" % pid) as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            for c in ctrls.split(",") if ctrls else [""]:
                out[c] = path
    return out


def has_cgroups(ctl):
    r = ctl("exec", "--max-pids", "100", "--", "true")
    return r.rc == 0


@pytest.fixture
def cg_ctl(rund, ctl):
    if not has_cgroups(ctl) or not os.path.exists("/sys/fs/cgroup/freezer/cgroup.procs"):
        pytest.skip("no cgroup v1 with a freezer that rund may use here")
    return ctl


def status(ctl, jid):
    r = ctl("status", jid, "--json")
    assert r.rc == 0, r
    return json.loads(r.out)


def start(ctl, script, *opts):
    r = ctl("start", *opts, "--", "/bin/sh", "-c", script)
    assert r.rc == 0, r
    return r.text.strip()


def daemon_script(pidfile):
    """A job whose grandchild leaves its process group and session (setsid)
    and whose parent exits: only the cgroup still holds it."""
    inner = "echo \\$\\$ > %s.tmp; mv %s.tmp %s; exec sleep 300" % (pidfile, pidfile, pidfile)
    return '(setsid sh -c "%s" &); sleep 300; :' % inner


def read_pid(pidfile, timeout=15):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with open(pidfile) as f:
                t = f.read().strip()
            if t.isdigit():
                return int(t)
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    raise AssertionError("no pid in %s" % pidfile)


def job_dir(rund_pid, ctrl, jid):
    """/sys/fs/cgroup/CTRL/<rund's cgroup>/runrpc-<hash>/JID, found by glob."""
    own = cgroups_of(rund_pid)[ctrl]
    base = "/sys/fs/cgroup/%s%s" % (ctrl, own.rstrip("/"))
    for name in os.listdir(base):
        if re.fullmatch(r"runrpc-[0-9a-f]{12}", name) and os.path.isdir(
                os.path.join(base, name, jid)):
            return os.path.join(base, name, jid)
    return None


def kill_quietly(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_plain_job_runs_outside_rund_cgroup(rund, cg_ctl):
    ctl = cg_ctl
    jid = start(ctl, "sleep 300")
    try:
        s = status(ctl, jid)
        assert s["cgroup"] == "v1" and s["limits"] is None, s
        job = cgroups_of(s["pid"])
        mine = cgroups_of(rund.pid)
        for c in PLAIN_V1:
            assert job[c] != mine[c], (c, job, mine)
            assert re.search(r"/runrpc-[0-9a-f]{12}/%s$" % jid, job[c]), (c, job[c])
        # not in the hierarchies of limits it does not have (documented)
        for c in ("memory", "cpu", "blkio", "pids"):
            assert job[c] == mine[c], (c, job, mine)
        # rund's own cgroup in those hierarchies lists no job process
        for c in PLAIN_V1:
            with open("/sys/fs/cgroup/%s%s/cgroup.procs" % (c, mine[c].rstrip("/"))) as f:
                assert str(s["pid"]) not in f.read().split(), c
        # usage while running: cpu from cpuacct, pids from the freezer's tasks
        assert s["usage"]["pids_current"] >= 2, s  # rund-waiter and sleep
        # the joins are done: rund holds no fd of the running job's cgroups
        assert not [p for p in rund_fd_targets(rund.pid) if p.startswith("/sys/fs/cgroup/")]
    finally:
        ctl("stop", jid, "--grace", "0")
    s = status(ctl, jid)
    assert s["state"] == "killed" and s["reason"] == "stopped", s
    # the cgroup goes with the job
    end = time.monotonic() + 10
    while time.monotonic() < end and job_dir(rund.pid, "freezer", jid):
        time.sleep(0.05)
    assert job_dir(rund.pid, "freezer", jid) is None


def rund_fd_targets(pid):
    out = []
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            out.append(os.readlink("/proc/%d/fd/%s" % (pid, fd)))
        except OSError:
            pass
    return out


def test_job_with_one_limit_joins_only_its_hierarchy(rund, cg_ctl):
    """Issue 16: a memory limit puts the job in memory (its limit), freezer
    (its kill) and cpuacct (its CPU), not in cpu, blkio or pids; its usage
    still counts its pids and its memory, and a stop kills its daemon."""
    ctl = cg_ctl
    pidfile = os.path.join(rund.base, "daemon.pid")
    jid = start(ctl, daemon_script(pidfile), "--max-memory", "64M")
    gc = read_pid(pidfile)
    try:
        s = status(ctl, jid)
        assert s["limits"]["memory_max"] == 64 << 20, s
        job, mine = cgroups_of(gc), cgroups_of(rund.pid)
        for c in ("memory", "freezer", "cpuacct"):
            assert re.search(r"/runrpc-[0-9a-f]{12}/%s$" % jid, job[c]), (c, job[c])
        for c in ("cpu", "blkio", "pids"):
            assert job[c] == mine[c], (c, job, mine)
        with open(os.path.join(job_dir(rund.pid, "memory", jid), "memory.limit_in_bytes")) as f:
            assert int(f.read()) == 64 << 20
        u = s["usage"]
        assert u["pids_current"] >= 3 and u["memory_current"] > 0, u  # waiter, sh, sleep...
        assert ctl("stop", jid, "--grace", "0").rc == 0
        assert wait_pid_gone(gc, timeout=10), "grandchild %d survived the stop" % gc
        s = status(ctl, jid)
        assert s["usage"]["pids_current"] == 0 and s["usage"]["memory_peak"] > 0, s
    finally:
        kill_quietly(gc)
    end = time.monotonic() + 10
    while time.monotonic() < end and job_dir(rund.pid, "memory", jid):
        time.sleep(0.05)
    assert job_dir(rund.pid, "memory", jid) is None
    assert job_dir(rund.pid, "freezer", jid) is None


def test_exec_without_limits_has_a_cgroup(rund, cg_ctl):
    r = cg_ctl("exec", "--", "/bin/cat", "/proc/self/cgroup")
    assert r.rc == 0, r
    freezer = [l for l in r.text.splitlines() if ":freezer:" in l]
    assert re.search(r"/runrpc-[0-9a-f]{12}/exec-[0-9A-Z]{26}$", freezer[0]), r.text


@pytest.mark.parametrize("how", ["stop", "stop-grace", "timeout"])
def test_plain_job_daemon_dies_with_the_job(rund, cg_ctl, how):
    ctl = cg_ctl
    pidfile = os.path.join(rund.base, "daemon.pid")
    opts = ["--timeout", "1s"] if how == "timeout" else []
    jid = start(ctl, daemon_script(pidfile), *opts)
    gc = read_pid(pidfile)
    try:
        assert os.getsid(gc) == gc, "the grandchild did not leave the job's session"
        if how == "stop":
            assert ctl("stop", jid, "--grace", "0").rc == 0
        elif how == "stop-grace":  # SIGTERM ends sh: the end of the job kills the rest
            assert ctl("stop", jid, "--grace", "5s").rc == 0
        else:
            ctl("wait", jid, timeout=30)
        assert wait_pid_gone(gc, timeout=10), "grandchild %d survived %s" % (gc, how)
        s = status(ctl, jid)
        assert s["reason"] == ("timeout" if how == "timeout" else "stopped"), s
    finally:
        kill_quietly(gc)


def test_restart_adopts_plain_jobs_with_their_cgroups(rund_factory):
    r1 = rund_factory().start()
    ctl = Ctl(r1.addr)
    if not has_cgroups(ctl):
        pytest.skip("rund cannot make cgroups here")
    go = os.path.join(r1.base, "go")
    pidfile = os.path.join(r1.base, "daemon.pid")
    a = start(ctl, daemon_script(pidfile))  # stopped under the next rund
    b = start(ctl, "while [ ! -e %s ]; do sleep 0.05; done; exit 4" % go)  # ends under it
    gc = read_pid(pidfile)
    try:
        dirs = {j: job_dir(r1.pid, "freezer", j) for j in (a, b)}
        assert all(dirs.values()), dirs
        r1.stop()  # SIGTERM: jobs run on, their cgroups stay
        assert pid_alive(gc) and all(os.path.isdir(d) for d in dirs.values())
        r2 = rund_factory(base=r1.base).start()
        ctl = Ctl(r2.addr)
        for j in (a, b):
            s = status(ctl, j)
            assert s["state"] == "running" and s["cgroup"] == "v1", s
        assert all(os.path.isdir(d) for d in dirs.values()), dirs  # not swept: claimed
        open(go, "w").close()
        r = ctl("wait", b, timeout=30)
        assert r.rc == 4, r
        assert ctl("stop", a, "--grace", "0").rc == 0
        assert wait_pid_gone(gc, timeout=10), "the adopted job's daemon %d survived" % gc
        end = time.monotonic() + 10
        while time.monotonic() < end and any(os.path.isdir(d) for d in dirs.values()):
            time.sleep(0.05)
        assert not any(os.path.isdir(d) for d in dirs.values()), dirs
    finally:
        kill_quietly(gc)


def test_no_cgroups_keeps_plain_jobs_in_rund_cgroup(rund_factory):
    r = rund_factory(extra_args=["--no-cgroups"]).start()
    ctl = Ctl(r.addr)
    pidfile = os.path.join(r.base, "daemon.pid")
    jid = start(ctl, daemon_script(pidfile))
    gc = read_pid(pidfile)
    try:
        s = status(ctl, jid)
        assert s["cgroup"] is None and s["usage"] is None, s
        assert cgroups_of(s["pid"]) == cgroups_of(r.pid)
        assert ctl("stop", jid, "--grace", "0").rc == 0
        # as before: the process group goes, a setsid daemon does not
        time.sleep(0.3)
        assert pid_alive(gc)
    finally:
        kill_quietly(gc)

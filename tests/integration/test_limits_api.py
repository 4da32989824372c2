"""Limits through the API: every bad value is INVALID_ARGUMENT naming the
field and the value; a good Start shows the limits resolved, the cgroup
version and usage in Status; Exec reports usage in its exit status; without
limits, usage is the rusage of the main process once it ended; rund's
cgroups live below our own cgroup and are gone once rund has stopped."""

import os
import re
import time

import grpc
import pytest

from conftest import (PY, Rund, cmd, exec_call, pb, pid_alive, rpc_error, start, wait,
                      wait_pid_gone)

INVALID = grpc.StatusCode.INVALID_ARGUMENT
MiB = 1024 * 1024
BUSY = "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"


@pytest.fixture(scope="module")
def cgroups_usable():
    """Whether a rund here can make cgroups (this machine: v1; a v2 host where
    our cgroup holds other processes cannot delegate: rund says so and runs
    without). Tests that need cgroups skip when it cannot."""
    r = Rund()
    r.start()
    text = r.stderr_text()
    r.stop()
    m = re.search(r'msg="cgroups" version=(v1|v2)', text)
    return m.group(1) if m else None


@pytest.fixture
def need_cgroups(cgroups_usable):
    if cgroups_usable:
        return
    if os.geteuid() == 0 and os.path.exists("/sys/fs/cgroup/pids/cgroup.procs"):
        # a v1 host run as root (this machine): nothing excuses a skip
        pytest.fail("rund cannot make cgroups on a v1 host as root")
    pytest.skip("rund cannot make cgroups on this host (see its start-up log)")


def own_cgroup_dirs():
    """Directories of our own cgroup, one per mounted hierarchy."""
    mounts = []
    with open("/proc/mounts") as f:
        for line in f:
            dev, mnt, fstype, opts = line.split()[:4]
            if fstype in ("cgroup", "cgroup2"):
                mounts.append((fstype, mnt, set(opts.split(","))))
    dirs = []
    with open("/proc/self/cgroup") as f:
        for line in f:
            hid, ctrls, path = line.rstrip("\n").split(":", 2)
            for fstype, mnt, opts in mounts:
                if hid == "0" and ctrls == "" and fstype == "cgroup2":
                    dirs.append(mnt + path)
                elif ctrls and fstype == "cgroup" and set(ctrls.split(",")) <= opts:
                    dirs.append(mnt + path)
    return [d for d in dirs if os.path.isdir(d)]


def subtree_name(state_dir):
    """rund's subtree: "runrpc-" + 48 bits of FNV-1a 64 of the state dir's real
    path (other runds on this host have other names)."""
    h = 0xcbf29ce484222325
    for b in os.path.realpath(state_dir).encode():
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return "runrpc-%012x" % (h & 0xFFFFFFFFFFFF)


def runrpc_dirs(rund):
    """rund's subtree in each hierarchy where it exists below our cgroup."""
    name = subtree_name(rund.state)
    return [os.path.join(d, name) for d in own_cgroup_dirs()
            if os.path.isdir(os.path.join(d, name))]


def host_cgroup_version():
    with open("/proc/self/cgroup") as f:
        v1 = any(re.match(r"^[1-9]\d*:[^:]*(pids|memory|cpu)", l) for l in f)
    return "v1" if v1 else "v2"


def root_device():
    """MAJ:MIN of the disk backing "/" (a partition resolves to its disk)."""
    st = os.stat("/")
    dev = "%d:%d" % (os.major(st.st_dev), os.minor(st.st_dev))
    sys_dev = "/sys/dev/block/" + dev
    if os.path.exists(os.path.join(sys_dev, "partition")):
        with open(os.path.join(os.path.realpath(sys_dev), "..", "dev")) as f:
            dev = f.read().strip()
    return dev


def limits(**kw):
    io = kw.pop("io", None)
    cpu = kw.pop("cpu", None)
    lim = pb.Limits(**kw)
    if cpu is not None:
        lim.cpu.CopyFrom(pb.CpuMax(quota_us=cpu[0], period_us=cpu[1]))
    for d in io or ():
        lim.io.add().CopyFrom(pb.IoMax(**d))
    return lim


def all_limits():
    return limits(cpu=(50000, 100000), memory_max=256 * MiB, pids_max=64,
                  io=[dict(device="", rbps=50 * MiB, wbps=40 * MiB, riops=1000, wiops=900)])


BAD = [
    ("memory 0", dict(memory_max=0), [r"limits\.memory_max", r"\b0\b"]),
    ("cpu quota 0", dict(cpu=(0, 100000)), [r"limits\.cpu\.quota_us", r"\b0\b"]),
    ("cpu period 5s", dict(cpu=(50000, 5000000)), [r"limits\.cpu\.period_us", r"5000000"]),
    ("pids 0", dict(pids_max=0), [r"limits\.pids_max", r"\b0\b"]),
    ("io no value", dict(io=[dict(device="/")]), [r"limits\.io\[0\]"]),
    ("io /proc", dict(io=[dict(device="/proc", rbps=MiB)]), [r"limits\.io\[0\]\.device", r"/proc"]),
    ("io abc", dict(io=[dict(device="abc", rbps=MiB)]), [r"limits\.io\[0\]\.device", r"abc"]),
    ("io 99999:0", dict(io=[dict(device="99999:0", rbps=MiB)]),
     [r"limits\.io\[0\]\.device", r"99999:0"]),
    ("io twice", dict(io=[dict(device="", rbps=MiB), dict(device="/", wbps=MiB)]),
     [r"limits\.io\[1\]\.device"]),
]


def assert_invalid(e, patterns):
    assert e.code() == INVALID, "want INVALID_ARGUMENT, got %s: %s" % (e.code(), e.details())
    for p in patterns:
        assert re.search(p, e.details() or ""), "%r does not match %r" % (e.details(), p)


@pytest.mark.parametrize("what,kw,patterns", BAD, ids=[b[0] for b in BAD])
def test_bad_limits_start(stub, what, kw, patterns):
    req = pb.StartRequest(command=cmd("/bin/true"), limits=limits(**kw))
    assert_invalid(rpc_error(stub.Start, req, timeout=10), patterns)
    assert not stub.List(pb.ListRequest(), timeout=10).jobs, "a refused Start made a job"


@pytest.mark.parametrize("what,kw,patterns", BAD[:3] + BAD[6:7], ids=lambda x: str(x)[:12])
def test_bad_limits_exec(stub, what, kw, patterns):
    def reqs():
        yield pb.ExecRequest(start=pb.ExecStart(command=cmd("/bin/true"), limits=limits(**kw)))
    e = rpc_error(lambda: list(stub.Exec(reqs(), timeout=10)))
    assert_invalid(e, patterns)


def test_too_many_io_entries(stub):
    kw = dict(io=[dict(device="", rbps=MiB)] * 17)
    req = pb.StartRequest(command=cmd("/bin/true"), limits=limits(**kw))
    assert_invalid(rpc_error(stub.Start, req, timeout=10), [r"limits\.io", r"17"])


def test_status_shows_limits_cgroup_and_usage(need_cgroups, rund, stub):
    req = pb.StartRequest(command=cmd("/bin/sh", "-c", BUSY + "; sleep 0.3"),
                          limits=all_limits())
    job_id = stub.Start(req, timeout=30).job_id
    st = stub.Status(pb.StatusRequest(job_id=job_id), timeout=10).status
    # while it runs: its cgroup exists below ours, usage is read live
    assert runrpc_dirs(rund), "no runrpc-* cgroup below our own cgroup while a job with limits runs"
    assert st.cgroup == host_cgroup_version()
    assert st.HasField("usage")
    final = wait(stub, job_id)
    assert final.state == pb.JOB_STATE_EXITED and final.reason == "exited", final
    lim = final.limits
    assert lim.cpu.quota_us == 50000 and lim.cpu.period_us == 100000
    assert lim.memory_max == 256 * MiB and lim.pids_max == 64
    assert len(lim.io) == 1
    io = lim.io[0]
    assert io.device == root_device()
    assert (io.rbps, io.wbps, io.riops, io.wiops) == (50 * MiB, 40 * MiB, 1000, 900)
    assert final.request.limits == lim
    assert final.cgroup == host_cgroup_version()
    assert final.HasField("usage")
    assert final.usage.cpu_usec > 0, final.usage
    assert final.usage.memory_peak > 0, final.usage
    assert final.usage.memory_current == 0 and final.usage.pids_current == 0
    # the same after a restart of rund (from job.json)
    rund.stop()
    assert not runrpc_dirs(rund), "cgroups left behind: %r" % runrpc_dirs(rund)
    rund.start()
    again = rund.stub().Status(pb.StatusRequest(job_id=job_id), timeout=10).status
    assert again.usage == final.usage and again.limits == final.limits
    assert again.cgroup == final.cgroup


def test_default_period_and_explicit_devices(need_cgroups, stub):
    dev = root_device()
    lim = limits(cpu=(20000, 0), io=[dict(device=dev, wbps=MiB)])
    job_id = stub.Start(pb.StartRequest(command=cmd("/bin/true"), limits=lim), timeout=30).job_id
    st = wait(stub, job_id)
    assert st.limits.cpu.period_us == 100000
    assert [d.device for d in st.limits.io] == [dev]


def assert_rusage_only(u):
    """A Usage from the rusage (no cgroup): cpu only, the rest 0."""
    assert u.cpu_usec > 0 and u.cpu_usec == u.cpu_user_usec + u.cpu_system_usec, u
    assert (u.memory_peak, u.memory_current, u.pids_current, u.io_read_bytes, u.io_write_bytes, u.io_read_ops,
            u.io_write_ops, u.oom_kills, u.cpu_throttled_usec, u.pids_refused) == (0,) * 10, u


def test_job_without_limits_has_a_cgroup(need_cgroups, rund, stub):
    """Issue 9: a job without limits has a cgroup too (no limits): its usage
    is live while it runs, and the cgroup's at its end."""
    job_id = start(stub, "/bin/sh", "-c", "sleep 1; " + BUSY).job_id
    st = stub.Status(pb.StatusRequest(job_id=job_id), timeout=10).status
    assert st.state == pb.JOB_STATE_RUNNING, st
    assert st.cgroup == host_cgroup_version() and not st.HasField("limits"), st
    assert st.HasField("usage") and st.usage.pids_current >= 1, st
    st = wait(stub, job_id, timeout=60)
    assert st.state == pb.JOB_STATE_EXITED and st.reason == "exited", st
    assert st.cgroup == host_cgroup_version() and not st.HasField("limits"), st
    assert st.usage.cpu_usec > 0 and st.usage.pids_current == 0, st
    assert st.usage.memory_current == 0, st
    rund.stop()
    rund.start()
    again = rund.stub().Status(pb.StatusRequest(job_id=job_id), timeout=10).status
    assert again.usage == st.usage and again.cgroup == st.cgroup


def test_job_without_limits_has_rusage_usage(rund_factory):
    """rund --no-cgroups: no cgroup, the rusage once ended."""
    rund = rund_factory(extra_args=["--no-cgroups"]).start()
    stub = rund.stub()
    job_id = start(stub, "/bin/sh", "-c", "sleep 1; " + BUSY).job_id
    # while it runs: no cgroup, no usage yet (the rusage comes with the end)
    st = stub.Status(pb.StatusRequest(job_id=job_id), timeout=10).status
    assert st.state == pb.JOB_STATE_RUNNING, st
    assert not st.HasField("usage") and not st.HasField("limits") and st.cgroup == "", st
    st = wait(stub, job_id, timeout=60)
    assert st.state == pb.JOB_STATE_EXITED and st.reason == "exited", st
    assert not st.HasField("limits")
    assert st.cgroup == ""
    assert st.HasField("usage")
    assert_rusage_only(st.usage)
    # the same after a restart of rund (from job.json)
    rund.stop()
    rund.start()
    again = rund.stub().Status(pb.StatusRequest(job_id=job_id), timeout=10).status
    assert again.usage == st.usage and again.cgroup == "" and not again.HasField("limits")


def test_exec_reports_usage(need_cgroups, rund, stub):
    def reqs():
        yield pb.ExecRequest(start=pb.ExecStart(command=cmd("/bin/sh", "-c", BUSY + "; echo hi"),
                                                limits=limits(pids_max=16, memory_max=128 * MiB)))
        yield pb.ExecRequest(close_stdin=True)
    ex = None
    out = b""
    for r in stub.Exec(reqs(), timeout=60):
        if r.WhichOneof("msg") == "exit":
            ex = r.exit
        elif r.WhichOneof("msg") == "stdout":
            out += r.stdout
    assert out == b"hi\n"
    assert ex is not None and ex.reason == "exited" and ex.exit_code == 0, ex
    assert ex.HasField("usage") and ex.usage.cpu_usec > 0, ex
    # removed from a timer once the exit status went out
    deadline = time.monotonic() + 5
    while True:
        left = [n for d in runrpc_dirs(rund) for n in os.listdir(d) if n.startswith("exec-")]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert not left, "Exec cgroups left behind: %r" % left


def test_exec_without_limits_reports_cgroup_usage(need_cgroups, rund, stub):
    _, out, _, ex, _ = exec_call(stub, "/bin/sh", "-c", BUSY + "; echo hi")
    assert out == b"hi\n"
    assert ex.reason == "exited" and ex.exit_code == 0, ex
    assert ex.usage.cpu_usec > 0 and ex.usage.pids_current == 0, ex
    deadline = time.monotonic() + 5
    while True:
        left = [n for d in runrpc_dirs(rund) for n in os.listdir(d) if n.startswith("exec-")]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert not left, "Exec cgroups left behind: %r" % left


def test_exec_without_limits_reports_rusage(rund_factory):
    """rund --no-cgroups: the rusage of the main process."""
    stub = rund_factory(extra_args=["--no-cgroups"]).start().stub()
    _, out, _, ex, _ = exec_call(stub, "/bin/sh", "-c", BUSY + "; echo hi")
    assert out == b"hi\n"
    assert ex.reason == "exited" and ex.exit_code == 0, ex
    assert ex.HasField("usage"), ex
    assert_rusage_only(ex.usage)
    # killed by a signal: still the rusage of what it did
    _, _, _, ex, _ = exec_call(stub, "/bin/sh", "-c", BUSY + "; kill -9 $$")
    assert ex.reason == "signaled" and ex.signal == 9, ex
    assert_rusage_only(ex.usage)


@pytest.mark.timeout(90)
def test_oom_killed_reason(need_cgroups, stub):
    hog = "b = b'x' * (400 << 20); import time; time.sleep(5)"
    req = pb.StartRequest(command=cmd(PY, "-c", hog), limits=limits(memory_max=32 * MiB))
    job_id = stub.Start(req, timeout=30).job_id
    st = wait(stub, job_id, timeout=60)
    assert st.state == pb.JOB_STATE_KILLED and st.signal == 9, st
    assert st.reason == "oom-killed", st
    assert st.usage.oom_kills > 0


def test_stop_kills_double_forked(need_cgroups, rund, stub, tmp_path):
    pidfile = tmp_path / "gc"
    script = "(setsid sleep 60 & echo $! > %s.t; mv %s.t %s); sleep 60" % ((pidfile,) * 3)
    req = pb.StartRequest(command=cmd("/bin/sh", "-c", script), limits=limits(pids_max=32))
    job_id = stub.Start(req, timeout=30).job_id
    end = time.monotonic() + 10
    while not pidfile.exists() and time.monotonic() < end:
        time.sleep(0.02)
    gc = int(pidfile.read_text())
    st = stub.Stop(pb.StopRequest(job_id=job_id, grace_ms=200), timeout=30).status
    assert st.reason == "stopped", st
    assert wait_pid_gone(gc, timeout=5), "the double-forked grandchild %d survived Stop" % gc


def test_no_cgroups_flag(rund_factory):
    r = rund_factory(extra_args=["--no-cgroups"]).start()
    stub = r.stub()
    e = rpc_error(stub.Start, pb.StartRequest(command=cmd("/bin/true"), limits=limits(pids_max=5)),
                  timeout=10)
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION, e
    assert "cgroups" in e.details()
    assert wait(stub, start(stub, "/bin/true").job_id).reason == "exited"
    assert "--no-cgroups" in r.stderr_text()


def test_rund_logs_cgroup_version(need_cgroups, rund):
    assert re.search(r"cgroups.*version=" + host_cgroup_version(), rund.stderr_text())


def test_nothing_left_after_rund_stops(need_cgroups, rund_factory):
    r = rund_factory().start()
    stub = r.stub()
    # one ended job, one still running when rund stops (it runs on, in its cgroup)
    wait(stub, stub.Start(pb.StartRequest(command=cmd("/bin/true"), limits=limits(pids_max=8)),
                          timeout=30).job_id)
    live = stub.Start(pb.StartRequest(command=cmd("/bin/sleep", "30"), limits=limits(pids_max=8)),
                      timeout=30)
    r.stop()
    left = [n for d in runrpc_dirs(r) for n in os.listdir(d) if n == live.job_id]
    assert left, "the running job's cgroup should stay while it runs on"
    # a new rund adopts it; stopping the job removes its cgroup, rund's exit the rest
    r.start()
    stub = r.stub()
    st = stub.Stop(pb.StopRequest(job_id=live.job_id, grace_ms=0), timeout=30).status
    assert st.state != pb.JOB_STATE_RUNNING
    r.stop()
    assert not runrpc_dirs(r), "cgroups left behind after rund stopped: %r" % runrpc_dirs(r)


def test_exec_dropped_stream_kills_cgroup(need_cgroups, rund, stub, tmp_path):
    pidfile = tmp_path / "gc"
    script = "(setsid sleep 60 & echo $! > %s.t; mv %s.t %s); echo go; sleep 60" % ((pidfile,) * 3)

    def reqs():
        yield pb.ExecRequest(start=pb.ExecStart(command=cmd("/bin/sh", "-c", script),
                                                limits=limits(pids_max=16)))
        time.sleep(60)  # keep the stream open until cancelled

    call = stub.Exec(reqs(), timeout=60)
    for r in call:
        if r.WhichOneof("msg") == "stdout":
            break
    gc = int(pidfile.read_text())
    call.cancel()
    assert wait_pid_gone(gc, timeout=10), "the Exec command's grandchild %d survived the dropped stream" % gc
    end = time.monotonic() + 5
    while time.monotonic() < end and any(
            n.startswith("exec-") for d in runrpc_dirs(rund) for n in os.listdir(d)):
        time.sleep(0.05)
    left = [n for d in runrpc_dirs(rund) for n in os.listdir(d) if n.startswith("exec-")]
    assert not left, "Exec cgroups left behind: %r" % left


def test_cgroups_left_by_a_crash_are_swept(need_cgroups, rund_factory, tmp_path):
    """rund SIGKILLed: the running job's cgroup is kept for the next rund,
    an Exec command (its stream died with rund) and its cgroup are removed."""
    r = rund_factory().start()
    stub = r.stub()
    live = stub.Start(pb.StartRequest(command=cmd("/bin/sleep", "60"), limits=limits(pids_max=8)),
                      timeout=30).job_id
    pidfile = tmp_path / "exec.pid"

    def reqs():
        yield pb.ExecRequest(start=pb.ExecStart(
            command=cmd("/bin/sh", "-c", "echo $$ > %s; echo go; sleep 60" % pidfile),
            limits=limits(pids_max=8)))
        time.sleep(60)

    call = stub.Exec(reqs(), timeout=60)
    for m in call:
        if m.WhichOneof("msg") == "stdout":
            break
    exec_pid = int(pidfile.read_text())
    names = {n for d in runrpc_dirs(r) for n in os.listdir(d)
             if os.path.isdir(os.path.join(d, n))}
    assert live in names and any(n.startswith("exec-") for n in names), names
    r.kill()  # a crash: nothing is cleaned up
    call.cancel()
    assert pid_alive(exec_pid), "the Exec command should outlive the crashed rund"
    r.start()
    assert "stale cgroups removed" in r.stderr_text()
    assert wait_pid_gone(exec_pid, timeout=10), "the orphaned Exec command was not killed"
    names = {n for d in runrpc_dirs(r) for n in os.listdir(d)
             if os.path.isdir(os.path.join(d, n))}
    assert live in names and not any(n.startswith("exec-") for n in names), names
    stub = r.stub()
    st = stub.Stop(pb.StopRequest(job_id=live, grace_ms=0), timeout=30).status
    assert st.state != pb.JOB_STATE_RUNNING
    r.stop()
    assert not runrpc_dirs(r), "cgroups left behind: %r" % runrpc_dirs(r)

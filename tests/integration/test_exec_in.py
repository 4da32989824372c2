"""exec --in (ExecStart.job_id): a command run inside a running job, as
docker exec does: the job's namespaces and root, a child of its cgroup, its
profile, uid, env and workdir; ownership as for the job."""
import os
import re
import subprocess
import time
import uuid

import grpc
import pytest

from conftest import PY, RUNCTL, cmd, pb, rpc_error, start, unused_ulid
from test_exec_tty import PtyRun
from test_jobs_runas import NOBODY

# burns 0.3 s of its own CPU time, however busy the machine is
BURN = [PY, "-c", "import time\nwhile time.process_time() < 0.3: pass\nprint('burnt')"]


def exec_in(stub, job_id, path, *args, env=None, workdir="", limits=None, sandbox=None,
            timeout=60):
    """One Exec inside job_id: (stdout, stderr, ExitStatus)."""
    st = pb.ExecStart(command=cmd(path, *args, env=env, workdir=workdir), job_id=job_id)
    if limits is not None:
        st.limits.CopyFrom(limits)
    if sandbox is not None:
        st.sandbox.CopyFrom(sandbox)

    def reqs():
        yield pb.ExecRequest(start=st)
        yield pb.ExecRequest(close_stdin=True)

    out, err, ex = bytearray(), bytearray(), None
    for r in stub.Exec(reqs(), timeout=timeout):
        kind = r.WhichOneof("msg")
        if kind == "stdout":
            out += r.stdout
        elif kind == "stderr":
            err += r.stderr
        elif kind == "exit":
            ex = r.exit
    assert ex is not None, "no exit status"
    return bytes(out), bytes(err), ex


def start_sandboxed(stub, profile, script, hostname="", env=None, workdir=""):
    req = pb.StartRequest(command=cmd("sh", "-c", script, env=env, workdir=workdir))
    req.sandbox.profile = profile
    if hostname:
        req.sandbox.hostname = hostname
    return stub.Start(req, timeout=30).job_id


def cgroup_paths(pid):
    """{hierarchy: path} of /proc/PID/cgroup ("" is v2's)."""
    out = {}
    with open("/proc/%d/cgroup" % pid) as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            for c in ctrls.split(","):
                out[c] = path
    return out


def job_pid(stub, job_id):
    return stub.Status(pb.StatusRequest(job_id=job_id), timeout=10).status.pid


def stop(stub, job_id):
    stub.Stop(pb.StopRequest(job_id=job_id, grace_ms=0), timeout=30)
    stub.Wait(pb.WaitRequest(job_id=job_id), timeout=30)


@pytest.mark.parametrize("profile", ["default", "strict"])
def test_sees_the_jobs_hostname_pids_files_env_and_workdir(stub, profile):
    mark = "mark-" + uuid.uuid4().hex
    job = start_sandboxed(stub, profile, "echo here > /tmp/%s; exec sleep 1000" % mark,
                          hostname="jobbox", env={"JOBVAR": "fromjob"}, workdir="/usr")
    try:
        for _ in range(200):  # the job's file exists once its shell ran
            out, err, ex = exec_in(stub, job, "cat", "/tmp/" + mark)
            if ex.exit_code == 0:
                break
            time.sleep(0.05)
        assert out == b"here\n", (out, err)
        assert not os.path.exists("/tmp/" + mark)  # its /tmp, not the host's
        out, err, ex = exec_in(stub, job, "sh", "-c",
                               "hostname; echo $JOBVAR $MINE; pwd; ps -o pid=,comm=",
                               env={"MINE": "mine"})
        assert ex.exit_code == 0, err
        lines = out.decode().split("\n")
        assert lines[0] == "jobbox"
        assert lines[1] == "fromjob mine"
        assert lines[2] == "/usr"
        procs = {int(p): c for p, c in (l.split() for l in lines[3:] if l.strip())}
        assert procs.get(1) == "sandbox-init", procs  # the job's pid namespace
        assert "sleep" in procs.values(), procs  # the job's command beside us
        assert max(procs) < 100, procs  # our own pids are small: counted in there
        # the profile holds: strict drops every capability, default keeps docker's
        out, _, _ = exec_in(stub, job, "grep", "CapEff", "/proc/self/status")
        eff = int(out.split()[1], 16)
        assert (eff == 0) == (profile == "strict"), out
        # a workdir given wins over the job's
        out, _, _ = exec_in(stub, job, "pwd", workdir="/")
        assert out == b"/\n"
        assert stub.Status(pb.StatusRequest(job_id=job), timeout=10).status.state == pb.JOB_STATE_RUNNING
    finally:
        stop(stub, job)


def test_counted_in_the_jobs_cgroup(stub):
    job = start(stub, "sleep", "1000").job_id
    try:
        pid = job_pid(stub, job)
        theirs = cgroup_paths(pid)
        out, err, ex = exec_in(stub, job, "cat", "/proc/self/cgroup")
        assert ex.exit_code == 0, err
        ours = {}
        for line in out.decode().splitlines():
            _, ctrls, path = line.split(":", 2)
            for c in ctrls.split(","):
                ours[c] = path
        key = "" if "" in theirs and "freezer" not in theirs else "freezer"
        assert ours[key].startswith(theirs[key].rstrip("/") + "/exec-"), (ours, theirs)
        # its CPU time counts to the job's
        before = stub.Status(pb.StatusRequest(job_id=job), timeout=10).status.usage.cpu_usec
        out, err, ex = exec_in(stub, job, *BURN)
        assert out == b"burnt\n", err
        after = stub.Status(pb.StatusRequest(job_id=job), timeout=10).status.usage.cpu_usec
        assert after - before >= 250000, (before, after)
        # nothing is left below the job once the command ended
        path = "/sys/fs/cgroup/%s%s" % ("freezer" if key else "", theirs[key])
        for _ in range(200):
            if not [d for d in os.listdir(path) if d.startswith("exec-")]:
                break
            time.sleep(0.05)
        assert not [d for d in os.listdir(path) if d.startswith("exec-")]
    finally:
        stop(stub, job)


def test_the_jobs_limits_hold(stub):
    req = pb.StartRequest(command=cmd("sleep", "1000"))
    req.limits.pids_max = 8
    job = stub.Start(req, timeout=30).job_id
    try:
        # the job's sleep and rund-waiter are two of the 8: 20 more cannot all start
        out, err, ex = exec_in(stub, job, "sh", "-c",
                               "i=0; while [ $i -lt 20 ]; do sleep 30 >/dev/null 2>&1 & "
                               "i=$((i+1)); done; echo done")
        assert out == b"" and b"Cannot fork" in err and ex.exit_code != 0, (out, err)
        assert stub.Status(pb.StatusRequest(job_id=job),
                           timeout=10).status.state == pb.JOB_STATE_RUNNING
    finally:
        stop(stub, job)


def test_stopping_the_job_ends_what_runs_in_it(rund, stub):
    job = start(stub, "sleep", "1000").job_id
    p = subprocess.Popen([RUNCTL, "--addr", rund.addr, "exec", "--in", job, "--", "sleep", "1000"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        theirs = cgroup_paths(job_pid(stub, job))
        key = "" if "" in theirs and "freezer" not in theirs else "freezer"
        path = "/sys/fs/cgroup/%s%s" % ("freezer" if key else "", theirs[key])
        for _ in range(400):  # the exec's cgroup appears once it runs
            if [d for d in os.listdir(path) if d.startswith("exec-")]:
                break
            time.sleep(0.05)
        stop(stub, job)
        assert p.wait(30) == 137  # killed with the job's cgroup tree
        for _ in range(400):
            if not os.path.exists(path):
                break
            time.sleep(0.05)
        assert not os.path.exists(path), "the job's cgroup was left behind"
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()


def test_terminal_inside_a_job(rund, stub):
    job = start_sandboxed(stub, "strict", "exec sleep 1000")
    p = PtyRun(rund.addr, "exec", "--in", job, "-t", "--", "sh", "-c", "tty; stty size; id -u",
               rows=31, cols=97)
    try:
        assert p.wait() == 0, p.buf
        assert re.search(rb"/dev/pts/\d+", p.buf), p.buf
        assert b"31 97" in p.buf and b"\n0\r\n" in p.buf.replace(b"\r\r", b"\r"), p.buf
    finally:
        p.close()
        stop(stub, job)


def test_bad_unknown_and_ended_jobs(stub, ctl):
    e = rpc_error(exec_in, stub, unused_ulid(), "true")
    assert e.code() == grpc.StatusCode.NOT_FOUND, e.details()
    e = rpc_error(exec_in, stub, "not-a-job", "true")
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e.details()
    ended = start(stub, "true").job_id
    stub.Wait(pb.WaitRequest(job_id=ended), timeout=30)
    e = rpc_error(exec_in, stub, ended, "true")
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION, e.details()
    assert "ended" in e.details()
    # the job's limits and sandbox hold: none of the request's own
    job = start(stub, "sleep", "1000").job_id
    try:
        e = rpc_error(exec_in, stub, job, "true", limits=pb.Limits(pids_max=5))
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "limits" in e.details()
        e = rpc_error(exec_in, stub, job, "true", sandbox=pb.Sandbox(profile="strict"))
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "sandbox" in e.details()
        r = ctl("exec", "--in", job, "--max-memory", "10M", "--", "true")
        assert r.rc == 2 and b"--in" in r.err, r
        r = ctl("exec", "--in", job, "--", "sh", "-c", "exit 7")
        assert r.rc == 7, r
    finally:
        stop(stub, job)
    r = ctl("exec", "--in", unused_ulid(), "--", "true")
    assert r.rc == 125 and b"NOT_FOUND" in r.err, r  # no "command not found" 127
    r = ctl("exec", "--in", ended, "--", "true")
    assert r.rc == 125 and b"FAILED_PRECONDITION" in r.err, r


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as nobody")
def test_another_identitys_job_is_not_found(rund, stub):
    os.chmod(rund.base, 0o755)  # nobody must reach the socket
    mine = subprocess.run(NOBODY + [RUNCTL, "--addr", rund.addr, "start", "--", "sleep", "1000"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert mine.returncode == 0, mine.stderr
    nobodys = mine.stdout.decode().strip()
    roots = start(stub, "sleep", "1000").job_id
    try:
        p = subprocess.run(NOBODY + [RUNCTL, "--addr", rund.addr, "exec", "--in", roots, "--",
                                     "id", "-u"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        assert p.returncode == 125 and b"NOT_FOUND" in p.stderr, p
        # its own job: it runs there, as the job's user
        p = subprocess.run(NOBODY + [RUNCTL, "--addr", rund.addr, "exec", "--in", nobodys, "--",
                                     "id", "-u"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        assert p.returncode == 0 and p.stdout == b"65534\n", p
        # an admin (root on the socket) may, and runs as the job's user, not as itself
        out, err, ex = exec_in(stub, nobodys, "id", "-u")
        assert out == b"65534\n", (out, err)
    finally:
        stop(stub, roots)
        stop(stub, nobodys)

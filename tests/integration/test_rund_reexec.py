"""SIGUSR2: rund restarts in place (re-executes itself, same pid). Jobs left
running stay its children, so the new image adopts them with their real exit
status; Exec commands end with their dropped streams; nothing leaks."""

import os
import signal
import time

import grpc
import pytest

from conftest import cmd, pb, start, wait, wait_pid_gone


def wait_restarted(r, runs_before, timeout=30):
    """Until the log shows a new start ("state loaded" once more) and rund answers."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert r.proc.poll() is None, "rund exited instead of restarting:\n" + r.stderr_text()
        if r.stderr_text().count('msg="state loaded"') > runs_before:
            r.wait_ready()
            return
        time.sleep(0.05)
    raise AssertionError("rund did not come back:\n" + r.stderr_text()[-4000:])


def test_restart_in_place_keeps_exit_statuses(rund_factory, tmp_path):
    r = rund_factory().start()
    stub = r.stub()
    pid = r.proc.pid
    # one job ends during the restart, one after it, one already ended before
    done = start(stub, "/bin/sh", "-c", "exit 5").job_id
    assert wait(stub, done).exit_code == 5
    quick = start(stub, "/bin/sh", "-c", "sleep 0.3; echo quick; exit 3").job_id
    # with a limit when this host can (its cgroup is reopened by the new image)
    req = pb.StartRequest(command=cmd("/bin/sh", "-c", "sleep 2; echo slow; exit 7"))
    if 'msg="cgroups" version=v' in r.stderr_text():
        req.limits.pids_max = 16
    slow = stub.Start(req, timeout=30).job_id
    killed = start(stub, "/bin/sleep", "60").job_id
    loaded = r.stderr_text().count('msg="state loaded"')
    r.proc.send_signal(signal.SIGUSR2)
    wait_restarted(r, loaded)
    assert r.proc.pid == pid and r.proc.poll() is None
    text = r.stderr_text()
    assert 'msg="restarting in place"' in text and 'msg="re-executing"' in text, text
    stub = r.stub()
    st = wait(stub, quick)
    assert (st.state, st.exit_code, st.reason) == (pb.JOB_STATE_EXITED, 3, "exited"), st
    st = wait(stub, slow)
    assert (st.state, st.exit_code, st.reason) == (pb.JOB_STATE_EXITED, 7, "exited"), st
    if req.limits.HasField("pids_max"):
        assert st.cgroup in ("v1", "v2") and st.limits.pids_max == 16, st
        assert st.HasField("usage") and st.usage.cpu_usec > 0, st
    st = stub.Stop(pb.StopRequest(job_id=killed, grace_ms=0), timeout=30).status
    assert (st.state, st.signal) == (pb.JOB_STATE_KILLED, signal.SIGKILL), st
    assert wait(stub, done).exit_code == 5
    out = b"".join(m.data for m in stub.Logs(pb.LogsRequest(job_id=slow), timeout=10))
    assert out == b"slow\n"
    # and it goes on working
    assert wait(stub, start(stub, "/bin/true").job_id).state == pb.JOB_STATE_EXITED
    r.stop()  # exit 0, no sanitizer report


def test_restart_in_place_ends_exec_commands(rund_factory, tmp_path):
    r = rund_factory().start()
    pidfile = tmp_path / "exec.pid"

    def reqs():
        yield pb.ExecRequest(start=pb.ExecStart(
            command=cmd("/bin/sh", "-c", "echo $$ > %s; echo go; sleep 60" % pidfile)))
        time.sleep(60)

    call = r.stub().Exec(reqs(), timeout=60)
    for m in call:
        if m.WhichOneof("msg") == "stdout":
            break
    exec_pid = int(pidfile.read_text())
    loaded = r.stderr_text().count('msg="state loaded"')
    r.proc.send_signal(signal.SIGUSR2)
    with pytest.raises(grpc.RpcError):
        for _ in call:
            pass
    wait_restarted(r, loaded)
    assert wait_pid_gone(exec_pid, timeout=10), "the Exec command outlived its stream"
    # reaped by the new image: no zombie child of rund is left
    time.sleep(0.3)
    kids = [p for p in os.listdir("/proc") if p.isdigit() and _ppid(int(p)) == r.proc.pid]
    assert kids == [], kids
    r.stop()


def _ppid(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return -1

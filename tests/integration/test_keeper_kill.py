"""A SIGKILL stop spares the job's keeper (rund-waiter, or a sandbox's init):
everything else in the job's cgroup is killed, the keeper drains what the
command wrote into its pipes before it died into the logs and then ends, so a
kill loses no byte that a write() had accepted.

The keeper is held stopped (SIGSTOP) while the command writes and is killed,
so that the bytes are still in the pipe when the kill comes: killed with the
job, as it was before, it took them with it."""
import os
import signal

import pytest

from conftest import cmd, logs, pb, wait, wait_for

# in its working directory: once told (go), 60,000 bytes (they fit in a pipe)
# and a line of stderr, then it says so (wrote) and sleeps
SCRIPT = ("until [ -e go ]; do sleep 0.02; done; head -c 60000 /dev/zero | tr '\\0' x; echo; "
          "echo err >&2; : > wrote; exec sleep 1000")


def proc_state(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def child_comms(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            kids = [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []
    comms = []
    for k in kids:
        try:
            with open("/proc/%d/comm" % k) as f:
                comms.append(f.read().strip())
        except FileNotFoundError:
            pass
    return comms


@pytest.mark.parametrize("profile", ["host", "default"])
@pytest.mark.parametrize("how", ["stop", "signal"])
def test_kill_keeps_what_the_pipe_held(stub, tmp_path, profile, how):
    # (default: the working directory is the only writable place, bound onto itself)
    req = pb.StartRequest(command=cmd("/bin/sh", "-c", SCRIPT, workdir=str(tmp_path)),
                          sandbox=pb.Sandbox(profile=profile))
    resp = stub.Start(req, timeout=30)
    j, keeper = resp.job_id, resp.pid
    assert wait_for(lambda: "sh" in child_comms(keeper)), child_comms(keeper)
    os.kill(keeper, signal.SIGSTOP)
    try:
        assert wait_for(lambda: proc_state(keeper) == "T")
        (tmp_path / "go").touch()
        # it wrote everything (into the pipe: the keeper is stopped)
        assert wait_for((tmp_path / "wrote").exists)
        # (Stop answers once the job ended: the keeper must go on first)
        call = stub.Stop.future(pb.StopRequest(job_id=j, grace_ms=0), timeout=30) \
            if how == "stop" else \
            stub.Signal.future(pb.SignalRequest(job_id=j, name="KILL"), timeout=30)
        assert wait_for(lambda: child_comms(keeper) in ([], ["sleep"]) and
                        proc_state(keeper) in ("T", None))
        # the command is killed, its keeper spared (still stopped)
        assert proc_state(keeper) == "T"
    finally:
        if proc_state(keeper) is not None:
            os.kill(keeper, signal.SIGCONT)
    call.result()
    st = wait(stub, j)
    assert st.state != pb.JOB_STATE_RUNNING, st
    out, err, _ = logs(stub, j)
    assert out == b"x" * 60000 + b"\n"
    assert err == b"err\n"

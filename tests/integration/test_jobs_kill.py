"""How rund signals jobs (src/jobs/kill.c): through the job's pidfd, the
process group by number only while the pidfd says its leader is there, and
nothing at all once the job's process ended; an adopted job (found running
by a new rund) keeps its timeout."""

import re
import shutil
import signal
import subprocess
import time

import grpc
import pytest

from conftest import pb, start, wait


@pytest.mark.timeout(60)
def test_adopted_jobs_keep_their_timeout(rund_factory):
    r = rund_factory().start()
    stub = r.stub()
    t0 = time.monotonic()
    slow = start(stub, "/bin/sleep", "60", timeout_ms=3000)
    past = start(stub, "/bin/sleep", "60", timeout_ms=1000)  # its deadline passes while down
    r.stop()  # SIGTERM: running jobs keep running
    time.sleep(max(0.0, 1.5 - (time.monotonic() - t0)))
    r2 = rund_factory(base=r.base).start()
    ready = time.time()
    stub = r2.stub()
    st = wait(stub, past.job_id)
    assert (st.state, st.signal, st.reason) == (pb.JOB_STATE_KILLED, 15, "timeout"), st
    assert st.end_time_unix_ns / 1e9 <= ready + 0.5, "not stopped at once on adoption"
    st = wait(stub, slow.job_id)
    assert (st.state, st.signal, st.reason) == (pb.JOB_STATE_KILLED, 15, "timeout"), st
    ran = (st.end_time_unix_ns - st.start_time_unix_ns) / 1e9
    # 3 s after its start, unless the new rund came up later than that
    assert 2.9 <= ran <= max(4.5, time.monotonic() - t0 + 0.5), "ran %.2f s" % ran


def strace_attach(pid, out):
    """strace -f on pid (kill and pidfd_send_signal calls only) until detached."""
    p = subprocess.Popen(["strace", "-f", "-qq", "-e", "trace=kill,pidfd_send_signal",
                          "-e", "signal=none", "-o", out, "-p", str(pid)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    end = time.monotonic() + 10
    while time.monotonic() < end:
        with open("/proc/%d/status" % pid) as f:
            if re.search(r"^TracerPid:\s+[1-9]", f.read(), re.M):
                return p
        assert p.poll() is None, "strace failed: %r" % p.stderr.read()
        time.sleep(0.02)
    p.kill()
    raise AssertionError("strace did not attach to %d" % pid)


def strace_detach(p, out):
    p.send_signal(signal.SIGTERM)  # strace detaches and exits
    p.wait(timeout=10)
    with open(out) as f:
        return [" ".join(line.split()[1:]) for line in f if line.strip()]


def can_strace():
    if not shutil.which("strace"):
        return False
    p = subprocess.run(["strace", "-qq", "-e", "trace=none", "true"], capture_output=True)
    return p.returncode == 0


@pytest.mark.timeout(60)
@pytest.mark.skipif(not can_strace(), reason="strace is missing or may not trace here")
def test_nothing_is_signalled_once_the_job_ended(rund, stub, tmp_path):
    ended = start(stub, "/bin/sh", "-c", "exit 4")
    assert wait(stub, ended.job_id).exit_code == 4
    running = start(stub, "/bin/sleep", "60")
    out = str(tmp_path / "strace.txt")
    tracer = strace_attach(rund.pid, out)
    try:
        st = stub.Stop(pb.StopRequest(job_id=ended.job_id, grace_ms=0), timeout=10).status
        assert (st.state, st.exit_code) == (pb.JOB_STATE_EXITED, 4), st
        with pytest.raises(grpc.RpcError) as ei:
            stub.Signal(pb.SignalRequest(job_id=ended.job_id, name="KILL"), timeout=10)
        assert ei.value.code() == grpc.StatusCode.FAILED_PRECONDITION, ei.value
        time.sleep(0.2)
        assert strace_detach(tracer, out) == [], "signals sent for a job that ended"
        tracer = strace_attach(rund.pid, out)
        st = stub.Stop(pb.StopRequest(job_id=running.job_id, grace_ms=5000), timeout=20).status
        assert (st.state, st.signal, st.reason) == (pb.JOB_STATE_KILLED, 15, "stopped"), st
        time.sleep(0.2)
        calls = strace_detach(tracer, out)
    finally:
        if tracer.poll() is None:
            tracer.kill()
    # the pidfd is asked before each use of the group's number
    pid = running.pid
    probe = re.compile(r"^pidfd_send_signal\(\d+, 0, NULL, 0\) = 0$")
    kills = [c for c in calls if c.startswith("kill(")]
    assert kills and kills[0] == "kill(-%d, SIGTERM) = 0" % pid, calls
    for i, c in enumerate(calls):
        if c.startswith("kill("):
            assert c.startswith("kill(-%d, " % pid) and i > 0 and probe.match(calls[i - 1]), calls
        else:
            assert c.startswith("pidfd_send_signal("), calls

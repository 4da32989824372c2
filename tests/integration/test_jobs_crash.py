"""kill -9 of rund while jobs run and end: a new rund on the same state dir
has every job, every log byte, and the real exit code or signal of the jobs
that ended while no rund ran (rund-waiter recorded them); where nobody could
know (the waiter was killed too) the job says "lost" and never exit code 0."""
import json
import os
import signal
import subprocess
import time

from conftest import (BYTES_SCRIPT, PY, RUNCTL, bytes_expected, logs, pb, pid_alive, start, wait,
                      wait_pid_gone)


def gated(go, script):
    """sh -c: wait (bounded) until the file go exists, then run script."""
    return ("/bin/sh", "-c",
            'i=0; while [ ! -e %s ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; %s'
            % (go, script))


def crash(r):
    """SIGKILL rund: no chance to record anything (and no clean stop to check)."""
    r.kill()
    r.proc = None


def runctl(addr, *args):
    return subprocess.run([RUNCTL, "--addr", addr] + list(args), capture_output=True, timeout=60)


def test_jobs_that_end_while_rund_is_dead_keep_their_status(rund_factory):
    r1 = rund_factory().start()
    stub = r1.stub()
    go, go2 = os.path.join(r1.base, "go"), os.path.join(r1.base, "go2")
    a = start(stub, *gated(go, "printf 'out\\0a'; printf err-a >&2; exit 3"))
    b = start(stub, *gated(go, "exec %s -c '%s' 300" % (PY, BYTES_SCRIPT)))
    c = start(stub, *gated(go2, "exit 0"))  # killed by SIGTERM meanwhile
    d = start(stub, *gated(go2, "printf late; exit 5"))  # still running at restart
    before = {j: stub.Status(pb.StatusRequest(job_id=j), timeout=10).status
              for j in (a.job_id, b.job_id, c.job_id, d.job_id)}
    assert all(s.state == pb.JOB_STATE_RUNNING for s in before.values())

    crash(r1)
    open(go, "w").close()
    os.killpg(c.pid, signal.SIGTERM)  # the job's process group, as an admin would
    for pid in (a.pid, b.pid, c.pid):
        assert wait_pid_gone(pid, timeout=30), "job %d did not end" % pid

    r2 = rund_factory(base=r1.base).start()
    stub2 = r2.stub()
    st = stub2.Status(pb.StatusRequest(job_id=a.job_id), timeout=10).status
    assert (st.state, st.exit_code, st.reason) == (pb.JOB_STATE_EXITED, 3, "exited"), st
    assert st.end_time_unix_ns > st.start_time_unix_ns
    assert logs(stub2, a.job_id)[:2] == (b"out\0a", b"err-a")
    st = stub2.Status(pb.StatusRequest(job_id=b.job_id), timeout=10).status
    assert (st.state, st.exit_code) == (pb.JOB_STATE_EXITED, 0), st
    assert logs(stub2, b.job_id)[:2] == bytes_expected(300)  # byte-exact
    st = stub2.Status(pb.StatusRequest(job_id=c.job_id), timeout=10).status
    assert (st.state, st.signal, st.reason) == (pb.JOB_STATE_KILLED, 15, "signaled"), st
    # the adopted one ends under the new rund with its own code
    st = stub2.Status(pb.StatusRequest(job_id=d.job_id), timeout=10).status
    assert st.state == pb.JOB_STATE_RUNNING and st.pid == d.pid, st
    open(go2, "w").close()
    st = wait(stub2, d.job_id)
    assert (st.state, st.exit_code) == (pb.JOB_STATE_EXITED, 5), st
    assert logs(stub2, d.job_id)[0] == b"late"
    w = runctl(r2.addr, "wait", a.job_id)
    assert w.returncode == 3, w
    w = runctl(r2.addr, "wait", c.job_id)
    assert w.returncode == 128 + 15, w
    # nothing was left behind for the next rund to mistake
    r2.stop()
    r3 = rund_factory(base=r1.base).start()
    st = r3.stub().Status(pb.StatusRequest(job_id=d.job_id), timeout=10).status
    assert (st.state, st.exit_code) == (pb.JOB_STATE_EXITED, 5), st


def test_job_whose_end_nobody_saw_is_lost_not_success(rund_factory):
    r1 = rund_factory().start()
    stub = r1.stub()
    go = os.path.join(r1.base, "go")
    j = start(stub, *gated(go, "exit 0"))
    command = None
    end = time.monotonic() + 10
    while command is None and time.monotonic() < end:
        try:
            with open("/proc/%d/task/%d/children" % (j.pid, j.pid)) as f:
                command = int(f.read().split()[0])
        except (OSError, IndexError, ValueError):
            time.sleep(0.05)
    assert command and pid_alive(command)
    crash(r1)
    os.kill(j.pid, signal.SIGKILL)  # the waiter too: nobody can know how the job ends
    open(go, "w").close()
    assert wait_pid_gone(command, timeout=30)

    r2 = rund_factory(base=r1.base).start()
    st = r2.stub().Status(pb.StatusRequest(job_id=j.job_id), timeout=10).status
    assert (st.state, st.reason) == (pb.JOB_STATE_FAILED, "lost"), st
    s = runctl(r2.addr, "status", j.job_id, "--json")
    assert s.returncode == 0, s
    o = json.loads(s.stdout)
    assert o["state"] == "failed" and o["exit_code"] is None and o["signal"] is None, o
    s = runctl(r2.addr, "status", j.job_id)
    assert b"exit_code: -\n" in s.stdout, s.stdout
    w = runctl(r2.addr, "wait", j.job_id)
    assert w.returncode not in (0, 128 + 9), w
    assert b"lost" in w.stderr, w.stderr


WAITER = os.path.join(os.environ.get("PREFIX", "/usr/local"), "libexec", "runrpc", "rund-waiter")


def run_waiter(tmp_path, child_script, ignore_pipe=False):
    """sh forks child_script, then becomes rund-waiter for it (same pid, so the
    child is the waiter's), with the record file on fd 3 as rund gives it."""
    rec = tmp_path / "exit"
    p = subprocess.run(["/bin/sh", "-c", '%s & exec "$0" $! 3>"$1"' % child_script, WAITER,
                        str(rec)],
                       preexec_fn=((lambda: signal.signal(signal.SIGPIPE, signal.SIG_IGN))
                                   if ignore_pipe else None),
                       capture_output=True, timeout=30)
    return p, rec.read_text()


def test_waiter_records_and_mirrors_the_end(tmp_path):
    """rund-waiter (libc-free on x86_64/aarch64): the record's format, and it
    ends as its command did (so rund's own wait sees the same)."""
    p, rec = run_waiter(tmp_path, "exit 7")
    assert p.returncode == 7 and rec.startswith("exit 7 "), (p, rec)
    assert abs(int(rec.split()[2]) / 1e9 - time.time()) < 60, rec  # wall-clock ns
    p, rec = run_waiter(tmp_path, "/bin/sh -c 'kill -TERM $$'")
    assert p.returncode == -signal.SIGTERM and rec.startswith("signal 15 "), (p, rec)
    # a SIGPIPE ignored by whoever started the waiter still ends it by SIGPIPE
    p, rec = run_waiter(tmp_path, "%s -c 'import os, signal; signal.signal(signal.SIGPIPE, "
                        "signal.SIG_DFL); os.kill(os.getpid(), signal.SIGPIPE)'" % PY,
                        ignore_pipe=True)
    assert p.returncode == -signal.SIGPIPE and rec.startswith("signal 13 "), (p, rec)


def test_waiter_refuses_bad_arguments():
    for args, msg in (([], b"started by rund only"), (["12x"], b"bad child pid: 12x"),
                      (["-1"], b"bad child pid: -1"), ([""], b"bad child pid: "),
                      (["5", "2"], b"bad cgroup fd: 2"), (["5", "x"], b"bad cgroup fd: x"),
                      (["5", "4", "6"], b"started by rund only")):
        p = subprocess.run([WAITER] + args, capture_output=True, timeout=10)
        assert p.returncode == 125 and msg in p.stderr, (args, p)
    # a pid that is not its child: nothing to wait for
    p = subprocess.run([WAITER, "1"], capture_output=True, timeout=10)
    assert p.returncode == 125, p


def test_waiter_moves_itself_with_a_cgroup_fd(tmp_path):
    """cgroup v2: rund gives the job's cgroup.procs as fd 4 and rund-waiter
    writes "0" there (moves itself) before it waits (here: a plain file)."""
    rec, procs = tmp_path / "exit", tmp_path / "procs"
    p = subprocess.run(["/bin/sh", "-c", 'exit 4 & exec "$0" $! 4 3>"$1" 4>"$2"', WAITER,
                        str(rec), str(procs)], capture_output=True, timeout=30)
    assert p.returncode == 4 and rec.read_text().startswith("exit 4 "), (p, rec.read_text())
    assert procs.read_text() == "0"

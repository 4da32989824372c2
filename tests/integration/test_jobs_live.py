"""Many live jobs (issue 16): a running job costs rund one fd (its pidfd),
whatever its logs do; logs stay capped and followable without fds; when fds
run out anyway, callers get RESOURCE_EXHAUSTED saying so and rund logs it.
(The 10,000-job figures are in bench/livejobs.py.)"""
import os
import re
import shutil
import signal
import time

import grpc

from conftest import RUND, Rund, fd_count, pb, pid_alive, start, wait, job_status as status

CAP = 64 * 1024
TOTAL = 4 * 1024 * 1024
# 4 MiB of a counter pattern, then a numbered tick line every 20 ms until stopped
WRITER = ("import sys, time\n"
          "b = bytes(i % 251 for i in range(1 << 20))\n"
          "for _ in range(4): sys.stdout.buffer.write(b); sys.stdout.flush()\n"
          "n = 0\n"
          "while True:\n"
          "    sys.stderr.write('tick %d\\n' % n); sys.stderr.flush(); n += 1; time.sleep(0.02)\n")


def expected_tail(n):
    b = bytes(i % 251 for i in range(1 << 20)) * 4
    return b[len(b) - n:]



def test_running_jobs_hold_one_fd_each_logs_capped_and_followable(rund_factory):
    r = rund_factory(extra_args=["--max-log-bytes", "64K"]).start()
    stub = r.stub()
    assert wait(stub, start(stub, "true").job_id).state == pb.JOB_STATE_EXITED  # warm up
    base = fd_count(r.pid)
    jobs = [start(stub, "sleep", "1000") for _ in range(300)]
    held = fd_count(r.pid) - base
    assert held <= 300 + 4, "300 running jobs hold %d fds" % held

    # a running job writing past the cap: capped on disk, its bytes readable
    # with the dropped ones counted, and followed as it grows
    w = stub.Start(pb.StartRequest(command=pb.Command(path="python3", args=["-c", WRITER])),
                   timeout=30).job_id
    end = time.monotonic() + 60
    while status(stub, w).stdout_bytes < TOTAL and time.monotonic() < end:
        time.sleep(0.05)
    assert status(stub, w).stdout_bytes == TOTAL
    assert fd_count(r.pid) - base <= 301 + 4
    path = os.path.join(r.state, "jobs", w, "stdout")
    end = time.monotonic() + 30  # the punch is on rund's worker thread
    while os.stat(path).st_blocks * 512 > CAP + 3 * 4096 and time.monotonic() < end:
        time.sleep(0.05)
    assert os.stat(path).st_size == TOTAL
    assert os.stat(path).st_blocks * 512 <= CAP + 3 * 4096, os.stat(path)
    chunks = list(stub.Logs(pb.LogsRequest(job_id=w, stream=pb.STREAM_STDOUT), timeout=30))
    dropped = sum(c.dropped for c in chunks)
    data = b"".join(c.data for c in chunks)
    assert dropped + len(data) == TOTAL and CAP <= len(data) <= CAP + 4096
    assert data == expected_tail(len(data))
    # the follower sees ticks written after it started: growth comes through
    # inotify (rund keeps no fd of the file)
    it = stub.Logs(pb.LogsRequest(job_id=w, stream=pb.STREAM_STDERR, follow=True), timeout=60)
    seen = b""
    first = None
    for m in it:
        seen += m.data
        ticks = [int(x) for x in re.findall(rb"tick (\d+)\n", seen)]
        if ticks and first is None:
            first = ticks[-1]
        if ticks and ticks[-1] >= (first or 0) + 20:
            break
    it.cancel()
    ticks = [int(x) for x in re.findall(rb"tick (\d+)\n", seen)]
    assert ticks == list(range(len(ticks))), "a follower lost or reordered lines"
    assert len(ticks) >= 21

    # signal half, stop the rest (and the writer), wait for them all
    for k, resp in enumerate(jobs):
        if k % 2 == 0:
            stub.Signal(pb.SignalRequest(job_id=resp.job_id, number=signal.SIGTERM), timeout=10)
        else:
            stub.Stop(pb.StopRequest(job_id=resp.job_id, grace_ms=0), timeout=15)
    stub.Stop(pb.StopRequest(job_id=w, grace_ms=0), timeout=15)
    for k, resp in enumerate(jobs):
        st = wait(stub, resp.job_id, timeout=60)
        assert st.state == pb.JOB_STATE_KILLED, st
        assert st.reason == ("signaled" if k % 2 == 0 else "stopped"), st
        assert not pid_alive(resp.pid)
    st = wait(stub, w, timeout=60)
    assert st.state == pb.JOB_STATE_KILLED and st.stdout_bytes == TOTAL, st
    assert fd_count(r.pid) - base <= 4


class LimitedRund(Rund):
    """rund under prlimit: soft limit soft, hard limit hard."""

    def __init__(self, soft, hard, **kw):
        super().__init__(**kw)
        self.soft, self.hard = soft, hard

    def start(self, wait=True):
        import conftest
        saved = conftest.RUND
        wrapper = os.path.join(self.base, "rund-limited")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\nexec prlimit --nofile=%d:%d -- %s \"$@\"\n"
                    % (self.soft, self.hard, RUND))
        os.chmod(wrapper, 0o755)
        conftest.RUND = wrapper
        try:
            return super().start(wait)
        finally:
            conftest.RUND = saved


def test_start_raises_the_soft_fd_limit_and_logs_the_room():
    r = LimitedRund(100, 900)
    r.start()
    try:
        with open("/proc/%d/limits" % r.pid) as f:
            line = [x for x in f if x.startswith("Max open files")][0]
        assert line.split()[3:5] == ["900", "900"], line
        m = re.search(r'msg="fd limit 900: room for about (\d+) running jobs"', r.stderr_text())
        assert m, r.stderr_text()[-3000:]
        # 900 minus the reserve (900/8) minus what rund holds at start
        room = int(m.group(1))
        assert 900 - 112 - 40 <= room < 900 - 112, room
        # a job does not inherit the raised limit
        stub = r.stub()
        out = stub.Start(pb.StartRequest(command=pb.Command(
            path="sh", args=["-c", "ulimit -Sn"])), timeout=30).job_id
        assert wait(stub, out).state == pb.JOB_STATE_EXITED
        data = b"".join(m.data for m in stub.Logs(pb.LogsRequest(job_id=out), timeout=30))
        assert data == b"100\n", data
    finally:
        r.stop()
        r.kill()
        shutil.rmtree(r.base, ignore_errors=True)


def test_out_of_fds_is_resource_exhausted_for_the_caller_and_logged():
    # a tiny limit and a reserve of 1: the starts run into EMFILE itself
    r = LimitedRund(64, 64, extra_args=["--fd-reserve", "1"])
    try:
        r.start()
        stub = r.stub()
        ids, refused = [], []
        for _ in range(80):
            try:
                ids.append(start(stub, "sleep", "1000").job_id)
            except grpc.RpcError as e:
                refused.append(e)
                if len(refused) >= 3:
                    break
        assert refused, "no refusal after %d jobs" % len(ids)
        for e in refused:
            assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e
        msgs = [e.details() for e in refused]
        assert any("rund is out of file descriptors (RLIMIT_NOFILE 64)" in m for m in msgs), msgs
        assert not any("Too many open files" in m and "out of file descriptors" not in m
                       for m in msgs), msgs
        assert len(ids) >= 10, len(ids)
        assert 'msg="refused: out of file descriptors"' in r.stderr_text()
        # still serving: what needs no new fd works, and a start after jobs end
        assert len(stub.List(pb.ListRequest(), timeout=10).jobs) >= len(ids)
        for j in ids[:8]:
            stub.Stop(pb.StopRequest(job_id=j, grace_ms=0), timeout=15)
            wait(stub, j)
        j = start(stub, "true").job_id
        assert wait(stub, j).state == pb.JOB_STATE_EXITED
        for j in ids[8:]:
            stub.Stop(pb.StopRequest(job_id=j, grace_ms=0), timeout=15)
        for j in ids[8:]:
            assert wait(stub, j).state == pb.JOB_STATE_KILLED
    finally:
        r.stop()
        r.kill()
        shutil.rmtree(r.base, ignore_errors=True)

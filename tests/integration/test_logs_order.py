"""runctl logs / Logs: stdout and stderr interleaved as the job wrote them
(the keeper's order index in the job's exit file), for plain and sandboxed
jobs and for followers; --timestamps and --since; jobs stored before the
index read as before (stream by stream)."""
import datetime
import os
import re
import subprocess
import time

import grpc
import pytest

from conftest import RUNCTL, Ctl, logs, pb, rpc_error, start, wait, wait_for, job_status as status

PY = "/usr/bin/python3"
# the job writes a chunk and waits until its keeper moved it out of the pipe
# (FIONREAD on the pipe's write end): each chunk is moved apart, in order
SYNC = ("import fcntl, os, struct, sys, termios, time\n"
        "def put(fd, b):\n"
        "    os.write(fd, b)\n"
        "    while struct.unpack('i', fcntl.ioctl(fd, termios.FIONREAD, b'\\0' * 4))[0]:\n"
        "        time.sleep(0.001)\n"
        "def wait_file(p):\n"
        "    while not os.path.exists(p): time.sleep(0.01)\n")
N = 25
BODY = ("for i in range(%d):\n"
        "    put(1, b'out%%d\\n' %% i)\n"
        "    put(2, b'err%%d\\n' %% i)\n"
        "put(1, b'par'); put(2, b'x\\n'); put(1, b'tial\\n')\n" % N)
ALTERNATING = SYNC + BODY
EXPECTED = b"".join(b"out%d\nerr%d\n" % (i, i) for i in range(N)) + b"parx\ntial\n"
STAMP = re.compile(rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{9})Z (.*)$", re.S)


def start_sandboxed(stub, sandbox, *argv):
    req = pb.StartRequest(command=pb.Command(path=argv[0], args=list(argv[1:])))
    if sandbox:
        req.sandbox.CopyFrom(pb.Sandbox(profile=sandbox))
    return stub.Start(req, timeout=30).job_id


def merged(ctl, *args):
    """runctl with its stdout and stderr into one pipe: the order it wrote."""
    p = subprocess.run([RUNCTL, "--addr", ctl.addr] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    return p.returncode, p.stdout


def stamp_ns(line):
    m = STAMP.match(line)
    assert m, line
    t = datetime.datetime.strptime(m.group(1).decode(), "%Y-%m-%dT%H:%M:%S")
    sec = int(t.replace(tzinfo=datetime.timezone.utc).timestamp())
    return sec * 10**9 + int(m.group(2)), m.group(3)


def rfc3339(ns, tz_minutes=0):
    tz = datetime.timezone(datetime.timedelta(minutes=tz_minutes))
    t = datetime.datetime.fromtimestamp(ns // 10**9, tz)
    h, m = divmod(abs(tz_minutes), 60)
    off = "%s%02d:%02d" % ("-" if tz_minutes < 0 else "+", h, m) if tz_minutes else "Z"
    return t.strftime("%Y-%m-%dT%H:%M:%S") + ".%09d" % (ns % 10**9) + off


@pytest.mark.parametrize("sandbox", [None, "default"])
def test_interleaved_exactly_as_written(rund, ctl, sandbox):
    stub = rund.stub()
    j = start_sandboxed(stub, sandbox, PY, "-c", ALTERNATING)
    st = wait(stub, j)
    assert st.state == pb.JOB_STATE_EXITED and st.exit_code == 0, st
    rc, out = merged(ctl, "logs", j)
    assert rc == 0 and out == EXPECTED, out
    # the responses come in that order too, offsets contiguous per stream
    _, _, msgs = logs(stub, j)
    order = b"".join(m.data for m in msgs)
    assert order == EXPECTED
    # each stream alone is still exact
    r = ctl("logs", j, "--stderr")
    assert r.out == b"" and r.err == b"".join(b"err%d\n" % i for i in range(N)) + b"x\n", r


def test_follower_sees_the_same_order(rund, ctl):
    flag = os.path.join(rund.base, "go")
    j = start(rund.stub(), PY, "-c",
              SYNC + "put(1, b'ready\\n')\nwait_file(%r)\n" % flag + BODY).job_id
    p = subprocess.Popen([RUNCTL, "--addr", ctl.addr, "logs", "-f", j],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert p.stdout.readline() == b"ready\n"  # following live before the rest is written
        open(flag, "w").close()
        out, _ = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == 0 and out == EXPECTED, out
    # a follower that starts at given offsets gets the rest in the same order
    rc, out = merged(ctl, "logs", j, "-f", "--offset", "%d,%d" % (len(b"ready\nout0\n"), 0))
    assert rc == 0 and out == EXPECTED[len(b"out0\n"):], out


def test_timestamps(rund, ctl):
    stub = rund.stub()
    j = start(stub, PY, "-c", ALTERNATING).job_id
    st = wait(stub, j)
    _, _, msgs = logs(stub, j, timestamps=True)
    times = [m.time_unix_ns for m in msgs]
    assert all(t > 0 for t in times) and times == sorted(times), times
    assert st.start_time_unix_ns <= times[0] and times[-1] <= st.end_time_unix_ns, (st, times)
    par = [m for m in msgs if m.data == b"par"]
    assert len(par) == 1, msgs  # one response per chunk moved
    r = ctl("logs", j, "-t")
    assert r.rc == 0, r
    for stream, text in ((1, r.out), (2, r.err)):
        lines = text.splitlines(keepends=True)
        got = [stamp_ns(line) for line in lines]
        want = [m for m in msgs if m.stream == stream]
        # one stamp per line, the time of the chunk holding its first byte
        assert [t for t, _ in got] == sorted(t for t, _ in got)
        assert [b for _, b in got] == (b"".join(m.data for m in want)).splitlines(keepends=True)
    # a line split across chunks gets its first chunk's time
    partial = [t for t, b in (stamp_ns(x) for x in r.out.splitlines(True)) if b == b"partial\n"]
    assert partial == [par[0].time_unix_ns]
    # --timestamps with --tail and one stream
    r = ctl("logs", j, "--timestamps", "--tail", "1", "--stdout")
    assert r.rc == 0 and stamp_ns(r.out)[1] == b"partial\n", r


def test_since_time_and_duration(rund, ctl):
    stub = rund.stub()
    flag = os.path.join(rund.base, "go")
    j = start(stub, PY, "-c", SYNC + "put(1, b'a\\n'); put(2, b'e1\\n')\nwait_file(%r)\n"
              "put(1, b'b\\n'); put(2, b'e2\\n')\n" % flag).job_id
    assert wait_for(lambda: logs(stub, j)[1] == b"e1\n")
    t = time.time_ns()  # after a and e1 were moved, before b and e2 were written
    open(flag, "w").close()
    wait(stub, j)
    for since in (rfc3339(t), rfc3339(t, 120), rfc3339(t, -330), "%d.%09d" % divmod(t, 10**9)):
        r = ctl("logs", j, "--since", since)
        assert r.rc == 0 and r.out == b"b\n" and r.err == b"e2\n", (since, r)
    msgs = list(stub.Logs(pb.LogsRequest(job_id=j, since_unix_ns=t), timeout=30))
    assert [(m.stream, m.offset, m.data) for m in msgs] == [
        (pb.STREAM_STDOUT, 2, b"b\n"), (pb.STREAM_STDERR, 3, b"e2\n")], msgs
    r = ctl("logs", j, "--since", "1h")
    assert r.rc == 0 and r.out == b"a\nb\n" and r.err == b"e1\ne2\n", r
    time.sleep(1.5)
    for dur in ("1s", "0.5s", "900ms", "0h0m1s"):
        r = ctl("logs", j, "--since", dur)
        assert r.rc == 0 and r.out == b"" and r.err == b"", (dur, r)
    r = ctl("logs", j, "--since", rfc3339(t), "--stdout", "-t")
    assert r.rc == 0 and stamp_ns(r.out)[1] == b"b\n", r


@pytest.mark.parametrize("bad", ["", "yesterday", "10x", "-5m", "1h-5m", "1.5.2s", "1e3s",
                                 "2024-13-01T00:00:00Z", "2024-02-30T00:00:00Z",
                                 "2024-01-01", "2024-01-01T00:00:00", "2024-01-01T25:00:00Z",
                                 "2024-01-01T00:00:00+1:00", "10.", "1969-12-31T23:59:59Z"])
def test_since_bad_values(ctl, bad):
    r = ctl("logs", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "--since", bad)
    assert r.rc == 2 and 'invalid --since "%s"' % bad in r.errtext, r


def test_since_before_the_epoch_over_grpc(stub):
    j = start(stub, "/bin/true").job_id
    wait(stub, j)
    e = rpc_error(logs, stub, j, since_unix_ns=-1)
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
    assert "since_unix_ns -1 is before the epoch" in e.details()


def test_job_stored_before_the_index_reads_stream_by_stream(rund_factory):
    r = rund_factory().start()
    stub = r.stub()
    j = start(stub, PY, "-c", ALTERNATING).job_id
    wait(stub, j)
    r.stop()
    # the exit file as rund-waiter wrote it before the index: the lines only
    exit_file = os.path.join(r.state, "jobs", j, "exit")
    assert os.path.getsize(exit_file) > 128
    os.truncate(exit_file, 128)
    r.start()
    stub = r.stub()
    ctl = Ctl(r.addr)
    rc, out = merged(ctl, "logs", j)
    outs = b"".join(b"out%d\n" % i for i in range(N)) + b"partial\n"
    errs = b"".join(b"err%d\n" % i for i in range(N)) + b"x\n"
    assert rc == 0 and out == outs + errs, out
    assert wait(stub, j).exit_code == 0
    # no times to show or filter on: said, not guessed
    res = ctl("logs", j, "--timestamps")
    assert res.rc == 1 and "stored without times" in res.errtext, res
    e = rpc_error(logs, stub, j, since_unix_ns=1)
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION, e
    r.stop()

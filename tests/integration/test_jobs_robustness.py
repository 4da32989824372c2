"""rund keeps serving through garbage, half prefaces, huge messages and
abandoned connections; deadlines are honoured; state survives a restart."""

import os
import resource
import signal
import socket
import time

import grpc
import pytest

from conftest import (Ctl, MiB, cmd, fd_count, logs, pb, raw_connect, rpc_error, start, unused_ulid,
                      wait)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def assert_serving(stub):
    r = start(stub, "/bin/echo", "alive")
    assert wait(stub, r.job_id).exit_code == 0
    assert logs(stub, r.job_id)[0] == b"alive\n"


def send_quiet(s, data):
    """Send what the server is willing to take; it may close on us early."""
    try:
        s.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


def read_until_closed(s, limit=1 << 20):
    got = b""
    try:
        while len(got) < limit:
            b = s.recv(65536)
            if not b:
                break
            got += b
    except (ConnectionResetError, socket.timeout):
        pass
    return got


def test_garbage_bytes(rund, stub):
    s = raw_connect(rund.sock)
    send_quiet(s, os.urandom(4096))
    read_until_closed(s)  # a GOAWAY and a close, or a reset: either way it must end
    s.close()
    assert_serving(stub)


def test_garbage_after_preface(rund, stub):
    s = raw_connect(rund.sock)
    send_quiet(s, PREFACE + b"\x00\x00\x04\x07\x00\x00\x00\x00\x00" + os.urandom(2048))
    read_until_closed(s)
    s.close()
    assert_serving(stub)


def test_http1_request(rund, stub):
    s = raw_connect(rund.sock)
    send_quiet(s, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    read_until_closed(s)
    s.close()
    assert_serving(stub)


def test_half_preface_does_not_block_others(rund, stub):
    s = raw_connect(rund.sock)
    s.sendall(PREFACE[:10])
    # the half-open connection stays; everyone else is served meanwhile
    assert_serving(stub)
    s.sendall(PREFACE[10:16])
    assert_serving(stub)
    s.close()
    assert_serving(stub)


@pytest.mark.timeout(90)
def test_100mb_message_rejected(rund, stub):
    big = rund.stub(**{"grpc.max_send_message_length": -1})
    req = pb.StartRequest(command=cmd("/bin/echo", "z" * (100 * MiB)))
    e = rpc_error(big.Start, req, timeout=60)
    assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e
    assert_serving(stub)
    # and on a raw connection: a DATA frame header announcing 16 MiB (above
    # any max frame size), a little of it, then the peer goes away
    s = raw_connect(rund.sock)
    send_quiet(s, PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
              + b"\xff\xff\xff\x00\x00\x00\x00\x00\x01" + b"\x00" * 65536)
    read_until_closed(s)
    s.close()
    assert_serving(stub)


def test_5mib_exec_stdin_message_rejected_but_smaller_ok(stub):
    """4 MiB is the receive limit per message, not per stream."""
    def reqs(size):
        yield pb.ExecRequest(start=pb.ExecStart(command=cmd("wc", "-c")))
        yield pb.ExecRequest(stdin=b"q" * size)
        yield pb.ExecRequest(close_stdin=True)

    out = b""
    for r in stub.Exec(reqs(3 * MiB), timeout=30):
        if r.WhichOneof("msg") == "stdout":
            out += r.stdout
    assert out.strip() == str(3 * MiB).encode()
    big = stub
    e = rpc_error(lambda: list(big.Exec(reqs(5 * MiB), timeout=30)))
    assert e.code() in (grpc.StatusCode.RESOURCE_EXHAUSTED,), e


@pytest.mark.timeout(90)
def test_1000_connections_opened_and_abandoned(rund, stub):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 1200
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    try:
        assert_serving(stub)
        fds_before = fd_count(rund.pid)
        socks = []
        for i in range(1000):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(10)
            s.connect(rund.sock)
            # a third say nothing, a third half a preface, a third a full preface
            if i % 3 == 1:
                s.sendall(PREFACE[:7])
            elif i % 3 == 2:
                s.sendall(PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            socks.append(s)
        assert_serving(stub)
        for s in socks:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()
        assert_serving(stub)
        # rund lets go of every abandoned connection
        end = time.monotonic() + 20
        while time.monotonic() < end and fd_count(rund.pid) > fds_before + 5:
            time.sleep(0.1)
        assert fd_count(rund.pid) <= fds_before + 5, "rund kept %d fds (before: %d)" % (
            fd_count(rund.pid), fds_before)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_wait_deadline_exceeded_job_keeps_running(stub):
    r = start(stub, "sleep", "30")
    t0 = time.monotonic()
    e = rpc_error(stub.Wait, pb.WaitRequest(job_id=r.job_id), timeout=0.5)
    assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - t0 < 10
    st = stub.Status(pb.StatusRequest(job_id=r.job_id), timeout=10).status
    assert st.state == pb.JOB_STATE_RUNNING, "a client's deadline ended the job"
    # the server really let go of the expired call: many more, then still fine
    for _ in range(20):
        rpc_error(stub.Wait, pb.WaitRequest(job_id=r.job_id), timeout=0.05)
    assert stub.Status(pb.StatusRequest(job_id=r.job_id), timeout=10).status.state == \
        pb.JOB_STATE_RUNNING
    stub.Stop(pb.StopRequest(job_id=r.job_id, grace_ms=1000), timeout=20)


def test_logs_follow_deadline(stub):
    r = start(stub, "/bin/sh", "-c", "echo first; exec sleep 30")
    got = b""
    with pytest.raises(grpc.RpcError) as ei:
        for m in stub.Logs(pb.LogsRequest(job_id=r.job_id, follow=True), timeout=1.0):
            got += m.data
    assert ei.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert got == b"first\n"
    assert stub.Status(pb.StatusRequest(job_id=r.job_id), timeout=10).status.state == \
        pb.JOB_STATE_RUNNING
    stub.Stop(pb.StopRequest(job_id=r.job_id, grace_ms=1000), timeout=20)


def test_start_with_deadline_does_not_bind_job(stub):
    r = stub.Start(pb.StartRequest(command=cmd("/bin/sh", "-c", "sleep 1.5; echo late")),
                   timeout=1.0)
    time.sleep(1.2)  # the Start call's deadline has long passed
    st = wait(stub, r.job_id, timeout=20)
    assert st.exit_code == 0
    assert logs(stub, r.job_id)[0] == b"late\n"


def test_rund_restart_keeps_finished_jobs(rund_factory):
    r1 = rund_factory().start()
    stub = r1.stub()
    a = start(stub, "/bin/sh", "-c", "printf 'out\\0put'; printf err >&2; exit 3", tags=["keep"])
    b = start(stub, "/bin/sh", "-c", "kill -TERM $$")
    from conftest import BYTES_SCRIPT, PY, bytes_expected
    c = start(stub, PY, "-c", BYTES_SCRIPT, "100")
    sa, sb, sc = wait(stub, a.job_id), wait(stub, b.job_id), wait(stub, c.job_id)
    r1.stop()
    assert not os.path.exists(r1.sock), "rund left its unix socket behind"

    r2 = rund_factory(base=r1.base)
    r2.start()
    stub2 = r2.stub()
    for old, jid in ((sa, a.job_id), (sb, b.job_id), (sc, c.job_id)):
        st = stub2.Status(pb.StatusRequest(job_id=jid), timeout=10).status
        assert st.state == old.state
        assert (st.exit_code, st.signal, st.reason) == (old.exit_code, old.signal, old.reason)
        assert st.pid == old.pid
        assert (st.start_time_unix_ns, st.end_time_unix_ns) == (old.start_time_unix_ns,
                                                                 old.end_time_unix_ns)
        assert st.request == old.request
    out, err, _ = logs(stub2, a.job_id)
    assert (out, err) == (b"out\0put", b"err")
    want_out, want_err = bytes_expected(100)
    assert logs(stub2, c.job_id)[:2] == (want_out, want_err)
    assert logs(stub2, a.job_id, follow=True)[:2] == (b"out\0put", b"err")
    assert wait(stub2, a.job_id).exit_code == 3
    listed = {j.job_id for j in stub2.List(pb.ListRequest(tag="keep"), timeout=10).jobs}
    assert listed == {a.job_id}
    # new jobs after a restart get new, later ids
    d = start(stub2, "/bin/true")
    assert d.job_id > c.job_id
    e = rpc_error(stub2.Status, pb.StatusRequest(job_id=unused_ulid()), timeout=10)
    assert e.code() == grpc.StatusCode.NOT_FOUND


def test_rund_restart_job_running_at_shutdown_is_not_lost(rund_factory):
    r1 = rund_factory().start()
    stub = r1.stub()
    a = start(stub, "sleep", "30")
    r1.stop()
    r2 = rund_factory(base=r1.base)
    r2.start()
    st = r2.stub().Status(pb.StatusRequest(job_id=a.job_id), timeout=10).status
    # either re-adopted (still running) or marked clearly; never silently gone
    assert st.state in (pb.JOB_STATE_RUNNING, pb.JOB_STATE_FAILED, pb.JOB_STATE_KILLED), st
    if st.state != pb.JOB_STATE_RUNNING:
        assert st.reason
    else:
        r2.stub().Stop(pb.StopRequest(job_id=a.job_id, grace_ms=1000), timeout=20)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_clean_shutdown_on_signal(rund_factory, sig):
    r = rund_factory().start()
    assert_serving(r.stub())
    r.proc.send_signal(sig)
    assert r.proc.wait(20) == 0
    r.assert_clean_stderr()
    assert not os.path.exists(r.sock), "rund left its unix socket behind"


def test_structured_listening_log_line(rund):
    text = rund.stderr_text()
    assert 'msg="listening"' in text or "msg=listening" in text
    assert rund.addr in text or rund.sock in text


def test_grpc_python_independent_client_many_calls(stub):
    """A burst of unary calls on one connection, several in flight at once."""
    r = start(stub, "/bin/true")
    wait(stub, r.job_id)
    futs = [stub.Status.future(pb.StatusRequest(job_id=r.job_id), timeout=20) for _ in range(300)]
    for f in futs:
        assert f.result().status.job_id == r.job_id


@pytest.mark.parametrize("damage", ["truncated", "garbage", "bad state", "missing", "empty"])
def test_damaged_job_json_marks_that_job_failed_and_the_others_load(rund_factory, damage):
    r1 = rund_factory().start()
    stub = r1.stub()
    bad = start(stub, "/bin/sh", "-c", "echo kept-output")
    good = start(stub, "/bin/sh", "-c", "exit 4")
    wait(stub, bad.job_id)
    wait(stub, good.job_id)
    r1.stop()
    path = os.path.join(r1.state, "jobs", bad.job_id, "job.json")
    with open(path, "rb") as f:
        text = f.read()
    if damage == "missing":
        os.unlink(path)
    else:
        new = {"truncated": text[:len(text) // 2], "garbage": b"\x00\xffnot json",
               "bad state": text.replace(b'"state":"exited"', b'"state":"sleepy"'),
               "empty": b""}[damage]
        with open(path, "wb") as f:
            f.write(new)

    r2 = rund_factory(base=r1.base)
    r2.start()
    stub2 = r2.stub()
    st = stub2.Status(pb.StatusRequest(job_id=bad.job_id), timeout=10).status
    assert st.state == pb.JOB_STATE_FAILED and st.reason == "corrupt", st
    assert "job.json" in st.detail, st.detail
    assert st.exit_code == 0 and st.end_time_unix_ns > 0
    # its logs are still there, and the other job is as it was
    assert logs(stub2, bad.job_id)[0] == b"kept-output\n"
    assert wait(stub2, good.job_id).exit_code == 4
    assert bad.job_id in {j.job_id for j in stub2.List(pb.ListRequest(), timeout=10).jobs}
    assert "is failed/corrupt" in r2.stderr_text()
    # the file is left for a person to look at
    if damage != "missing":
        with open(path, "rb") as f:
            assert f.read() == new
    out = Ctl(r2.addr)("status", bad.job_id)
    assert out.rc == 0 and "reason: corrupt" in out.text and "detail: " in out.text, out

"""StartRequest.stdin / tty: the job's keeper holds its stdin (a pipe, or a
pty's master) and takes bytes, EOF and window sizes from the 0600 socket in
the job's directory (the frames of src/waiter/input.h; rund's side is
job_stdin_write & co., tested in tests/unit/job_input_test.c). Here: what
Start accepts and refuses, and the keeper's socket driven directly."""
import os
import socket
import stat
import struct
import time

import grpc
import pytest

from conftest import logs, pb, rpc_error, wait


def start(stub, script, **kw):
    req = pb.StartRequest(command=pb.Command(path="/bin/sh", args=["-c", script]), **kw)
    return stub.Start(req, timeout=30).job_id


def keeper(rund, job):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(os.path.join(rund.state, "jobs", job, "stdin"))
    return s


def frame(kind, payload=b"", value=None):
    n = len(payload) if value is None else value
    return kind + struct.pack("<I", n) + payload


def test_stdin_through_the_keeper_socket(rund, stub):
    j = start(stub, "cat; echo end", stdin=True)
    path = os.path.join(rund.state, "jobs", j, "stdin")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    st = stub.Status(pb.StatusRequest(job_id=j), timeout=10).status
    assert st.request.stdin and not st.request.tty
    s = keeper(rund, j)
    s.sendall(frame(b"D", b"hello ") + frame(b"D", b"world\n"))
    s.close()
    # a second connection (a restarted rund) takes over
    s = keeper(rund, j)
    s.sendall(frame(b"D", b"again\n") + frame(b"C"))
    st = wait(stub, j)
    assert st.state == pb.JOB_STATE_EXITED and st.exit_code == 0, st
    assert logs(stub, j)[0] == b"hello world\nagain\nend\n"
    s.close()


def test_tty_window_and_output(rund, stub):
    j = start(stub, "stty size; tty; read x; stty size; echo got $x", tty=True,
              window=pb.TerminalSize(rows=30, cols=100), term="vt100")
    st = stub.Status(pb.StatusRequest(job_id=j), timeout=10).status
    assert st.request.tty and st.request.window.rows == 30 and st.request.term == "vt100"
    s = keeper(rund, j)
    end = time.monotonic() + 10
    while b"30 100" not in logs(stub, j)[0] and time.monotonic() < end:
        time.sleep(0.05)
    s.sendall(frame(b"W", value=40 | 120 << 16) + frame(b"D", b"yes\n"))
    st = wait(stub, j)
    out = logs(stub, j)[0]
    assert st.exit_code == 0, (st, out)
    assert b"30 100" in out and b"/dev/pts/" in out and b"40 120" in out and b"got yes" in out
    s.close()


def test_plain_job_has_no_socket(rund, stub):
    j = start(stub, "true")
    wait(stub, j)
    assert not os.path.exists(os.path.join(rund.state, "jobs", j, "stdin"))


@pytest.mark.parametrize("kw, msg", [
    (dict(window=pb.TerminalSize(rows=24, cols=80)), "window without tty"),
    (dict(term="xterm"), "term without tty"),
    (dict(tty=True, window=pb.TerminalSize(rows=0, cols=80)), "window"),
    (dict(tty=True, window=pb.TerminalSize(rows=24, cols=10001)), "window"),
    (dict(tty=True, term="x term"), "term: byte 0x20"),
    (dict(tty=True, sandbox=pb.Sandbox(profile="default")), "tty with a sandbox profile"),
    (dict(stdin=True, sandbox=pb.Sandbox(profile="default")), "stdin with a sandbox profile"),
])
def test_bad_requests_are_refused(stub, kw, msg):
    e = rpc_error(start, stub, "true", **kw)
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and msg in e.details(), e.details()


def test_runctl_start_i_and_t_set_the_request(rund, ctl):
    for flags, want_tty in ((["-i"], False), (["-t"], True), (["-it"], True)):
        r = ctl("start", *flags, "--", "sleep", "30")
        assert r.rc == 0, r
        j = r.text.strip()
        stub = rund.stub()
        st = stub.Status(pb.StatusRequest(job_id=j), timeout=10).status
        assert st.request.stdin and st.request.tty == want_tty, st.request
        stub.Stop(pb.StopRequest(job_id=j, grace_ms=0), timeout=10)
        wait(stub, j)

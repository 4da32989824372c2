"""loader.Loader through the real binary: Exec in place keeps the pid and
hands the connection's stdio to the command; Link streams a binary into a
sealed memfd; Load runs it as a new process or in place."""

import os
import shutil
import subprocess
import time

import grpc
import pytest

from conftest import wait_pid_gone
from shim_helpers import Bridge, RUNRPC, lpb, rpb


def code_of(fn):
    with pytest.raises(grpc.RpcError) as ei:
        fn()
    return ei.value.code(), ei.value.details()


def chunks(data, n=65536):
    for i in range(0, len(data), n):
        yield lpb.BytesValue(value=data[i:i + n])


def wait_file(path, timeout=20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if os.path.exists(path) and os.path.getsize(path) > 0:
            return open(path).read()
        time.sleep(0.05)
    raise AssertionError("%s never written" % path)


def test_exec_in_place_keeps_the_pid(tmp_path):
    b = Bridge()
    out = tmp_path / "pid"
    r = b.loader.Exec(lpb.ExecutionArgs(argv=["sh", "-c", "echo $$ $FOO $PWD > %s" % out],
                                        env={"FOO": "bar"}, cwd=str(tmp_path)), timeout=30)
    pid, foo, pwd = wait_file(out).split()
    assert int(pid) == r.pid and foo == "bar" and pwd == str(tmp_path)
    b.close(check=False)  # the process is sh now: no sanitizer report to read


def test_exec_in_place_gets_the_connection_as_stdio():
    """After the answer, the pipe is the command's: what it prints reaches
    the client raw (here: a client speaking HTTP/2 by hand through a pipe)."""
    import h2.connection
    import h2.events
    p = subprocess.Popen([RUNRPC], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    conn = h2.connection.H2Connection()
    conn.initiate_connection()
    msg = lpb.ExecutionArgs(argv=["sh", "-c", "echo hello-from-$$"]).SerializeToString()
    conn.send_headers(1, [(":method", "POST"), (":scheme", "http"), (":authority", "x"),
                          (":path", "/loader.Loader/Exec"), ("te", "trailers"),
                          ("content-type", "application/grpc")])
    conn.send_data(1, b"\x00" + len(msg).to_bytes(4, "big") + msg, end_stream=True)
    p.stdin.write(conn.data_to_send())
    p.stdin.flush()
    raw = b""
    end = time.monotonic() + 20
    while b"hello-from-%d" % p.pid not in raw and time.monotonic() < end:
        chunk = os.read(p.stdout.fileno(), 65536)
        if not chunk:
            break
        raw += chunk
    assert b"hello-from-%d\n" % p.pid in raw
    p.stdin.close()
    assert p.wait(timeout=20) == 0


@pytest.mark.parametrize("args,code,text", [
    (dict(), grpc.StatusCode.INVALID_ARGUMENT, "argv is empty"),
    (dict(argv=["no-such-cmd-x"]), grpc.StatusCode.NOT_FOUND, "not found"),
    (dict(argv=["/etc/passwd"]), grpc.StatusCode.PERMISSION_DENIED, "cannot be executed"),
    (dict(argv=["true"], cwd="x"), grpc.StatusCode.INVALID_ARGUMENT, "not absolute"),
    (dict(argv=["true"], env={"": "x"}), grpc.StatusCode.INVALID_ARGUMENT, "env name"),
])
def test_exec_bad_fields_leave_the_server_serving(args, code, text):
    b = Bridge()
    try:
        c, d = code_of(lambda: b.loader.Exec(lpb.ExecutionArgs(**args), timeout=30))
        assert c == code and text in d, d
        assert b.runner.Info(rpb.InfoRequest(), timeout=30).pid == b.server_pid()
    finally:
        b.close()


def test_link_and_load_a_streamed_binary(tmp_path):
    """The bytes of a program the server never saw on disk (a copy of touch
    under a name of our own), streamed in, sealed, run as a new process."""
    data = open(shutil.which("touch"), "rb").read()
    b = Bridge()
    try:
        link = b.loader.Link(chunks(data), timeout=30)
        assert link.handle.startswith("link-") and link.size == len(data)
        target = tmp_path / "made-by-load"
        r = b.loader.Load(lpb.LoadArgs(handle=link.handle, argv=["touch", str(target)]),
                          timeout=30)
        assert r.pid > 0 and r.process.startswith("proc-")
        st = b.runner.Wait(rpb.WaitRequest(handle=r.process), timeout=30)
        assert (st.pid, st.code) == (r.pid, 0)
        assert target.exists()
        # the same handle runs again
        r2 = b.loader.Load(lpb.LoadArgs(handle=link.handle, argv=["touch", "/nonexistent/x"]),
                           timeout=30)
        assert b.runner.Wait(rpb.WaitRequest(handle=r2.process), timeout=30).code == 1
    finally:
        b.close()


def test_load_in_place_keeps_the_pid(tmp_path):
    data = open("/bin/sh", "rb").read()
    b = Bridge()
    out = tmp_path / "pid"
    link = b.loader.Link(chunks(data), timeout=30)
    r = b.loader.Load(lpb.LoadArgs(handle=link.handle, argv=["sh", "-c", "echo $$ > %s" % out],
                                   in_place=True), timeout=30)
    assert int(wait_file(out)) == r.pid
    assert r.process == ""
    b.close(check=False)


def test_link_and_load_errors():
    b = Bridge()
    try:
        c, d = code_of(lambda: b.loader.Link(iter([]), timeout=30))
        assert c == grpc.StatusCode.INVALID_ARGUMENT and "no bytes" in d
        c, d = code_of(lambda: b.loader.Load(lpb.LoadArgs(handle="link-9", argv=["x"]),
                                             timeout=30))
        assert c == grpc.StatusCode.NOT_FOUND
        c, d = code_of(lambda: b.loader.Load(lpb.LoadArgs(argv=["x"]), timeout=30))
        assert c == grpc.StatusCode.INVALID_ARGUMENT and "handle is empty" in d
        link = b.loader.Link(chunks(b"#!/bin/sh\necho hi\n"), timeout=30)
        c, d = code_of(lambda: b.loader.Load(lpb.LoadArgs(handle=link.handle), timeout=30))
        assert c == grpc.StatusCode.INVALID_ARGUMENT and "argv is empty" in d
    finally:
        b.close()

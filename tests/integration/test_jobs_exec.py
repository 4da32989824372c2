"""runrpc.v1.Jobs/Exec through python grpcio: stdin, EOF, exit status, bytes, disconnect."""

import queue
import threading
import time

import grpc
import pytest

from conftest import (BYTES_SCRIPT, PY, bytes_expected, cmd, exec_call, pb, pb_grpc, pid_alive,
                      wait_pid_gone)


def test_exec_echo(stub):
    pid, out, err, ex, msgs = exec_call(stub, "echo", "hello", "world")
    assert pid > 0
    assert out == b"hello world\n" and err == b""
    assert (ex.exit_code, ex.signal, ex.reason) == (0, 0, "exited")
    assert msgs[-1] == "exit"


def test_exec_exit_code(stub):
    _, _, _, ex, _ = exec_call(stub, "/bin/sh", "-c", "exit 42")
    assert (ex.exit_code, ex.signal, ex.reason) == (42, 0, "exited")


def test_exec_signal(stub):
    _, _, _, ex, _ = exec_call(stub, "/bin/sh", "-c", "kill -SEGV $$")
    assert ex.signal == 11 and ex.reason == "signaled"


def test_exec_stdin_cat_exact(stub):
    data = bytes(range(256)) * 4096  # 1 MiB of every byte value
    chunks = [data[i:i + 65536] for i in range(0, len(data), 65536)]
    _, out, err, ex, _ = exec_call(stub, "cat", stdin_chunks=chunks)
    assert out == data and err == b""
    assert ex.exit_code == 0


def test_exec_stdin_wc_with_close_stdin(stub):
    _, out, _, ex, _ = exec_call(stub, "wc", "-c", stdin_chunks=[b"x" * 100000, b"y" * 2345])
    assert out.strip() == b"102345"
    assert ex.exit_code == 0


def test_exec_half_close_is_eof(stub):
    # no close_stdin message: the client half-closing the stream is the EOF
    _, out, _, ex, _ = exec_call(stub, "wc", "-c", stdin_chunks=[b"abc"], close=False)
    assert out.strip() == b"3" and ex.exit_code == 0


def test_exec_empty_stdin(stub):
    _, out, _, ex, _ = exec_call(stub, "cat")
    assert out == b"" and ex.exit_code == 0


def test_exec_interactive_order(stub):
    """stdin chunks reach the command in order while the stream stays open."""
    q = queue.Queue()

    def reqs():
        yield pb.ExecRequest(start=pb.ExecStart(command=cmd("cat")))
        while True:
            item = q.get()
            if item is None:
                yield pb.ExecRequest(close_stdin=True)
                return
            yield pb.ExecRequest(stdin=item)

    it = stub.Exec(reqs(), timeout=30)
    first = next(it)
    assert first.WhichOneof("msg") == "started_pid"
    got = bytearray()
    for i in range(20):
        line = b"line %d\n" % i
        q.put(line)
        want = len(got) + len(line)
        while len(got) < want:
            r = next(it)
            assert r.WhichOneof("msg") == "stdout"
            got += r.stdout
    q.put(None)
    rest = list(it)
    assert rest[-1].WhichOneof("msg") == "exit" and rest[-1].exit.exit_code == 0
    assert bytes(got) == b"".join(b"line %d\n" % i for i in range(20))


def test_exec_binary_streams_apart(stub):
    rounds = 300
    _, out, err, ex, _ = exec_call(stub, PY, "-c", BYTES_SCRIPT, str(rounds))
    want_out, want_err = bytes_expected(rounds)
    assert out == want_out
    assert err == want_err
    assert ex.exit_code == 0


def test_exec_all_output_before_exit(stub):
    for _ in range(10):
        _, out, err, ex, msgs = exec_call(
            stub, "/bin/sh", "-c", "head -c 200000 /dev/zero; head -c 100000 /dev/zero >&2; exit 3")
        assert len(out) == 200000 and len(err) == 100000
        assert ex.exit_code == 3 and msgs[-1] == "exit"


def test_exec_env_workdir(stub, tmp_path):
    _, out, _, ex, _ = exec_call(stub, "/bin/sh", "-c", 'printf "%s %s" "$A" "$(pwd)"',
                                 env={"A": "1 2"}, workdir=str(tmp_path))
    assert out == ("1 2 %s" % tmp_path).encode()


def test_exec_timeout_kills(stub):
    t0 = time.monotonic()
    pid, _, _, ex, _ = exec_call(stub, "sleep", "30", timeout_ms=300, timeout=30)
    assert ex.reason == "timeout"
    assert ex.signal != 0
    assert time.monotonic() - t0 < 25
    assert wait_pid_gone(pid)


def test_exec_command_not_found(stub):
    with pytest.raises(grpc.RpcError) as ei:
        exec_call(stub, "/nonexistent/definitely-not-here")
    e = ei.value
    assert e.code() != grpc.StatusCode.OK
    assert "/nonexistent/definitely-not-here" in (e.details() or "")


def test_exec_cancel_kills_command(stub):
    # a request iterator that never ends keeps stdin open
    q = queue.Queue()

    def reqs():
        yield pb.ExecRequest(start=pb.ExecStart(command=cmd("sleep", "300")))
        q.get()

    it = stub.Exec(reqs(), timeout=60)
    pid = next(it).started_pid
    assert pid_alive(pid)
    it.cancel()
    q.put(None)
    assert wait_pid_gone(pid), "the command outlived its cancelled Exec"


def test_exec_disconnect_kills_process_tree(rund):
    ch = rund.channel()
    stub = pb_grpc.JobsStub(ch)
    q = queue.Queue()

    def reqs():
        yield pb.ExecRequest(start=pb.ExecStart(command=cmd("/bin/sh", "-c", "sleep 300 & echo $!; wait")))
        q.get()

    it = stub.Exec(reqs(), timeout=60)
    pid = next(it).started_pid
    buf = b""
    while not buf.endswith(b"\n"):
        r = next(it)
        buf += r.stdout
    child = int(buf)
    assert pid_alive(pid) and pid_alive(child)
    ch.close()  # the connection goes away, not just the stream
    q.put(None)
    assert wait_pid_gone(pid), "the command outlived its connection"
    assert wait_pid_gone(child), "the command's child outlived its connection"


def test_exec_concurrent(stub):
    results = {}

    def one(i):
        results[i] = exec_call(stub, "/bin/sh", "-c", "printf %s $0; exit $(( $0 % 7 ))", str(i))

    ts = [threading.Thread(target=one, args=(i,)) for i in range(30)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(40)
    assert len(results) == 30
    for i, (_, out, _, ex, _) in results.items():
        assert out == str(i).encode() and ex.exit_code == i % 7

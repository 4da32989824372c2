"""Exec output at volume (issue 16): output read in place and sent without
copies must arrive byte for byte (runctl and grpcio, stdout and stderr at
once), a client that stops reading must hold the command back without rund
growing or other clients waiting, and a stream cancelled mid-way kills the
command."""

import hashlib
import os
import queue
import subprocess
import threading
import time

from conftest import MiB, check_no_sanitizer, cmd, exec_call, pb, pid_alive, rss_kib, wait_pid_gone

OUT_SIZE = 256 * MiB
ERR_SIZE = 64 * MiB


def make_file(path, size):
    """Random bytes (so no compression or repetition hides a lost chunk); sha256."""
    h = hashlib.sha256()
    block = os.urandom(MiB)
    with open(path, "wb") as f:
        for i in range(size // MiB):
            chunk = bytes([i & 0xFF]) + block[1:]  # every MiB differs
            f.write(chunk)
            h.update(chunk)
    return h.hexdigest()


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MiB), b""):
            h.update(chunk)
    return h.hexdigest()


def both_streams(out_path, err_path):
    # both pipes written at once, so their messages interleave on the stream
    return ("/bin/sh", "-c", 'cat "$0" & cat "$1" >&2; wait', out_path, err_path)


def test_runctl_large_output_exact(ctl, tmp_path):
    src_out, src_err = str(tmp_path / "out.src"), str(tmp_path / "err.src")
    want_out, want_err = make_file(src_out, OUT_SIZE), make_file(src_err, ERR_SIZE)
    got_out, got_err = tmp_path / "out.got", tmp_path / "err.got"
    with open(got_out, "wb") as fo, open(got_err, "wb") as fe:
        p = ctl.popen("exec", "--", *both_streams(src_out, src_err), stdout=fo, stderr=fe)
        assert p.wait(timeout=600) == 0
    assert os.path.getsize(got_out) == OUT_SIZE
    assert file_sha256(got_out) == want_out
    assert os.path.getsize(got_err) == ERR_SIZE
    assert file_sha256(got_err) == want_err


def test_grpcio_large_output_exact(stub, tmp_path):
    src_out, src_err = str(tmp_path / "out.src"), str(tmp_path / "err.src")
    want_out, want_err = make_file(src_out, OUT_SIZE), make_file(src_err, ERR_SIZE)
    h_out, h_err = hashlib.sha256(), hashlib.sha256()
    n_out = n_err = 0
    ex = None

    def reqs():
        yield pb.ExecRequest(start=pb.ExecStart(command=cmd(*both_streams(src_out, src_err))))
        yield pb.ExecRequest(close_stdin=True)

    kinds = []
    for r in stub.Exec(reqs(), timeout=600):
        kind = r.WhichOneof("msg")
        assert ex is None, "message after the exit status"
        if not kinds or kinds[-1] != kind:
            kinds.append(kind)
        if kind == "stdout":
            h_out.update(r.stdout)
            n_out += len(r.stdout)
        elif kind == "stderr":
            h_err.update(r.stderr)
            n_err += len(r.stderr)
        elif kind == "exit":
            ex = r.exit
    assert kinds[0] == "started_pid" and ex is not None and ex.exit_code == 0
    assert (n_out, n_err) == (OUT_SIZE, ERR_SIZE)
    assert h_out.hexdigest() == want_out and h_err.hexdigest() == want_err


def write_count(pid):
    with open("/proc/%d/io" % pid) as f:
        for line in f:
            if line.startswith("wchar:"):
                return int(line.split()[1])
    return 0


def test_slow_reader_holds_command_back(rund, ctl, stub):
    """runctl's stdout unread: the command stalls, rund does not grow, other
    clients are served; then the reader goes and the command is killed."""
    base = rss_kib(rund.pid)
    p = ctl.popen("exec", "--", "/bin/sh", "-c", "echo $$; exec cat /dev/zero",
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        pid = int(p.stdout.readline())
        # stalled: the command's write count stops moving (back-pressure got
        # through runctl, the socket, rund's queue and the pipe)
        last, still, end = -1, 0, time.monotonic() + 120
        while still < 5 and time.monotonic() < end:
            now = write_count(pid)
            still = still + 1 if now == last else 0
            last = now
            time.sleep(0.2)
        assert still >= 5, "the command kept writing to an unread stream"
        assert last < 1024 * MiB, "the command wrote %d bytes" % last
        grown = rss_kib(rund.pid) - base
        assert grown < 48 * 1024, "rund grew by %d KiB for a stalled stream" % grown
        # another client is served meanwhile
        _, out, _, ex, _ = exec_call(stub, "/bin/echo", "served")
        assert out == b"served\n" and ex.exit_code == 0
        # the reader drains a little: the stream moves again
        got = 0
        while got < 8 * MiB:
            got += len(p.stdout.read1(MiB))
        assert got >= 8 * MiB
    finally:
        p.kill()
        p.wait()
    assert wait_pid_gone(pid), "the command outlived its client"
    _, out, _, ex, _ = exec_call(stub, "/bin/echo", "after")
    assert out == b"after\n"
    check_no_sanitizer(p.stderr.read(), "runctl")


def test_grpcio_cancel_mid_stream(stub, rund):
    q = queue.Queue()

    def reqs():
        yield pb.ExecRequest(start=pb.ExecStart(command=cmd("cat", "/dev/zero")))
        q.get()

    it = stub.Exec(reqs(), timeout=120)
    pid = next(it).started_pid
    got = 0
    while got < 32 * MiB:
        r = next(it)
        assert r.WhichOneof("msg") == "stdout"
        assert r.stdout == bytes(len(r.stdout))
        got += len(r.stdout)
    assert pid_alive(pid)
    it.cancel()
    q.put(None)
    assert wait_pid_gone(pid), "the command outlived its cancelled stream"
    # rund serves the next stream whole
    _, out, _, ex, _ = exec_call(stub, "/bin/sh", "-c", "head -c 3000000 /dev/zero")
    assert out == bytes(3000000) and ex.exit_code == 0


def test_many_streams_at_once_exact(stub, tmp_path):
    """Several large streams on one connection share it without mixing bytes."""
    src = str(tmp_path / "src")
    want = make_file(src, 32 * MiB)
    results = {}

    def one(i):
        h, n = hashlib.sha256(), 0

        def reqs():
            yield pb.ExecRequest(start=pb.ExecStart(command=cmd("cat", src)))
            yield pb.ExecRequest(close_stdin=True)

        for r in stub.Exec(reqs(), timeout=300):
            if r.WhichOneof("msg") == "stdout":
                h.update(r.stdout)
                n += len(r.stdout)
        results[i] = (n, h.hexdigest())

    ts = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(300)
    assert results == {i: (32 * MiB, want) for i in range(4)}

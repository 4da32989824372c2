"""Attach and Send (issue 14): `runctl attach` driven from a real
pseudo-terminal on the client side (test_exec_tty's PtyRun), `runctl send`,
and the Attach/Send RPCs through python grpcio: replay, typing, detach keys,
reattach, two watchers and the writer rule, a killed client, a restarted
rund, a resize, and the refusals."""

import os
import queue
import signal
import subprocess
import threading
import time

import grpc
import pytest

from conftest import RUNCTL, logs, pb, rpc_error, unused_ulid, wait, wait_for
from test_exec_tty import PtyRun, is_raw, pty_run, set_window  # noqa: F401 (fixture)
from test_jobs_runas import NOBODY

CTRL_P, CTRL_Q = b"\x10", b"\x11"


def start(stub, script, **kw):
    req = pb.StartRequest(command=pb.Command(path="/bin/sh", args=["-c", script]), **kw)
    return stub.Start(req, timeout=30).job_id


def running(stub, job):
    return stub.Status(pb.StatusRequest(job_id=job), timeout=10).status.state == \
        pb.JOB_STATE_RUNNING


def stop(stub, job):
    stub.Stop(pb.StopRequest(job_id=job, grace_ms=0), timeout=30)


def stdout_has(stub, job, data):
    return wait_for(lambda: data in logs(stub, job)[0], timeout=20)


# an echo loop on a terminal: prints its window for each line, "got LINE"
ECHO_TTY = "echo FIRST; while read l; do stty size; echo \"got $l\"; " \
           "[ \"$l\" = quit ] && exit 7; done"


class Attach:
    """An Attach call through grpcio: requests from a queue, responses
    collected by a thread."""

    def __init__(self, stub, job, **start):
        self.q = queue.Queue()
        self.q.put(pb.AttachRequest(start=pb.AttachStart(job_id=job, **start)))
        self.call = stub.Attach(iter(self.q.get, None), timeout=60)
        self.msgs, self.out, self.error = [], bytearray(), None
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        try:
            for m in self.call:
                self.msgs.append(m)
                if m.WhichOneof("msg") == "stdout":
                    self.out += m.stdout
        except grpc.RpcError as e:
            self.error = e

    def info(self):
        assert wait_for(lambda: self.msgs or self.error, timeout=20)
        assert self.msgs, self.error
        return self.msgs[0].attached

    def send(self, **kw):
        self.q.put(pb.AttachRequest(**kw))

    def done(self, timeout=30):
        self.t.join(timeout)
        assert not self.t.is_alive()
        return self

    def cancel(self):
        self.call.cancel()
        self.q.put(None)
        self.t.join(10)


def test_attach_tty_replay_type_detach_reattach(rund, stub, pty_run):
    job = start(stub, ECHO_TTY, tty=True)
    assert stdout_has(stub, job, b"FIRST")
    p = pty_run("attach", job, rows=30, cols=90)
    p.expect(rb"FIRST")  # the replay of what the terminal printed
    assert wait_for(lambda: is_raw(p.mode()))
    p.send(b"abc\r")
    p.expect(rb"30 90\r\ngot abc")  # the attacher's window, set on attach
    p.send(CTRL_P + CTRL_Q)
    assert p.wait() == 0, p.buf
    assert b"detached from job " + job.encode() in p.buf
    assert p.mode() == p.before  # the terminal given back as it was
    assert running(stub, job)
    # again: the replay shows the last line, typing works, the job's status ends it
    p = pty_run("attach", job, rows=25, cols=70)
    p.expect(rb"got abc")
    p.send(b"quit\r")
    p.expect(rb"25 70\r\ngot quit")
    assert p.wait() == 7, p.buf
    assert p.mode() == p.before
    assert wait(stub, job).exit_code == 7


def test_detach_keys_partial_match_is_typed_and_custom_keys(rund, stub, pty_run):
    job = start(stub, ECHO_TTY, tty=True)
    p = pty_run("attach", "--detach-keys", "ctrl-a,x", job)
    p.expect(rb"FIRST")
    assert wait_for(lambda: is_raw(p.mode()))
    p.send(b"\x01yz\r")  # ctrl-a then y: not the keys, both typed
    p.expect(rb"got \x01yz")
    p.send(b"\x01x")
    assert p.wait() == 0, p.buf
    assert running(stub, job)
    stop(stub, job)


def test_two_watchers_one_writer(rund, stub, pty_run):
    job = start(stub, ECHO_TTY, tty=True)
    a = pty_run("attach", job)
    a.expect(rb"FIRST")
    assert wait_for(lambda: is_raw(a.mode()))
    b = pty_run("attach", job)
    b.expect(rb"read-only: another client is attached to job \w+ as its writer")
    assert not is_raw(b.mode())  # a watcher keeps its terminal as it is
    a.send(b"one\r")
    a.expect(rb"got one")
    b.expect(rb"got one")  # every watcher sees the output
    b.send(b"two\n")  # a watcher's typing goes nowhere
    a.send(CTRL_P + CTRL_Q)
    assert a.wait() == 0
    time.sleep(1)  # rund sees its call go (c's connection could come first)
    b.send(b"\x03")  # Ctrl-C ends a watcher (cooked terminal); the job runs on
    b.wait()
    assert running(stub, job)
    # the writer went: the next one to attach types
    c = pty_run("attach", job)
    c.expect(rb"FIRST|got one")
    assert wait_for(lambda: is_raw(c.mode()))
    c.send(b"three\r")
    c.expect(rb"got three")
    assert b"got two" not in logs(stub, job)[0]
    c.send(b"quit\r")
    assert c.wait() == 7


def test_writer_rule_over_rpc(rund, stub):
    job = start(stub, "while read l; do echo \"got $l\"; done", stdin=True)
    w = Attach(stub, job, stdin=True)
    info = w.info()
    assert info.writer and not info.tty and info.stdin_open and info.read_only_reason == ""
    r = Attach(stub, job, stdin=True)
    info = r.info()
    assert not info.writer and "as its writer" in info.read_only_reason
    watcher = Attach(stub, job)  # not asking: no reason either
    assert not watcher.info().writer and watcher.info().read_only_reason == ""
    w.send(stdin=b"hello\n")
    assert wait_for(lambda: b"got hello" in r.out and b"got hello" in watcher.out)
    r.send(stdin=b"sneaky\n")
    r.done()
    assert r.error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "is not the writer" in r.error.details()
    w.send(close_stdin=True)  # the writer's EOF ends the loop
    w.done()
    assert w.error is None and w.msgs[-1].WhichOneof("msg") == "exit"
    assert w.msgs[-1].exit.state == pb.JOB_STATE_EXITED
    watcher.done()
    assert watcher.msgs[-1].WhichOneof("msg") == "exit"
    assert b"sneaky" not in logs(stub, job)[0]


def test_attach_again_after_client_killed(rund, stub, pty_run):
    job = start(stub, ECHO_TTY, tty=True)
    p = pty_run("attach", job)
    p.expect(rb"FIRST")
    p.send(b"before\r")
    p.expect(rb"got before")
    p.proc.send_signal(signal.SIGKILL)
    p.proc.wait()
    time.sleep(1)  # rund sees the connection go (another connection's attach could come first)
    assert running(stub, job)
    q = pty_run("attach", job)  # the dead client's writer slot is free
    q.expect(rb"got before")
    assert wait_for(lambda: is_raw(q.mode()))
    assert b"read-only" not in q.buf
    q.send(b"quit\r")
    assert q.wait() == 7, q.buf


def test_attach_after_rund_restart(rund, stub, pty_run):
    job = start(stub, ECHO_TTY, tty=True)
    assert stdout_has(stub, job, b"FIRST")
    p = pty_run("attach", job)
    p.expect(rb"FIRST")
    rund.stop()  # jobs run on
    p.wait()  # its call went with rund
    assert p.mode() == p.before
    rund.start()
    stub = rund.stub()
    q = pty_run("attach", job, rows=40, cols=100)
    q.expect(rb"FIRST")
    q.send(b"again\r")
    q.expect(rb"40 100\r\ngot again")
    q.send(b"quit\r")
    assert q.wait() == 7, q.buf
    assert wait(stub, job).exit_code == 7


def test_stty_size_follows_resize_through_attach(rund, stub, pty_run):
    job = start(stub, ECHO_TTY, tty=True, window=pb.TerminalSize(rows=24, cols=80))
    p = pty_run("attach", job, rows=30, cols=90)
    p.expect(rb"FIRST")
    p.send(b"a\r")
    p.expect(rb"30 90\r\ngot a")
    set_window(p.master, 41, 123)  # runctl gets SIGWINCH
    time.sleep(0.3)
    p.send(b"b\r")
    p.expect(rb"41 123\r\ngot b")
    p.send(b"quit\r")
    assert p.wait() == 7


def test_attach_plain_job_watches_and_exits_with_its_status(rund, stub, ctl):
    job = start(stub, "echo old; read x; echo out; echo err >&2; exit 5", stdin=True)
    assert stdout_has(stub, job, b"old")
    p = ctl.popen("attach", job, stdin=subprocess.PIPE)
    time.sleep(0.5)
    p.stdin.write(b"go\n")
    p.stdin.flush()
    out, err = p.communicate(timeout=30)
    assert p.returncode == 5, (out, err)
    assert out == b"out\n", out  # no replay without a terminal by default
    assert b"err\n" in err
    # --replay: the end of what it wrote, from a line start
    job = start(stub, "printf 'aaaa\\nbbbb\\ncccc\\n'; read x", stdin=True)
    assert stdout_has(stub, job, b"cccc")
    p = ctl.popen("attach", "--replay", "7", job, stdin=subprocess.PIPE)
    p.stdin.write(b"\n")
    p.stdin.flush()
    out, err = p.communicate(timeout=30)
    assert out == b"cccc\n" and p.returncode == 0, (out, err)


def test_send_and_close(rund, stub, ctl):
    job = start(stub, "cat; echo EOF-SEEN", stdin=True)
    r = ctl("send", job, input=b"one\n")
    assert r.rc == 0, r
    r = ctl("send", "--close", job, input=b"two\n")
    assert r.rc == 0, r
    st = wait(stub, job)
    assert st.state == pb.JOB_STATE_EXITED and st.exit_code == 0
    assert logs(stub, job)[0] == b"one\ntwo\nEOF-SEEN\n"
    # --close alone (empty stdin) on a terminal job: its EOF character
    job = start(stub, "cat; echo EOF-SEEN", tty=True)
    r = ctl("send", "--close", job)
    assert r.rc == 0, r
    assert wait(stub, job).exit_code == 0
    assert b"EOF-SEEN" in logs(stub, job)[0]


def test_send_large_with_backpressure(rund, stub, ctl):
    job = start(stub, "sleep 1; wc -c", stdin=True)
    data = os.urandom(3 * 1024 * 1024)
    r = ctl("send", "--close", job, input=data, timeout=120)
    assert r.rc == 0, r
    wait(stub, job)
    assert logs(stub, job)[0].strip() == str(len(data)).encode()


def test_send_rpc(rund, stub):
    job = start(stub, "cat", stdin=True)
    msgs = [pb.SendRequest(job_id=job, data=b"x" * 10), pb.SendRequest(data=b"y", close=True)]
    resp = stub.Send(iter(msgs), timeout=30)
    assert resp.bytes == 11 and resp.closed
    wait(stub, job)
    assert logs(stub, job)[0] == b"x" * 10 + b"y"
    e = rpc_error(stub.Send, iter([]), timeout=30)
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "naming the job" in e.details()


def test_refusals(rund, stub, ctl):
    plain = start(stub, "sleep 1000")
    ended = start(stub, "true")
    wait(stub, ended)
    try:
        r = ctl("send", plain, input=b"x")
        assert r.rc == 1 and b"FAILED_PRECONDITION" in r.err and b"has no stdin" in r.err, r
        r = ctl("send", ended, input=b"x")
        assert r.rc == 1 and b"FAILED_PRECONDITION" in r.err and b"has ended" in r.err, r
        r = ctl("send", unused_ulid(), input=b"x")
        assert r.rc == 1 and b"NOT_FOUND" in r.err, r
        r = ctl("attach", ended)
        assert r.rc == 1 and b"FAILED_PRECONDITION" in r.err and b"has ended" in r.err, r
        r = ctl("attach", unused_ulid())
        assert r.rc == 1 and b"NOT_FOUND" in r.err, r
        r = ctl("attach", "not-an-id")
        assert r.rc == 2, r
        for keys, what in [("", b"want keys"), ("ctrl-1", b"unknown key"),
                           ("ctrl-p,ab", b"unknown key"), (",", b"no key")]:
            r = ctl("attach", "--detach-keys", keys, plain)
            assert r.rc == 2 and what in r.err and b"--detach-keys" in r.err, (keys, r)
        r = ctl("attach", "--replay", "lots", plain)
        assert r.rc == 2 and b"--replay" in r.err, r
        r = ctl("send", "--bogus", plain)
        assert r.rc == 2, r
        # a job without stdin: attach only watches, and says nothing about it
        r = ctl("attach", "--replay", "2000000", plain)
        assert r.rc == 1 and b"INVALID_ARGUMENT" in r.err and b"replay_bytes" in r.err, r
        a = Attach(stub, plain, stdin=True)
        info = a.info()
        assert not info.writer and "no open stdin" in info.read_only_reason
        a.send(resize=pb.TerminalSize(rows=10, cols=10))
        a.done()
        assert a.error.code() == grpc.StatusCode.FAILED_PRECONDITION
        # the first message must be start
        q = [pb.AttachRequest(stdin=b"x")]
        e = rpc_error(lambda: list(stub.Attach(iter(q), timeout=30)))
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "must be start" in e.details()
        e = rpc_error(lambda: list(stub.Attach(iter([
            pb.AttachRequest(start=pb.AttachStart(job_id=plain, stdin=True,
                                                  window=pb.TerminalSize(rows=0, cols=5)))]),
            timeout=30)))
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "window" in e.details()
    finally:
        stop(stub, plain)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as nobody")
def test_another_identitys_job_is_not_found(rund, stub):
    os.chmod(rund.base, 0o755)  # nobody must reach the socket
    roots = start(stub, "cat", stdin=True)
    try:
        for verb in (["attach"], ["send", "--close"]):
            p = subprocess.run(NOBODY + [RUNCTL, "--addr", rund.addr] + verb + [roots],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=30)
            assert p.returncode == 1 and b"NOT_FOUND" in p.stderr, p
        assert running(stub, roots)
    finally:
        stop(stub, roots)

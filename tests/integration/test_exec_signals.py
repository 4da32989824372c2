"""ExecRequest.signal: signals reach the command's process group (python grpcio),
and runctl exec forwards SIGINT/SIGTERM to the remote command."""

import queue
import signal
import subprocess

import grpc
import pytest

from conftest import check_no_sanitizer, cmd, pb, pid_alive, wait_pid_gone

TRAP_INT = 'trap "echo got-int; exit 7" INT; echo ready; while :; do sleep 0.1; done'
NO_TRAP = 'echo ready; while :; do sleep 0.1; done'


class ExecSession:
    """One Exec stream whose requests the test feeds as it goes."""

    def __init__(self, stub, *argv, timeout=30):
        self.q = queue.Queue()
        self.q.put(pb.ExecRequest(start=pb.ExecStart(command=cmd(*argv))))

        def reqs():
            while True:
                item = self.q.get()
                if item is None:
                    return
                yield item

        self.it = stub.Exec(reqs(), timeout=timeout)
        self.out = bytearray()
        self.pid = None
        self.exit = None

    def send(self, **kw):
        self.q.put(pb.ExecRequest(**kw))

    def close(self):
        self.q.put(None)

    def _take(self, r):
        kind = r.WhichOneof("msg")
        if kind == "started_pid":
            self.pid = r.started_pid
        elif kind == "stdout":
            self.out += r.stdout
        elif kind == "exit":
            self.exit = r.exit
        return kind

    def read_until(self, marker):
        while marker not in self.out:
            assert self._take(next(self.it)) != "exit", "exited before %r: %r" % (marker, self.out)

    def finish(self):
        """Read to the end of the stream (raises RpcError on a failed status)."""
        for r in self.it:
            self._take(r)
        return self.exit


def test_signal_int_trapped_exit_status(stub):
    s = ExecSession(stub, "/bin/sh", "-c", TRAP_INT)
    try:
        s.read_until(b"ready\n")
        s.send(signal=2)
        ex = s.finish()
    finally:
        s.close()
    assert ex is not None, "no exit status"
    assert (ex.exit_code, ex.signal, ex.reason) == (7, 0, "exited"), ex
    assert b"got-int" in s.out


def test_signal_term_kills_untrapped(stub):
    s = ExecSession(stub, "/bin/sh", "-c", NO_TRAP)
    try:
        s.read_until(b"ready\n")
        s.send(signal=15)
        ex = s.finish()
    finally:
        s.close()
    assert (ex.signal, ex.reason) == (15, "signaled"), ex


def test_signal_after_close_stdin(stub):
    # close_stdin does not end the stream: a signal may still follow
    s = ExecSession(stub, "/bin/sh", "-c", TRAP_INT)
    try:
        s.send(close_stdin=True)
        s.read_until(b"ready\n")
        s.send(signal=2)
        ex = s.finish()
    finally:
        s.close()
    assert ex.exit_code == 7 and b"got-int" in s.out


@pytest.mark.parametrize("sig", [0, 65, -1])
def test_signal_out_of_range(stub, sig):
    s = ExecSession(stub, "/bin/sh", "-c", "echo $$; exec sleep 300")
    try:
        s.read_until(b"\n")
        pid = int(s.out.split()[0])
        s.send(signal=sig)
        with pytest.raises(grpc.RpcError) as ei:
            s.finish()
    finally:
        s.close()
    e = ei.value
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
    assert "signal" in e.details() and str(sig) in e.details(), e.details()
    # a refused stream does not leave its command behind
    assert wait_pid_gone(pid), "command survived a failed Exec stream"


def test_signal_after_exit_is_harmless(stub):
    s = ExecSession(stub, "/bin/sh", "-c", "echo done")
    try:
        # the exit status may arrive before or after rund reads the signal,
        # and the shell may not have exited yet when its output arrived (a
        # loaded host): either way the stream ends OK with a true status
        s.read_until(b"done\n")
        s.send(signal=15)
        s.send(signal=9)
        ex = s.finish()
    finally:
        s.close()
    assert (ex.exit_code, ex.signal, ex.reason) in (
        (0, 0, "exited"), (0, 15, "signaled"), (0, 9, "signaled")), ex


def test_signal_after_exit_status_received(stub):
    s = ExecSession(stub, "true")
    try:
        s.send(close_stdin=True)
        while s.exit is None:
            s._take(next(s.it))
        s.send(signal=2)  # the command is gone: nothing to signal
        s.finish()
    finally:
        s.close()
    assert s.exit.exit_code == 0


def test_signal_before_start_refused(stub):
    it = stub.Exec(iter([pb.ExecRequest(signal=2)]), timeout=30)
    with pytest.raises(grpc.RpcError) as ei:
        list(it)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def _runctl_until_ready(ctl, script):
    p = ctl.popen("exec", "--", "/bin/sh", "-c", script, stdin=subprocess.PIPE)
    line = p.stdout.readline()
    assert line == b"ready\n", (line, p.stderr.read() if p.poll() is not None else b"")
    return p


def _finish(p):
    try:
        out, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise AssertionError("runctl did not exit within 30 s of the signal")
    check_no_sanitizer(err, "runctl exec")
    return p.returncode, out, err


def test_runctl_ctrl_c_reaches_trap(ctl):
    p = _runctl_until_ready(ctl, TRAP_INT)
    p.send_signal(signal.SIGINT)
    rc, out, err = _finish(p)
    assert rc == 7, (rc, out, err)
    assert b"got-int" in out


def test_runctl_ctrl_c_after_stdin_eof_is_forwarded(ctl):
    # at stdin EOF runctl sends close_stdin but keeps its side of the stream
    # open, so a later Ctrl-C still reaches the command's trap
    p = ctl.popen("exec", "--", "/bin/sh", "-c", 'echo $$; ' + TRAP_INT,
                  stdin=subprocess.DEVNULL)
    pid = int(p.stdout.readline())
    assert p.stdout.readline() == b"ready\n"
    p.send_signal(signal.SIGINT)
    rc, out, err = _finish(p)
    assert rc == 7, (rc, out, err)
    assert b"got-int" in out
    assert wait_pid_gone(pid)


def test_runctl_sigkill_kills_the_command(ctl):
    # a command that ignores what runctl forwards: killing runctl drops the
    # stream and rund kills the command's group
    p = ctl.popen("exec", "--", "/bin/sh", "-c", 'trap "" INT TERM; echo $$; ' + NO_TRAP,
                  stdin=subprocess.PIPE)
    pid = int(p.stdout.readline())
    assert p.stdout.readline() == b"ready\n"
    p.send_signal(signal.SIGINT)
    p.kill()
    rc, out, err = _finish(p)
    assert rc == -signal.SIGKILL
    assert wait_pid_gone(pid), "the command outlived runctl"


def test_runctl_sigterm_untrapped_143(ctl):
    p = _runctl_until_ready(ctl, NO_TRAP)
    p.send_signal(signal.SIGTERM)
    rc, out, err = _finish(p)
    assert rc == 128 + 15, (rc, out, err)


def test_runctl_sighup_reaches_whole_group(ctl):
    # the signal goes to the process group: a background child dies too
    script = 'sleep 300 & echo $!; echo ready; while :; do sleep 0.1; done'
    p = ctl.popen("exec", "--", "/bin/sh", "-c", script, stdin=subprocess.PIPE)
    child = int(p.stdout.readline())
    assert p.stdout.readline() == b"ready\n"
    assert pid_alive(child)
    p.send_signal(signal.SIGHUP)
    rc, out, err = _finish(p)
    assert rc == 128 + 1, (rc, out, err)
    assert wait_pid_gone(child), "background child survived the forwarded SIGHUP"

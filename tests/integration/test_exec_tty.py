"""Exec with a terminal (issue 14, first slice): `runctl exec -t` driven from
a real pseudo-terminal on the client side (os.openpty, runctl's controlling
terminal in a session of its own), and ExecStart.tty / ExecRequest.resize
through the raw gRPC API (python grpcio)."""

import errno
import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import termios
import time

import grpc
import pytest

from conftest import RUNCTL, PY, check_no_sanitizer, cmd, pb, rpc_error

PTS_RE = re.compile(rb"/dev/pts/\d+")

# blocks SIGWINCH, says READY, waits for one, prints the window then
WINCH_SCRIPT = r"""
import fcntl, signal, struct, termios
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGWINCH])
print("READY", flush=True)
signal.sigwait([signal.SIGWINCH])
rows, cols = struct.unpack("HHHH", fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8))[:2]
print("SIZE %d %d" % (rows, cols), flush=True)
"""


def set_window(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _make_controlling():
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class PtyRun:
    """runctl on the slave of a new pty (its stdin, stdout, stderr and
    controlling terminal); the test holds the master: what a user types and
    sees, and the terminal's mode (tcgetattr on the master is the pty's)."""

    def __init__(self, addr, *args, rows=33, cols=101, env=None):
        self.master, slave = os.openpty()
        set_window(slave, rows, cols)
        self.before = termios.tcgetattr(self.master)
        e = dict(os.environ)
        e.pop("TERM", None)
        e.update(env or {})
        self.proc = subprocess.Popen([RUNCTL, "--addr", addr] + list(args),
                                     stdin=slave, stdout=slave, stderr=slave, env=e,
                                     start_new_session=True, preexec_fn=_make_controlling)
        os.close(slave)
        self.buf = b""
        self.eof = False

    def _read(self, timeout):
        r, _, _ = select.select([self.master], [], [], timeout)
        if not r:
            return
        try:
            data = os.read(self.master, 65536)
        except OSError as ex:  # EIO: every slave fd is closed
            if ex.errno != errno.EIO:
                raise
            data = b""
        if not data:
            self.eof = True
        self.buf += data

    def expect(self, pattern, timeout=20):
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        while not rx.search(self.buf):
            if self.eof or time.monotonic() > end:
                raise AssertionError("no %r in runctl's terminal (eof=%s): %r"
                                     % (pattern, self.eof, self.buf[-3000:]))
            self._read(0.2)
        return rx.search(self.buf)

    def send(self, data):
        os.write(self.master, data)

    def wait(self, timeout=30):
        """Everything until runctl's end; its return code."""
        end = time.monotonic() + timeout
        while not self.eof and time.monotonic() < end:
            self._read(0.2)
        rc = self.proc.wait(max(1, end - time.monotonic()))
        check_no_sanitizer(self.buf, "runctl")
        return rc

    def mode(self):
        return termios.tcgetattr(self.master)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


@pytest.fixture
def pty_run(rund):
    made = []

    def run(*args, **kw):
        p = PtyRun(rund.addr, *args, **kw)
        made.append(p)
        return p

    yield run
    for p in made:
        p.close()


def is_raw(mode):
    return not (mode[3] & (termios.ICANON | termios.ECHO | termios.ISIG))


def test_tty_path_size_term(pty_run):
    p = pty_run("exec", "-t", "--", "sh", "-c", "tty; stty size; echo T=$TERM",
                rows=33, cols=101, env={"TERM": "xterm-256color"})
    assert p.wait() == 0, p.buf
    assert PTS_RE.search(p.buf), p.buf
    assert b"33 101" in p.buf, p.buf
    assert b"T=xterm-256color" in p.buf, p.buf
    assert p.mode() == p.before, "runctl left the terminal changed"


@pytest.mark.parametrize("flags", [["-it"], ["-ti"], ["-i", "-t"], ["--tty"], ["-t", "-i"]])
def test_tty_flag_spellings(pty_run, flags):
    p = pty_run("exec", *flags, "--", "tty")
    assert p.wait() == 0, p.buf
    assert PTS_RE.search(p.buf), (flags, p.buf)


def test_tty_default_term_and_command_env_wins(pty_run):
    p = pty_run("exec", "-t", "--", "sh", "-c", "echo T=$TERM")
    assert p.wait() == 0, p.buf
    assert b"T=xterm\r" in p.buf, p.buf
    p = pty_run("exec", "-t", "--env", "TERM=vt220", "--", "sh", "-c", "echo T=$TERM",
                env={"TERM": "screen"})
    assert p.wait() == 0, p.buf
    assert b"T=vt220\r" in p.buf, p.buf


def test_tty_resize_reaches_command(pty_run):
    p = pty_run("exec", "-t", "--", PY, "-c", WINCH_SCRIPT, rows=30, cols=90)
    p.expect(rb"READY")
    assert is_raw(p.mode()), "runctl did not put its terminal in raw mode"
    set_window(p.master, 41, 123)  # runctl, the foreground group, gets SIGWINCH
    p.expect(rb"SIZE 41 123")
    assert p.wait() == 0, p.buf
    assert p.mode() == p.before


# a parent that ignores SIGINT runs a child that does not, like a shell
CTRL_C_SCRIPT = r"""
import signal, subprocess, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
r = subprocess.run(["sh", "-c", "echo READY; exec sleep 30"],
                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
print("AFTER %d" % r.returncode, flush=True)
sys.exit(7)
"""


def test_tty_ctrl_c_interrupts_remote_foreground_only(pty_run):
    p = pty_run("exec", "-t", "--", PY, "-c", CTRL_C_SCRIPT)
    p.expect(rb"READY")
    p.send(b"\x03")  # a byte: the remote terminal makes it SIGINT for its foreground group
    p.expect(rb"AFTER -2")
    assert p.wait() == 7, p.buf  # runctl was not interrupted: it passes the parent's code


def test_tty_ctrl_c_kills_remote_command_130(pty_run):
    p = pty_run("exec", "-t", "--", "sh", "-c", "echo READY; exec sleep 30")
    p.expect(rb"READY")
    p.send(b"\x03")
    assert p.wait() == 130, p.buf  # 128 + SIGINT, and runctl itself exited normally
    assert p.mode() == p.before


def test_tty_ctrl_d_is_eof_for_remote_reader(pty_run):
    p = pty_run("exec", "-t", "--", "sh", "-c", "echo READY; cat; echo CAT-DONE; exit 3")
    p.expect(rb"READY")
    p.send(b"hello\r")
    p.expect(rb"hello\r\nhello")  # the remote echo, then cat's copy
    p.send(b"\x04")
    p.expect(rb"CAT-DONE")
    assert p.wait() == 3, p.buf


def test_tty_last_output_and_exit_code(pty_run):
    # 100 KiB then the exit: every byte arrives before the status
    p = pty_run("exec", "-t", "--", "sh", "-c",
                "head -c 102400 /dev/zero | tr '\\0' x; printf END; exit 5")
    assert p.wait(60) == 5, p.buf[-200:]
    assert p.buf.count(b"x") == 102400
    assert p.buf.endswith(b"END"), p.buf[-100:]
    assert p.mode() == p.before


def test_tty_last_bytes_many_runs(ctl):
    # forced terminal (-tt) without one here: no raw mode, the same server path
    for i in range(25):
        r = ctl("exec", "-tt", "--", "sh", "-c", "printf %s LAST; exit 5")
        assert r.rc == 5, (i, r)
        assert r.out == b"LAST", (i, r)


def test_tty_restored_after_sigterm(pty_run):
    marker = "31.%d" % os.getpid()
    p = pty_run("exec", "-t", "--", "sh", "-c", "echo READY; exec sleep " + marker)
    p.expect(rb"READY")
    assert is_raw(p.mode())
    p.proc.send_signal(signal.SIGTERM)
    assert p.wait() == -signal.SIGTERM, p.buf
    assert p.mode() == p.before, "terminal not restored after SIGTERM"
    # the stream dropped: rund kills the remote command
    end = time.monotonic() + 20
    while any(_cmdline_has(pid, marker) for pid in _pids()):
        assert time.monotonic() < end, "the remote command outlived runctl"
        time.sleep(0.1)


def test_tty_restored_after_sighup(pty_run):
    p = pty_run("exec", "-t", "--", "sh", "-c", "echo READY; exec sleep 30")
    p.expect(rb"READY")
    p.proc.send_signal(signal.SIGHUP)
    assert p.wait() == -signal.SIGHUP, p.buf
    assert p.mode() == p.before


def test_tty_restored_after_error(pty_run):
    p = pty_run("exec", "-t", "--", "/nonexistent/cmd")
    assert p.wait() == 127, p.buf
    assert b"nonexistent" in p.buf
    assert p.mode() == p.before


def _pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def _cmdline_has(pid, s):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return s.encode() in f.read()
    except OSError:
        return False


def test_tty_needs_terminal_stdin_unless_forced(ctl):
    r = ctl("exec", "-t", "--", "sh", "-c", "tty || echo NOTTY")
    assert r.rc == 0, r
    assert b"NOTTY" in r.out, r
    assert b"stdin is not a terminal" in r.err, r
    r = ctl("exec", "-tt", "--", "tty")
    assert r.rc == 0, r
    assert PTS_RE.search(r.out), r


def test_tty_stdin_eof_sends_veof(ctl):
    # -tt with a pipe: its EOF becomes the terminal's EOF character
    r = ctl("exec", "-tt", "--", "sh", "-c", "cat; echo DONE", input=b"abc\n")
    assert r.rc == 0, r
    assert b"abc" in r.out and b"DONE" in r.out, r


def test_start_t_with_a_sandbox_refused(ctl):
    """start -t gives a background job a terminal held by its keeper
    (test_keeper_input.py); not in a sandbox yet."""
    r = ctl("start", "-t", "--profile", "default", "--", "true")
    assert r.rc != 0, r
    assert b"tty with a sandbox profile" in r.err, r


def test_tty_sandboxed_own_devpts(ctl):
    r = ctl("exec", "-tt", "--profile", "default", "--", "sh", "-c",
            "tty; stty size; ls /dev/pts; echo T=$TERM", env={"TERM": "vt100"})
    if r.rc != 0 and b"sandbox" in r.err:
        pytest.skip("no sandboxes here: %s" % r.errtext)
    assert r.rc == 0, r
    lines = r.out.split(b"\r\n")
    assert lines[0] == b"/dev/pts/0", r  # the first pty of a devpts of its own
    assert lines[1] == b"24 80", r
    assert b"T=vt100" in r.out, r


# --------------------------------------------------------------------------
# the raw API


class Session:
    """An Exec stream whose requests the test feeds as it goes."""

    def __init__(self, stub, start, timeout=30):
        import queue
        self.q = queue.Queue()
        self.q.put(pb.ExecRequest(start=start))
        self.it = stub.Exec(iter(self.q.get, None), timeout=timeout)
        self.out, self.err, self.exit = b"", b"", None
        r = next(self.it)
        assert r.WhichOneof("msg") == "started_pid", r

    def put(self, **kw):
        self.q.put(pb.ExecRequest(**kw))

    def read_until(self, needle):
        while needle not in self.out:
            r = next(self.it)
            kind = r.WhichOneof("msg")
            if kind == "stdout":
                self.out += r.stdout
            elif kind == "stderr":
                self.err += r.stderr
            else:
                raise AssertionError("%s before %r: %r" % (kind, needle, self.out))

    def finish(self):
        for r in self.it:
            kind = r.WhichOneof("msg")
            if kind == "stdout":
                self.out += r.stdout
            elif kind == "stderr":
                self.err += r.stderr
            elif kind == "exit":
                self.exit = r.exit
        self.q.put(None)
        return self.exit


def tty_start(*argv, rows=None, cols=None, term="", **kw):
    st = pb.ExecStart(command=cmd(*argv), tty=True, term=term, **kw)
    if rows is not None:
        st.window.rows, st.window.cols = rows, cols
    return st


def test_grpc_tty_window_resize_term(stub):
    s = Session(stub, tty_start("sh", "-c", "stty size; echo T=$TERM; read x; stty size; "
                                "echo 'oops' >&2; exit 4", rows=20, cols=70, term="vt100"))
    s.read_until(b"T=vt100")
    s.put(resize=pb.TerminalSize(rows=50, cols=160))
    s.put(stdin=b"go\n")  # after the resize on the stream: read returns after it applied
    ex = s.finish()
    assert ex.exit_code == 4 and ex.reason == "exited", ex
    assert s.out.startswith(b"20 70\r\n"), s.out
    assert b"50 160\r\n" in s.out, s.out
    assert b"oops" in s.out and s.err == b"", (s.out, s.err)  # one terminal: all as stdout


def test_grpc_tty_close_stdin_is_veof_and_signal(stub):
    s = Session(stub, tty_start("cat"))
    s.put(stdin=b"abc\n")
    s.put(close_stdin=True)
    ex = s.finish()
    assert ex.exit_code == 0, (ex, s.out)
    assert s.out.count(b"abc") == 2, s.out  # the echo and cat's copy
    s = Session(stub, tty_start("sh", "-c", "echo READY; exec sleep 30"))
    s.read_until(b"READY")
    s.put(signal=signal.SIGTERM)
    ex = s.finish()
    assert ex.signal == signal.SIGTERM, ex


def test_grpc_tty_default_window(stub):
    s = Session(stub, tty_start("stty", "size"))
    ex = s.finish()
    assert ex.exit_code == 0 and s.out == b"24 80\r\n", (ex, s.out)


def _exec_error(stub, *reqs):
    e = rpc_error(lambda: list(stub.Exec(iter(reqs), timeout=30)))
    return e.code(), e.details()


@pytest.mark.parametrize("rows,cols", [(0, 80), (24, 0), (10001, 80), (24, 70000)])
def test_grpc_tty_bad_window(stub, rows, cols):
    code, msg = _exec_error(stub, pb.ExecRequest(start=tty_start("true", rows=rows, cols=cols)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, msg
    assert "window" in msg and "1..10000" in msg, msg


@pytest.mark.parametrize("term", ["xterm;rm", "a b", "x" * 65, "\u00e9t\u00e9", "x\x00y"])
def test_grpc_tty_bad_term(stub, term):
    code, msg = _exec_error(stub, pb.ExecRequest(start=tty_start("true", term=term)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, msg
    assert msg.startswith("term:"), msg


def test_grpc_tty_options_without_tty(stub):
    st = pb.ExecStart(command=cmd("true"), term="xterm")
    code, msg = _exec_error(stub, pb.ExecRequest(start=st))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "term without tty" in msg, msg
    st = pb.ExecStart(command=cmd("true"), window=pb.TerminalSize(rows=2, cols=2))
    code, msg = _exec_error(stub, pb.ExecRequest(start=st))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "window without tty" in msg, msg


def test_grpc_resize_before_start(stub):
    code, msg = _exec_error(stub, pb.ExecRequest(resize=pb.TerminalSize(rows=2, cols=2)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "resize before start" in msg, msg


def test_grpc_resize_without_tty_and_out_of_range(stub):
    st = pb.ExecStart(command=cmd("sleep", "30"))
    code, msg = _exec_error(stub, pb.ExecRequest(start=st),
                            pb.ExecRequest(resize=pb.TerminalSize(rows=2, cols=2)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "resize without a terminal" in msg, msg
    code, msg = _exec_error(stub, pb.ExecRequest(start=tty_start("sleep", "30")),
                            pb.ExecRequest(resize=pb.TerminalSize(rows=0, cols=2)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "resize" in msg, msg


# --------------------------------------------------------------------------
# full-screen programs


def test_tty_top_full_screen(pty_run):
    p = pty_run("exec", "-t", "--", "top", "-n", "1", rows=30, cols=120,
                env={"TERM": "xterm"})
    assert p.wait() == 0, p.buf[-2000:]
    assert b"load average" in p.buf and b"PID" in p.buf, p.buf[-2000:]
    assert p.mode() == p.before


def test_tty_vi_edits_a_file_with_keys(pty_run, tmp_path):
    path = tmp_path / "note.txt"
    p = pty_run("exec", "-t", "--", "vi", "-u", "NONE", "-n", str(path),
                env={"TERM": "xterm"})
    p.expect(rb"note\.txt")  # vi drew its screen
    p.send(b"ihello from a terminal\x1b")
    p.send(b":wq\r")
    assert p.wait() == 0, p.buf[-2000:]
    assert path.read_bytes() == b"hello from a terminal\n"
    assert p.mode() == p.before


# writes TOTAL bytes of "x" to its terminal, noting its progress in a file
FLOOD_SCRIPT = r"""
import os, sys
path, total, n = sys.argv[1], int(sys.argv[2]), 0
while n < total:
    n += os.write(1, b"x" * 65536)
    with open(path + ".tmp", "w") as f:
        f.write(str(n))
    os.rename(path + ".tmp", path)
"""


def _progress(path):
    try:
        with open(path) as f:
            return int(f.read() or 0)
    except (FileNotFoundError, ValueError):
        return 0


@pytest.mark.timeout(120)
def test_tty_slow_reader_holds_the_command_back(rund, tmp_path):
    """runctl's stdout is a pipe nobody reads: the terminal's master is read
    no faster than the client takes output, so the command blocks and
    rund's memory stays bounded; draining gets every byte."""
    from conftest import MiB, rss_kib
    total = 64 * MiB
    prog = str(tmp_path / "progress")
    rss0 = rss_kib(rund.pid)
    rfd, wfd = os.pipe()
    proc = subprocess.Popen([RUNCTL, "--addr", rund.addr, "exec", "-tt", "--", PY, "-c",
                             FLOOD_SCRIPT, prog, str(total)],
                            stdin=subprocess.DEVNULL, stdout=wfd, stderr=subprocess.PIPE)
    os.close(wfd)
    try:
        last, since = -1, time.monotonic()
        end = time.monotonic() + 60
        while time.monotonic() - since < 1.5:  # until it has stalled for 1.5 s
            assert time.monotonic() < end, "the command never stalled"
            now = _progress(prog)
            if now != last:
                last, since = now, time.monotonic()
            time.sleep(0.1)
        assert 0 < last < total // 2, last
        assert rss_kib(rund.pid) - rss0 < 48 * 1024, "rund grew while the client stalled"
        got = 0
        while True:
            b = os.read(rfd, 1 << 20)
            if not b:
                break
            got += b.count(b"x")
        assert proc.wait(30) == 0, proc.stderr.read()
        assert got == total
    finally:
        os.close(rfd)
        if proc.poll() is None:
            proc.kill()
        proc.wait()


# --------------------------------------------------------------------------
# long silence: keepalive pings (client every 20 s of silence, 20 s to answer)


@pytest.mark.timeout(150)
def test_tty_silent_session_stays_up_and_dead_server_is_noticed(rund, rund_factory):
    """Two silent sessions at once: one against a healthy rund outlives two
    keepalive rounds; one against a stopped rund (no answer, socket open)
    ends within a minute with UNAVAILABLE and the terminal restored."""
    frozen = rund_factory().start()
    alive = PtyRun(rund.addr, "exec", "-t", "--", "sh", "-c", "echo READY; sleep 50; echo ALIVE")
    dead = PtyRun(frozen.addr, "exec", "-t", "--", "sh", "-c", "echo READY; exec sleep 120")
    try:
        alive.expect(rb"READY")
        dead.expect(rb"READY")
        os.kill(frozen.pid, signal.SIGSTOP)
        t0 = time.monotonic()
        try:
            assert dead.wait(75) == 125, dead.buf
            assert time.monotonic() - t0 < 60, "the dead server was noticed too late"
        finally:
            os.kill(frozen.pid, signal.SIGCONT)
        assert b"did not answer a keepalive ping" in dead.buf, dead.buf
        assert dead.mode() == dead.before
        assert alive.wait(60) == 0, alive.buf
        assert b"ALIVE" in alive.buf
    finally:
        alive.close()
        dead.close()

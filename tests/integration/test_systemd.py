"""rund under systemd, without systemd: the test plays the manager. Socket
activation (LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES with the sockets at fds
3, 4, ...), sd_notify (READY, RELOADING with MONOTONIC_USEC, STOPPING,
WATCHDOG) read from a datagram socket of our own, the variables kept from
jobs, bad hand-overs refused, and the shipped units checked with
systemd-analyze where it is installed."""

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import RUND, Ctl, Rund, short_tmpdir

SRC = os.environ.get("RUNRPC_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))


class Notify:
    """The manager's end of NOTIFY_SOCKET."""

    def __init__(self, path):
        self.path = path
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.s.bind(path)
        self.msgs = []

    def expect(self, key, timeout=30):
        """The next message carrying KEY=..., as a dict (earlier ones kept)."""
        end = time.monotonic() + timeout
        for m in self.msgs:
            if key in m:
                self.msgs.remove(m)
                return m
        while time.monotonic() < end:
            self.s.settimeout(max(0.05, end - time.monotonic()))
            try:
                data = self.s.recv(4096).decode()
            except socket.timeout:
                break
            m = dict(line.split("=", 1) for line in data.split("\n") if line)
            if key in m:
                return m
            self.msgs.append(m)
        raise AssertionError("no %s= from rund within %ss (got %r)" % (key, timeout, self.msgs))

    def close(self):
        self.s.close()


class SdRund(Rund):
    """rund started the way systemd starts a socket-activated service."""

    def __init__(self, socks, names=None, env_extra=None, count=None):
        super().__init__(env_extra=env_extra)
        self.socks = socks
        self.names = names
        self.count = count
        self.args = []

    def start(self, wait=True):
        self.runs += 1
        self.stderr_path = os.path.join(self.base, "rund.%d.stderr" % self.runs)
        env = dict(os.environ)
        env.update(self.env_extra)
        env["LISTEN_FDS"] = str(self.count if self.count is not None else len(self.socks))
        if self.names is not None:
            env["LISTEN_FDNAMES"] = ":".join(self.names)
        fds = [s.fileno() for s in self.socks]
        count = self.count if isinstance(self.count, int) else len(fds)

        def place():  # in the child: fds 3.., moved out of the way first
            tmp = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in fds]
            for i, t in enumerate(tmp):
                os.dup2(t, 3 + i)
                os.close(t)
            for fd in range(3 + len(fds), 3 + count):  # said but not passed: not open
                try:
                    os.close(fd)
                except OSError:
                    pass

        with open(self.stderr_path, "wb") as errf:
            self.proc = subprocess.Popen(
                ["/bin/sh", "-c", 'LISTEN_PID=$$ exec "$@"', "sh", RUND, "--state-dir",
                 self.state] + self.args,
                stdin=subprocess.DEVNULL, stdout=errf, stderr=errf, env=env,
                close_fds=False, preexec_fn=place, start_new_session=True)
        if wait:
            self.wait_ready()
        return self


def unix_listener(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(16)
    return s


def tcp_listener():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    return s


@pytest.fixture
def base():
    d = short_tmpdir("rr-sd-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_socket_activation_unix_h2c_and_tls(base):
    r = SdRund([], env_extra={})
    sock = unix_listener(r.sock)
    plain, tls = tcp_listener(), tcp_listener()
    r.socks = [sock, plain, tls]
    r.names = ["rund", "h2c", "rund"]
    notify = Notify(os.path.join(base, "notify"))
    r.env_extra["NOTIFY_SOCKET"] = notify.path
    try:
        r.start()
        for s in r.socks:  # rund has its own copies now
            s.close()
        ready = notify.expect("READY")
        assert ready["READY"] == "1" and "STATUS" in ready, ready
        text = r.stderr_text()
        assert text.count("from=systemd") == 3, text
        assert "tls=false fd=4" in text and "tls=true fd=5" in text, text
        out = Ctl(r.addr)("exec", "--", "/bin/sh", "-c", "echo hi; env")
        assert out.rc == 0, out
        lines = out.text.splitlines()
        assert lines[0] == "hi"
        # nothing of systemd's hand-over reaches a job
        for var in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "NOTIFY_SOCKET",
                    "WATCHDOG_USEC", "WATCHDOG_PID"):
            assert not any(line.startswith(var + "=") for line in lines), (var, lines)
        port = int(text.split("addr=\"h2c:127.0.0.1:")[1].split('"')[0])
        # served in plaintext HTTP/2: answered, but no identity without a token
        out = Ctl("h2c:127.0.0.1:%d" % port)("exec", "--", "echo", "h2c")
        assert out.rc == 125 and "UNAUTHENTICATED: no identity: plaintext TCP" in out.errtext, out
        tport = int(text.split("tls=true")[0].rsplit("addr=\"127.0.0.1:", 1)[1].split('"')[0])
        out = Ctl("127.0.0.1:%d" % tport)("exec", "--", "echo", "tls",
                                          env={"RUNRPC_STATE_DIR": r.state})
        assert (out.rc, out.text) == (0, "tls\n"), out
        r.proc.send_signal(signal.SIGHUP)
        rel = notify.expect("RELOADING")
        assert rel["RELOADING"] == "1" and int(rel["MONOTONIC_USEC"]) > 0, rel
        now_us = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        assert abs(now_us - int(rel["MONOTONIC_USEC"])) < 120 * 10**6, (now_us, rel)
        notify.expect("READY")
        r.proc.send_signal(signal.SIGTERM)
        notify.expect("STOPPING")
        assert r.proc.wait(timeout=30) == 0, r.stderr_text()
        # the socket file is systemd's: left where it was
        assert os.path.exists(r.sock)
        r.assert_clean_stderr()
    finally:
        if r.proc and r.proc.poll() is None:
            r.kill()
        notify.close()
        shutil.rmtree(r.base, ignore_errors=True)


def test_watchdog_and_restart_in_place_keep_the_sockets(base):
    r = SdRund([], env_extra={"WATCHDOG_USEC": "400000"})
    r.socks = [unix_listener(r.sock)]
    notify = Notify(os.path.join(base, "notify"))
    r.env_extra["NOTIFY_SOCKET"] = notify.path
    try:
        r.start()
        r.socks[0].close()
        notify.expect("READY")
        for _ in range(3):  # every 200 ms
            assert notify.expect("WATCHDOG", timeout=10)["WATCHDOG"] == "1"
        assert "interval_ms=200" in r.stderr_text()
        pid = r.proc.pid
        r.proc.send_signal(signal.SIGUSR2)
        assert notify.expect("RELOADING")["RELOADING"] == "1"
        notify.expect("READY")  # said by the new image, once it serves systemd's socket again
        assert r.proc.pid == pid and r.proc.poll() is None
        assert r.stderr_text().count("from=systemd") == 2
        assert Ctl(r.addr)("exec", "--", "echo", "again").text == "again\n"
        notify.msgs.clear()
        assert notify.expect("WATCHDOG", timeout=10)["WATCHDOG"] == "1"
        r.stop()
    finally:
        if r.proc and r.proc.poll() is None:
            r.kill()
        notify.close()
        shutil.rmtree(r.base, ignore_errors=True)


@pytest.mark.parametrize("case", ["fd_not_open", "bad_count", "not_listening", "tls_no_certs"])
def test_bad_hand_over_is_refused(base, case):
    r = SdRund([])
    if case == "fd_not_open":
        r.socks, r.count = [unix_listener(r.sock)], 2
        want = "LISTEN_FDS=2 but fd 4 is not open"
    elif case == "bad_count":
        r.socks, r.count = [unix_listener(r.sock)], "two"
        want = 'LISTEN_FDS=\\"two\\": want 0 to 64 sockets'
    elif case == "not_listening":
        r.socks = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)]
        want = "fd 3 is not a listening unix or TCP stream socket"
    else:
        r.socks = [tcp_listener()]
        r.args = ["--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.key",
                 "--client-ca", "/nonexistent-ca.pem"]
        want = "/nonexistent"
    try:
        r.start(wait=False)
        assert r.proc.wait(timeout=30) == 1, r.stderr_text()
        assert want in r.stderr_text(), r.stderr_text()
        assert "AddressSanitizer" not in r.stderr_text()
    finally:
        for s in r.socks:
            s.close()
        if r.proc and r.proc.poll() is None:
            r.kill()
        shutil.rmtree(r.base, ignore_errors=True)


def test_units_verify(base):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not installed")
    for name in ("rund.service.in", "rund.socket"):
        with open(os.path.join(SRC, "dist", "systemd", name)) as f:
            text = f.read().replace("@BINDIR@/rund", RUND)
        with open(os.path.join(base, name.replace(".in", "")), "w") as f:
            f.write(text)
    p = subprocess.run(["systemd-analyze", "verify", "--man=no", "rund.service", "rund.socket"],
                       cwd=base, capture_output=True, text=True, timeout=60)
    # a host without systemd running has no sysinit.target: that is the host's
    out = "\n".join(line for line in (p.stdout + p.stderr).splitlines()
                    if "sysinit.target" not in line)
    assert out.strip() == "", out

"""runctl exec: live stdin/stdout/stderr, exit status, 125/126/127, disconnect."""

import os
import signal
import subprocess
import time

import pytest

from conftest import BYTES_SCRIPT, MiB, PY, bytes_expected, check_no_sanitizer, pid_alive, wait_pid_gone


def test_exec_true_false(ctl):
    assert ctl("exec", "--", "true").rc == 0
    assert ctl("exec", "--", "false").rc == 1
    assert ctl("exec", "true").rc == 0  # "--" is optional


def test_exec_exit_code_and_signal(ctl):
    assert ctl("exec", "--", "/bin/sh", "-c", "exit 42").rc == 42
    assert ctl("exec", "--", "/bin/sh", "-c", "kill -TERM $$").rc == 128 + 15
    assert ctl("exec", "--", "/bin/sh", "-c", "kill -KILL $$").rc == 128 + 9


def test_exec_binary_exact(ctl):
    rounds = 500
    r = ctl("exec", "--", PY, "-c", BYTES_SCRIPT, str(rounds))
    want_out, want_err = bytes_expected(rounds)
    assert r.rc == 0
    assert r.out == want_out
    assert r.err == want_err


def test_exec_stdin_cat(ctl):
    data = os.urandom(3 * MiB) + bytes(range(256))
    r = ctl("exec", "--", "cat", input=data)
    assert r.rc == 0 and r.out == data and r.err == b""


def test_exec_stdin_wc(ctl):
    r = ctl("exec", "--", "wc", "-c", input=b"z" * 1234567)
    assert r.rc == 0 and r.out.strip() == b"1234567"


def test_exec_empty_stdin_eof(ctl):
    r = ctl("exec", "--", "cat", input=b"")
    assert r.rc == 0 and r.out == b""


def test_exec_stdin_devnull(ctl):
    p = subprocess.run(ctl_argv(ctl, "exec", "--", "wc", "-c"), stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=30)
    assert p.returncode == 0 and p.stdout.strip() == b"0"


def test_exec_live_interactive(ctl):
    """Output arrives while stdin is still open (not buffered until EOF)."""
    p = ctl.popen("exec", "--", "cat", stdin=subprocess.PIPE)
    try:
        for i in range(5):
            line = b"ping %d\n" % i
            p.stdin.write(line)
            p.stdin.flush()
            assert p.stdout.readline() == line
        p.stdin.close()
        assert p.wait(20) == 0
    finally:
        p.kill()
        p.wait()


def test_exec_env_workdir_timeout(ctl, tmp_path):
    r = ctl("exec", "--env", "A=b c", "--env", "E=", "--workdir", str(tmp_path), "--",
            "/bin/sh", "-c", 'printf "%s|%s|%s" "$A" "${E-unset}" "$(pwd)"')
    assert r.rc == 0, r
    assert r.out == ("b c||%s" % tmp_path).encode()
    t = ctl("exec", "--timeout", "300ms", "--", "sleep", "30", timeout=30)
    assert t.rc >= 128, t


def test_exec_not_found_127(ctl):
    r = ctl("exec", "--", "/nonexistent/runrpc-nope")
    assert r.rc == 127, r
    assert b"/nonexistent/runrpc-nope" in r.err
    assert r.err.strip(b"\n").count(b"\n") == 0
    r = ctl("exec", "--", "runrpc-no-such-cmd-in-path")
    assert r.rc == 127, r


def test_exec_not_executable_126(ctl, tmp_path):
    f = tmp_path / "noexec.sh"
    f.write_text("#!/bin/sh\necho no\n")
    os.chmod(f, 0o644)
    r = ctl("exec", "--", str(f))
    assert r.rc == 126, r
    assert str(f).encode() in r.err


def test_exec_no_server_125(ctl_noaddr):
    r = ctl_noaddr("--addr", "unix:/nonexistent/rr.sock", "exec", "--", "true")
    assert r.rc == 125, r
    assert r.err.strip(b"\n").count(b"\n") == 0


def test_exec_client_killed_kills_command(ctl):
    p = ctl.popen("exec", "--", "/bin/sh", "-c", "echo $$; exec sleep 300")
    pid = int(p.stdout.readline())
    assert pid_alive(pid)
    p.kill()
    p.wait(10)
    assert wait_pid_gone(pid), "the command outlived its killed runctl exec"


def test_exec_client_sigint_kills_command(ctl):
    p = ctl.popen("exec", "--", "/bin/sh", "-c", "echo $$; exec sleep 300")
    pid = int(p.stdout.readline())
    p.send_signal(signal.SIGINT)
    try:
        p.wait(20)
    finally:
        p.kill()
    assert wait_pid_gone(pid)


def test_exec_many_in_a_row(ctl):
    for i in range(20):
        r = ctl("exec", "--", "/bin/sh", "-c", "printf %s $0; exit $(( $0 % 5 ))", str(i))
        assert (r.rc, r.out) == (i % 5, str(i).encode())


def test_exec_big_output_to_pipe(ctl):
    p = ctl.popen("exec", "--", "head", "-c", str(64 * MiB), "/dev/zero")
    total = 0
    while True:
        b = p.stdout.read(MiB)
        if not b:
            break
        assert b.count(0) == len(b)
        total += len(b)
    err = p.stderr.read()
    assert p.wait(30) == 0
    check_no_sanitizer(err, "runctl exec")
    assert total == 64 * MiB


def test_exec_stdout_closed_early(ctl):
    """The local reader goes away (like `| head -c`): runctl ends, so does the command."""
    sh = "'%s' --addr '%s' exec -- /bin/sh -c 'echo $$ >&2; exec cat /dev/zero' | head -c 1000 >/dev/null" % (
        ctl_argv(ctl)[0], ctl.addr)
    t0 = time.monotonic()
    p = subprocess.run(["/bin/bash", "-o", "pipefail", "-c", sh], capture_output=True, timeout=40)
    assert time.monotonic() - t0 < 35
    check_no_sanitizer(p.stderr, "runctl exec | head")
    pid = int(p.stderr.split(b"\n")[0])
    assert wait_pid_gone(pid)


def ctl_argv(ctl, *args):
    from conftest import RUNCTL
    return [RUNCTL, "--addr", ctl.addr] + list(args)

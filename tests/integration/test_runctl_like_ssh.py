"""runctl behaves like ssh where users expect it (issue 15): a closed
stdin (cron, daemons, `<&-`) is an empty one, never runctl's own socket;
the command gets HOME, USER, LOGNAME and SHELL of the user it runs as and
starts in that user's home unless --workdir says otherwise. Each with
closed, /dev/null and pipe stdin, as root and as another user.
"""

import json
import os
import pwd
import subprocess

import pytest

from conftest import RUNCTL, check_no_sanitizer
from test_client_interop import probe
from test_jobs_runas import NOBODY

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")


def sh_runctl(rund, redirect, *args, user=None, timeout=20, input=None):
    """runctl ARGS run by sh with REDIRECT applied (e.g. "<&-")."""
    quoted = " ".join("'%s'" % a.replace("'", "'\\''") for a in args)
    script = "exec %s --addr %s %s %s" % (RUNCTL, rund.addr, quoted, redirect)
    argv = ["sh", "-c", script]
    if user is not None:
        os.chmod(rund.base, 0o755)  # the other user must reach the socket
        argv = NOBODY[:1] + ["--reuid=%d" % user, "--regid=%d" % pwd.getpwuid(user).pw_gid,
                             "--clear-groups", "--"] + argv
    p = subprocess.run(argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    check_no_sanitizer(p.stderr, "runctl %r" % (args,))
    return p


@pytest.mark.parametrize("redirect", ["<&-", "</dev/null", "0<&- 1>&- ", "<&- 2>&-"])
def test_exec_with_closed_or_null_stdin_does_not_hang(rund, redirect):
    p = sh_runctl(rund, redirect, "exec", "--", "sh", "-c", "cat; echo done >&2; exit 3")
    assert p.returncode == 3, p
    assert p.stdout == b""
    if "2>&-" not in redirect:
        assert p.stderr == b"done\n", p


def test_exec_with_pipe_stdin(rund):
    p = sh_runctl(rund, "", "exec", "--", "cat", input=b"through a pipe\n")
    assert p.returncode == 0 and p.stdout == b"through a pipe\n", p


@pytest.mark.parametrize("redirect", ["<&-", "</dev/null"])
def test_other_commands_with_closed_stdin(rund, redirect):
    p = sh_runctl(rund, redirect, "start", "--", "sh", "-c", "echo out")
    assert p.returncode == 0, p
    jid = p.stdout.decode().strip()
    assert sh_runctl(rund, redirect, "wait", jid).returncode == 0
    p = sh_runctl(rund, redirect, "logs", jid)
    assert p.returncode == 0 and p.stdout == b"out\n", p


def test_library_never_takes_fd_0(rund):
    # a first run builds the probe (test_client_interop's helper)
    r = probe(rund.addr, "connect")
    assert r.returncode == 0, r
    import test_client_interop
    r = subprocess.run(["sh", "-c", 'exec "$0" "$1" list-fd0 <&-', test_client_interop._PROBE,
                        rund.addr], capture_output=True, timeout=30)
    check_no_sanitizer(r.stderr, "client_probe")
    assert r.returncode == 0 and r.stdout == b"OK fd0 closed\n", r


def login_env(rund, user=None, *extra):
    p = sh_runctl(rund, "</dev/null", "exec", *extra, "--", "sh", "-c",
                  'echo "$HOME|$USER|$LOGNAME|$SHELL|$(pwd)"', user=user)
    assert p.returncode == 0, p
    return p.stdout.decode().strip().split("|")


def expected(uid):
    pw = pwd.getpwuid(uid)
    home = pw.pw_dir if os.path.isdir(pw.pw_dir) else None
    return [pw.pw_dir, pw.pw_name, pw.pw_name, pw.pw_shell or "/bin/sh", home or "/"]


def test_environment_and_start_directory_as_root(rund):
    assert login_env(rund) == expected(os.geteuid())
    # --workdir wins; --env may replace any of them
    got = login_env(rund, None, "--workdir", "/tmp", "--env", "HOME=/elsewhere", "--env",
                    "USER=someone")
    assert got == ["/elsewhere", "someone"] + expected(os.geteuid())[2:4] + ["/tmp"], got


@ROOT_ONLY
@pytest.mark.parametrize("name", ["daemon", "nobody"])
def test_environment_and_start_directory_as_another_user(rund, name):
    try:
        uid = pwd.getpwnam(name).pw_uid
    except KeyError:
        pytest.skip("no user %s here" % name)
    assert login_env(rund, uid) == expected(uid)


def test_started_job_gets_the_same(rund, ctl):
    p = sh_runctl(rund, "<&-", "start", "--", "sh", "-c", 'echo "$HOME|$USER|$(pwd)"')
    jid = p.stdout.decode().strip()
    assert sh_runctl(rund, "<&-", "wait", jid).returncode == 0
    out = sh_runctl(rund, "<&-", "logs", jid).stdout.decode().strip().split("|")
    want = expected(os.geteuid())
    assert out == [want[0], want[1], want[4]], out
    st = ctl("status", jid, "--json")
    assert json.loads(st.out)["workdir"] == want[4]

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
import time

import grpc
import pytest

from conftest import RUNCTL, Ctl, check_no_sanitizer, pb, rpc_error
from test_client_interop import probe
from test_jobs_runas import NOBODY
from security_helpers import runctl_for_nobody

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")


def sh_runctl(rund, redirect, *args, user=None, timeout=20, input=None):
    """runctl ARGS run by sh with REDIRECT applied (e.g. "<&-")."""
    quoted = " ".join("'%s'" % a.replace("'", "'\\''") for a in args)
    # another user cannot run test.sh's install (a 0700 temp dir): a copy
    ctl = RUNCTL if user is None else runctl_for_nobody()
    script = "exec %s --addr %s %s %s" % (ctl, rund.addr, quoted, redirect)
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


# --------------------------------------------------------------------------
# --timeout says so; --timeout-grace


def test_exec_timeout_says_so(rund, ctl):
    r = ctl("exec", "--timeout", "500ms", "--", "sleep", "30")
    assert r.rc == 143, r
    assert r.errtext == "runctl: exec: timed out after 500ms (--timeout): ended by SIGTERM\n", r


def test_exec_timeout_grace_is_settable(rund, ctl):
    t0 = time.monotonic()
    r = ctl("exec", "--timeout", "300ms", "--timeout-grace", "400ms", "--", "sh", "-c",
            "trap '' TERM; sleep 30")
    took = time.monotonic() - t0
    assert r.rc == 137, r
    assert "timed out after 300ms (--timeout): killed by SIGKILL after the grace" in r.errtext
    assert 0.6 < took < 8, took  # the 400 ms grace, not the default 10 s


def test_started_job_timeout_in_status_and_wait(rund, ctl):
    r = ctl("start", "--timeout", "1s", "--timeout-grace", "2s", "--", "sleep", "30")
    jid = r.text.strip()
    w = ctl("wait", jid)
    assert w.rc == 143 and w.errtext == (
        "runctl: wait %s: timed out after 1s (--timeout): ended by SIGTERM\n" % jid), w
    s = json.loads(ctl("status", jid, "--json").out)
    assert (s["reason"], s["timeout_ms"], s["timeout_grace_ms"]) == ("timeout", 1000, 2000), s
    assert "reason: timeout" in ctl("status", jid).text


@pytest.mark.parametrize("args,msg", [
    (["--timeout-grace", "0", "--timeout", "1s"], "--timeout-grace \"0\" must be more than 0"),
    (["--timeout-grace", "2h", "--timeout", "1s"], "at most 1h"),
    (["--timeout-grace", "1s"], "--timeout-grace needs --timeout"),
    (["--timeout-grace", "soon", "--timeout", "1s"], "--timeout-grace"),
])
def test_timeout_grace_bad_values(ctl, args, msg):
    for verb in ("exec", "start"):
        r = ctl(verb, *args, "--", "true")
        assert r.rc == 2 and msg in r.errtext, r


def test_timeout_grace_checked_by_rund(stub):
    req = pb.StartRequest(command=pb.Command(path="/bin/true"), timeout_grace_ms=100)
    e = rpc_error(stub.Start, req, timeout=10)
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "timeout_ms is not" in e.details()
    req = pb.StartRequest(command=pb.Command(path="/bin/true"), timeout_ms=1000,
                          timeout_grace_ms=0)
    e = rpc_error(stub.Start, req, timeout=10)
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "timeout_grace_ms 0" in e.details()
    req = pb.StartRequest(command=pb.Command(path="/bin/true"), timeout_ms=1000,
                          timeout_grace_ms=3600001)
    e = rpc_error(stub.Start, req, timeout=10)
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "out of range" in e.details()


# --------------------------------------------------------------------------
# status --json


def test_status_json_keys_always_there(rund, ctl):
    r = ctl("start", "--", "sh", "-c", "sleep 30")
    jid = r.text.strip()
    s = json.loads(ctl("status", jid, "--json").out)
    assert s["exit_code"] is None and s["signal"] is None and s["end_time"] is None
    for key in ("limits", "usage", "cgroup", "owner", "timeout_grace_ms", "workdir"):
        assert key in s, (key, s)
    assert s["limits"] is None and s["timeout_grace_ms"] is None
    assert s["owner"] == ["uid:%d" % os.geteuid()]
    assert s["workdir"] == expected(os.geteuid())[4]
    assert "owner: uid:%d" % os.geteuid() in ctl("status", jid).text
    ctl("stop", jid, "--grace", "100ms")
    s = json.loads(ctl("status", jid, "--json").out)
    assert s["exit_code"] is None and s["signal"] == 15


def test_status_json_workdir_in_a_sandbox_is_slash(rund, ctl):
    r = ctl("start", "--profile", "default", "--", "true")
    if r.rc != 0:
        pytest.skip("no default sandbox here: " + r.errtext)
    jid = r.text.strip()
    ctl("wait", jid)
    assert json.loads(ctl("status", jid, "--json").out)["workdir"] == "/"


def test_status_bytes_count_output_after_the_main_process_ended(rund_factory):
    # without cgroups a child outlives its parent and writes on
    r = rund_factory(extra_args=["--no-cgroups"]).start()
    c = Ctl(r.addr)
    jid = c("start", "--", "sh", "-c", "echo first; (sleep 1; echo later) &").text.strip()
    assert c("wait", jid).rc == 0
    end = time.monotonic() + 10
    while time.monotonic() < end:
        s = json.loads(c("status", jid, "--json").out)
        if s["stdout_bytes"] == len("first\nlater\n"):
            break
        time.sleep(0.1)
    assert s["stdout_bytes"] == len("first\nlater\n"), s
    assert c("logs", jid).out == b"first\nlater\n"


# --------------------------------------------------------------------------
# list


def test_list_quotes_commands_newest_first_with_limit(rund, ctl):
    a = ctl("start", "--", "sh", "-c", "echo 'a b'; exit 0").text.strip()
    b = ctl("start", "--", "printf", "%s\n", "it's", "two\nlines", "").text.strip()
    c = ctl("start", "--", "true").text.strip()
    for j in (a, b, c):
        ctl("wait", j)
    rows = ctl("list").text.splitlines()
    assert [r.split()[0] for r in rows[1:]] == [c, b, a], rows
    assert rows[1].endswith("  true")
    assert rows[2].endswith("  printf $'%s\\n' 'it'\\''s' $'two\\nlines' ''"), rows[2]
    assert rows[3].endswith("  sh -c 'echo '\\''a b'\\''; exit 0'"), rows[3]
    assert [r.split()[0] for r in ctl("list", "--limit", "2").text.splitlines()[1:]] == [c, b]
    assert [r.split()[0] for r in ctl("list", "--limit", "1", "--oldest-first").text.splitlines()[
        1:]] == [a]
    for bad in ("0", "-1", "x", "1.5", ""):
        r = ctl("list", "--limit", bad)
        assert r.rc == 2 and "invalid --limit" in r.errtext, r


# --------------------------------------------------------------------------
# logs: --tail, --offset, a follower that fell behind the cap


def finished_job(ctl, script):
    jid = ctl("start", "--", "sh", "-c", script).text.strip()
    ctl("wait", jid)
    return jid


def test_logs_tail(rund, ctl):
    jid = finished_job(ctl, "for i in 1 2 3 4 5; do echo $i; echo e$i >&2; done; printf last")
    r = ctl("logs", jid, "--tail", "2")
    assert r.rc == 0 and r.out == b"5\nlast" and r.err == b"e4\ne5\n", r
    assert ctl("logs", jid, "--tail", "0").out == b""
    assert ctl("logs", jid, "--tail", "100", "--stdout").out == b"1\n2\n3\n4\n5\nlast"
    r = ctl("logs", jid, "--tail", "1", "--stderr")
    assert r.out == b"" and r.err == b"e5\n", r
    # a window larger than the first one read from the end (64 KiB)
    big = finished_job(ctl, "seq 1 200000; printf 'x%.0s' $(seq 1 70000); echo")
    r = ctl("logs", big, "--tail", "3", "--stdout")
    lines = r.out.split(b"\n")
    assert lines[:2] == [b"199999", b"200000"] and len(lines[2]) == 70000, lines[:2]


def test_logs_tail_then_follow(rund, ctl):
    jid = ctl("start", "--", "sh", "-c", "echo a; echo b; sleep 1; echo c").text.strip()
    time.sleep(0.5)
    r = ctl("logs", jid, "--tail", "1", "-f")
    assert r.rc == 0 and r.out == b"b\nc\n", r


def test_logs_offset(rund, ctl):
    jid = finished_job(ctl, "printf 0123456789; printf abcdef >&2")
    assert ctl("logs", jid, "--stdout", "--offset", "7").out == b"789"
    r = ctl("logs", jid, "--stderr", "--offset", "4")
    assert r.out == b"" and r.err == b"ef", r
    r = ctl("logs", jid, "--offset", "8,5")
    assert r.out == b"89" and r.err == b"f", r
    assert ctl("logs", jid, "--stdout", "--offset", "10").out == b""


@pytest.mark.parametrize("args,msg", [
    (["--offset", "5"], "--offset N needs --stdout or --stderr"),
    (["--offset", "1,2", "--stdout"], "--offset OUT,ERR is for both streams"),
    (["--offset", "x", "--stdout"], 'invalid --offset "x"'),
    (["--offset", "-1", "--stdout"], 'invalid --offset "-1"'),
    (["--offset", "3,", "--stdout"], 'invalid --offset "3,"'),
    (["--tail", "-1"], 'invalid --tail "-1"'),
    (["--tail", "x"], 'invalid --tail "x"'),
    (["--tail", "1", "--offset", "1,1"], "--offset and --tail exclude each other"),
])
def test_logs_bad_flags(ctl, args, msg):
    r = ctl("logs", "01ARZ3NDEKTSV4RRFFQ69G5FAV", *args)
    assert r.rc == 2 and msg in r.errtext, r


@pytest.mark.timeout(120)
def test_logs_follower_that_fell_behind_the_cap_exits_1(rund_factory):
    r = rund_factory(extra_args=["--max-log-bytes", "256K"]).start()
    c = Ctl(r.addr)
    jid = c("start", "--", "sh", "-c",
            "echo start; sleep 1; head -c 20000000 /dev/zero | tr '\\0' x; echo; echo end").text.strip()
    p = c.popen("logs", jid, "-f")
    first = p.stdout.read(6)  # "start\n": reading has begun
    assert first == b"start\n"
    time.sleep(4)  # not reading: runctl blocks, the job writes on, the cap drops
    out, err = p.communicate(timeout=90)
    assert p.returncode == 1, (p.returncode, err)
    assert b"output is incomplete" in err and b"before they were read" in err, err
    assert out.endswith(b"end\n")
    # a reader that starts after the drop: told, but nothing was skipped: exit 0
    c("wait", jid)
    r2 = c("logs", jid, "--stdout")
    assert r2.rc == 0 and b"dropped by the log size cap" in r2.err, r2


@ROOT_ONLY
def test_running_exec_shows_in_list_to_its_owner(rund, ctl):
    p = ctl.popen("exec", "--", "sleep", "30", stdin=subprocess.PIPE)
    try:
        end = time.monotonic() + 15
        while time.monotonic() < end:
            rows = [json.loads(ctl("list", "--json").out)]
            ex = [j for j in rows[0] if j["kind"] == "exec"]
            if ex:
                break
            time.sleep(0.1)
        assert len(ex) == 1, rows
        x = ex[0]
        assert x["state"] == "running" and x["command"] == ["sleep", "30"], x
        assert x["owner"] == ["uid:0"] and x["pid"] > 0 and x["end_time"] is None
        table = ctl("list").text.splitlines()
        assert any(r.split()[1:3] == ["exec", "running"] and r.endswith("sleep 30")
                   for r in table[1:]), table
        # newest first: before the jobs; with --oldest-first after them; not with a tag
        jid = ctl("start", "--tag", "t", "--", "true").text.strip()
        ctl("wait", jid)
        ids = [j["job_id"] for j in json.loads(ctl("list", "--json").out)]
        assert ids == [x["job_id"], jid], ids
        ids = [j["job_id"] for j in json.loads(ctl("list", "--json", "--oldest-first").out)]
        assert ids == [jid, x["job_id"]], ids
        assert [j["kind"] for j in json.loads(ctl("list", "--json", "--tag", "t").out)] == ["job"]
        assert json.loads(ctl("list", "--json", "--state", "exited").out)[0]["job_id"] == jid
        # another user does not see it
        os.chmod(rund.base, 0o755)
        q = subprocess.run(NOBODY + [RUNCTL, "--addr", rund.addr, "list", "--json"],
                           capture_output=True, timeout=30)
        assert q.returncode == 0 and json.loads(q.stdout) == [], q
    finally:
        p.kill()
        p.wait()
    end = time.monotonic() + 15
    while time.monotonic() < end:
        if not [j for j in json.loads(ctl("list", "--json").out) if j["kind"] == "exec"]:
            break
        time.sleep(0.1)
    assert not [j for j in json.loads(ctl("list", "--json").out) if j["kind"] == "exec"]

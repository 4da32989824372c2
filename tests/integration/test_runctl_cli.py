"""runctl commands against a real rund (docs/dev/CLI.md is the contract)."""

import json
import os
import re
import time

import pytest

from conftest import (BYTES_SCRIPT, PY, RUNCTL, ULID_RE, bytes_expected, unused_ulid,
                      wait_pid_gone)

COMMANDS = ["exec", "start", "status", "logs", "wait", "signal", "stop", "list"]
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def one_line_error(r, *patterns):
    lines = r.errtext.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("runctl: "), r
    for p in patterns:
        assert re.search(p, lines[0], re.I), "%r does not match %r" % (lines[0], p)
    return lines[0]


def start_job(ctl, *argv, opts=()):
    r = ctl("start", *opts, "--", *argv)
    assert r.rc == 0, r
    assert r.out.endswith(b"\n") and r.out.count(b"\n") == 1, r
    jid = r.text.strip()
    assert ULID_RE.match(jid), r
    return jid


def status_json(ctl, jid):
    r = ctl("status", jid, "--json")
    assert r.rc == 0, r
    return json.loads(r.out)


# ---------------------------------------------------------------- help/usage


def test_help_and_version(ctl_noaddr):
    r = ctl_noaddr("--help")
    assert r.rc == 0 and r.err == b"", r
    for c in COMMANDS:
        assert c in r.text, "runctl --help does not mention %s" % c
    v = ctl_noaddr("--version")
    assert v.rc == 0 and re.search(r"\d+\.\d+\.\d+", v.text), v


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help(ctl_noaddr, command):
    r = ctl_noaddr(command, "--help")
    assert r.rc == 0, r
    assert r.err == b""
    assert command in r.text and re.search(r"usage", r.text, re.I), r
    h = ctl_noaddr("help", command)
    assert h.rc == 0 and h.out == r.out, h


@pytest.mark.parametrize("argv", [
    ["bogus-command"], [], ["status"], ["status", "a", "b"], ["logs"], ["wait"],
    ["signal", "01ARZ3NDEKTSV4RRFFQ69G5FAV"], ["stop"], ["exec"], ["start"], ["start", "--"],
    ["list", "--state", "sleepy"], ["stop", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "--grace", "soon"],
    ["exec", "--timeout", "xyz", "--", "true"], ["logs", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "--bogus"],
    ["--no-such-flag", "list"], ["exec", "--env", "NOEQUALS", "--", "true"],
], ids=lambda a: " ".join(a) or "none")
def test_usage_errors_exit_2_one_line(ctl, argv):
    r = ctl(*argv)
    assert r.rc == 2, r
    lines = r.errtext.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0], r
    assert r.out == b""


def test_no_server_is_one_clear_line(ctl_noaddr):
    r = ctl_noaddr("--addr", "unix:/nonexistent/runrpc/rund.sock", "list")
    assert r.rc == 1, r
    one_line_error(r, r"/nonexistent/runrpc/rund.sock|UNAVAILABLE|connect")


def test_runrpc_addr_env(rund, ctl_noaddr):
    jid_r = ctl_noaddr("start", "--", "/bin/true", env={"RUNRPC_ADDR": rund.addr})
    assert jid_r.rc == 0, jid_r
    assert ULID_RE.match(jid_r.text.strip())


def test_addr_flag_wins_over_env(rund, ctl_noaddr):
    r = ctl_noaddr("--addr", rund.addr, "list", env={"RUNRPC_ADDR": "unix:/nonexistent/x.sock"})
    assert r.rc == 0, r


# ---------------------------------------------------------------- start/status/wait


def test_start_prints_ulid_at_once(ctl):
    t0 = time.monotonic()
    jid = start_job(ctl, "sleep", "20")
    assert time.monotonic() - t0 < 10  # does not wait for the job
    s = status_json(ctl, jid)
    assert s["state"] == "running"
    ctl("stop", jid, "--grace", "1s")


def test_status_json_fields(ctl, tmp_path):
    jid = start_job(ctl, "/bin/sh", "-c", "printf abc; printf de >&2; exit 3",
                    opts=["--tag", "t-1", "--tag", "t2", "--env", "K=V=W", "--workdir",
                          str(tmp_path), "--timeout", "1m"])
    w = ctl("wait", jid)
    assert w.rc == 3, w
    s = status_json(ctl, jid)
    for key in ["job_id", "state", "pid", "exit_code", "signal", "reason", "start_time",
                "end_time", "command", "env", "workdir", "tags", "timeout_ms", "stdout_bytes",
                "stderr_bytes"]:
        assert key in s, "status --json lacks %r: %r" % (key, s)
    assert s["job_id"] == jid
    assert s["state"] == "exited" and s["exit_code"] == 3 and s["reason"] == "exited"
    assert s["command"] == ["/bin/sh", "-c", "printf abc; printf de >&2; exit 3"]
    assert s["env"] == {"K": "V=W"}
    assert s["workdir"] == str(tmp_path)
    assert sorted(s["tags"]) == ["t-1", "t2"]
    assert s["timeout_ms"] == 60000
    assert (s["stdout_bytes"], s["stderr_bytes"]) == (3, 2)
    assert RFC3339_UTC.match(s["start_time"]) and RFC3339_UTC.match(s["end_time"]), s
    assert isinstance(s["pid"], int) and s["pid"] > 0


def test_status_json_running_has_null_end(ctl):
    jid = start_job(ctl, "sleep", "20")
    s = status_json(ctl, jid)
    assert s["state"] == "running" and s["end_time"] is None and s["timeout_ms"] is None
    ctl("stop", jid, "--grace", "1s")


def test_status_human(ctl):
    jid = start_job(ctl, "/bin/sh", "-c", "exit 5")
    ctl("wait", jid)
    r = ctl("status", jid)
    assert r.rc == 0, r
    kv = {}
    for line in r.text.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            kv[k.strip().lower()] = v.strip()
    assert jid in r.text
    assert any("exited" in v for v in kv.values()), r
    assert any(v == "5" for k, v in kv.items() if "exit" in k), r


def test_wait_exit_codes(ctl):
    assert ctl("wait", start_job(ctl, "/bin/sh", "-c", "exit 0")).rc == 0
    assert ctl("wait", start_job(ctl, "/bin/sh", "-c", "exit 77")).rc == 77
    r = ctl("wait", start_job(ctl, "/bin/sh", "-c", "kill -TERM $$"))
    assert r.rc == 128 + 15, r


def test_wait_unknown_exits_125(ctl):
    r = ctl("wait", unused_ulid())
    assert r.rc == 125, r
    one_line_error(r, r"NOT_FOUND", unused_ulid())


def test_status_unknown_and_malformed(ctl):
    r = ctl("status", unused_ulid())
    assert r.rc == 1, r
    line = one_line_error(r, r"NOT_FOUND", unused_ulid())
    assert re.match(r"^runctl: [^:]+: NOT_FOUND: .+", line), line
    r = ctl("status", "not-a-ulid")
    assert r.rc in (1, 2), r
    one_line_error(r, r"not-a-ulid|INVALID_ARGUMENT|id")


def test_start_not_found_is_clear(ctl):
    r = ctl("start", "--", "/nonexistent/runrpc-cmd")
    assert r.rc == 1, r
    one_line_error(r, r"/nonexistent/runrpc-cmd", r"not found|no such file")
    lst = json.loads(ctl("list", "--json").out)
    assert lst == []


# ---------------------------------------------------------------- logs


def test_logs_exact_bytes_and_filters(ctl):
    rounds = 150
    jid = start_job(ctl, PY, "-c", BYTES_SCRIPT, str(rounds))
    assert ctl("wait", jid).rc == 0
    want_out, want_err = bytes_expected(rounds)
    r = ctl("logs", jid)
    assert r.rc == 0
    assert r.out == want_out and r.err == want_err
    r = ctl("logs", jid, "--stdout")
    assert r.out == want_out and r.err == b""
    r = ctl("logs", jid, "--stderr")
    assert r.out == b"" and r.err == want_err


def test_logs_follow(ctl):
    jid = start_job(ctl, "/bin/sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.3; done; echo e >&2")
    r = ctl("logs", jid, "-f", timeout=30)
    assert r.rc == 0, r
    assert r.out == b"1\n2\n3\n" and r.err == b"e\n"
    r = ctl("logs", "--follow", jid, timeout=30)
    assert r.rc == 0 and r.out == b"1\n2\n3\n"


def test_logs_unknown(ctl):
    r = ctl("logs", unused_ulid())
    assert r.rc == 1
    one_line_error(r, "NOT_FOUND")


# ---------------------------------------------------------------- signal/stop


@pytest.mark.parametrize("sig,num", [("9", 9), ("KILL", 9), ("SIGKILL", 9), ("kill", 9),
                                     ("15", 15), ("term", 15), ("SIGUSR1", 10)])
def test_signal_forms(ctl, sig, num):
    jid = start_job(ctl, "sleep", "30")
    r = ctl("signal", jid, sig)
    assert r.rc == 0, r
    w = ctl("wait", jid)
    assert w.rc == 128 + num, w
    s = status_json(ctl, jid)
    assert s["state"] == "killed" and s["signal"] == num


def test_signal_bad_name(ctl):
    jid = start_job(ctl, "sleep", "30")
    r = ctl("signal", jid, "NOTASIG")
    assert r.rc in (1, 2), r
    one_line_error(r, r"NOTASIG|signal")
    assert status_json(ctl, jid)["state"] == "running"
    ctl("stop", jid, "--grace", "1s")


def test_stop_prints_final_status(ctl):
    jid = start_job(ctl, "sleep", "30")
    pid = status_json(ctl, jid)["pid"]
    r = ctl("stop", jid)
    assert r.rc == 0, r
    assert r.out.count(b"\n") == 1 and re.search(r"killed|stopped|TERM|15", r.text, re.I), r
    assert wait_pid_gone(pid)
    s = status_json(ctl, jid)
    assert s["state"] == "killed" and s["signal"] == 15 and s["reason"] == "stopped"


def test_stop_grace_then_kill(ctl):
    jid = start_job(ctl, "/bin/sh", "-c", 'trap "" TERM; sleep 30 & wait; wait')
    time.sleep(0.3)
    r = ctl("stop", jid, "--grace", "300ms", timeout=30)
    assert r.rc == 0, r
    s = status_json(ctl, jid)
    assert s["state"] == "killed" and s["signal"] == 9


@pytest.mark.parametrize("dur", ["0.5", "500ms", "1s"])
def test_stop_grace_forms(ctl, dur):
    jid = start_job(ctl, "sleep", "30")
    assert ctl("stop", jid, "--grace", dur).rc == 0


# ---------------------------------------------------------------- list


def test_list_table_and_json(ctl):
    a = start_job(ctl, "/bin/sh", "-c", "exit 0", opts=["--tag", "la"])
    b = start_job(ctl, "sleep", "30", opts=["--tag", "la", "--tag", "lb"])
    ctl("wait", a)
    r = ctl("list")
    assert r.rc == 0, r
    lines = r.text.splitlines()
    assert lines[0].split() == ["ID", "KIND", "STATE", "PID", "EXIT", "STARTED", "COMMAND"], lines[0]
    rows = {ln.split()[0]: ln for ln in lines[1:]}
    assert a in rows and b in rows
    assert "exited" in rows[a] and "running" in rows[b]
    js = json.loads(ctl("list", "--json").out)
    assert isinstance(js, list) and {j["job_id"] for j in js} == {a, b}
    run = json.loads(ctl("list", "--json", "--state", "running").out)
    assert [j["job_id"] for j in run] == [b]
    ex = json.loads(ctl("list", "--json", "--state", "exited").out)
    assert [j["job_id"] for j in ex] == [a]
    tb = json.loads(ctl("list", "--json", "--tag", "lb").out)
    assert [j["job_id"] for j in tb] == [b]
    assert json.loads(ctl("list", "--json", "--tag", "none-such").out) == []
    ctl("stop", b, "--grace", "1s")
    kl = json.loads(ctl("list", "--json", "--state", "killed").out)
    assert [j["job_id"] for j in kl] == [b]


def test_list_empty(ctl):
    r = ctl("list", "--json")
    assert r.rc == 0 and json.loads(r.out) == []


def test_start_timeout_flag(ctl):
    jid = start_job(ctl, "sleep", "30", opts=["--timeout", "300ms"])
    w = ctl("wait", jid, timeout=30)
    s = status_json(ctl, jid)
    assert s["state"] == "killed" and s["reason"] == "timeout", s
    assert w.rc == 128 + s["signal"]


def test_started_job_survives_runctl(ctl):
    jid = start_job(ctl, "/bin/sh", "-c", "sleep 1; echo later")
    # runctl has exited; the job runs on in rund
    r = ctl("wait", jid, timeout=30)
    assert r.rc == 0
    assert ctl("logs", jid).out == b"later\n"


def test_runctl_binary_exists():
    assert os.access(RUNCTL, os.X_OK), RUNCTL

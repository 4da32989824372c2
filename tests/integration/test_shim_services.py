"""runrpc's services through the real binary over a socat bridge: Commander
Shell (streams, stdin, env, cwd, timeout), Runner Spawn/Stop/Wait/Batch/
Info/Fork, with precise statuses for bad fields, and a client that goes away
mid-call leaving no process behind."""

import os
import signal
import time

import grpc
import pytest

from conftest import pid_alive, wait_pid_gone
from shim_helpers import Bridge, ForkTunnel, children_of, shell, cpb, lpb, rpb


@pytest.fixture
def b():
    br = Bridge()
    yield br
    br.close()


def code_of(fn):
    with pytest.raises(grpc.RpcError) as ei:
        fn()
    return ei.value.code(), ei.value.details()


# ---------------------------------------------------------------- Commander

def test_shell_string_env_cwd(b, tmp_path):
    _, out, err, ex = shell(b, sh="echo $FOO; pwd; echo e >&2", env={"FOO": "bar"},
                            cwd=str(tmp_path))
    assert out == b"bar\n%s\n" % str(tmp_path).encode()
    assert err == b"e\n" and ex.code == 0


def test_shell_streams_stdin_and_output_in_order(b):
    def reqs():
        yield cpb.Command(argv=["cat"])
        for i in range(50):
            yield cpb.Command(stdin=b"line %d\n" % i)
    out = b""
    ex = None
    for m in b.commander.Shell(reqs(), timeout=30):
        if m.WhichOneof("kind") == "stdout":
            out += m.stdout
        elif m.WhichOneof("kind") == "exit":
            ex = m.exit
    assert out == b"".join(b"line %d\n" % i for i in range(50))
    assert ex.code == 0


def test_shell_output_comes_before_the_end():
    b = Bridge()
    try:
        it = b.commander.Shell(iter([cpb.Command(shell="echo first; sleep 30", stdin_eof=True)]),
                               timeout=60)
        kinds = []
        for m in it:
            kinds.append(m.WhichOneof("kind"))
            if m.WhichOneof("kind") == "stdout":
                assert m.stdout == b"first\n"
                break
        assert kinds == ["started", "stdout"]
        it.cancel()
    finally:
        b.close()


def test_shell_signal_and_exit_codes(b):
    _, _, _, ex = shell(b, sh="kill -TERM $$")
    assert (ex.code, ex.signal) == (128 + signal.SIGTERM, signal.SIGTERM)
    _, _, _, ex = shell(b, argv=["false"])
    assert (ex.code, ex.signal) == (1, 0)


def test_shell_timeout(b):
    t0 = time.monotonic()
    _, _, _, ex = shell(b, sh="sleep 30", timeout_ms=300)
    assert ex.timed_out and ex.signal == signal.SIGTERM
    assert time.monotonic() - t0 < 20


@pytest.mark.parametrize("cmd,code,text", [
    (dict(), grpc.StatusCode.INVALID_ARGUMENT, "argv is empty"),
    (dict(argv=["true"], shell="true"), grpc.StatusCode.INVALID_ARGUMENT, "both set"),
    (dict(argv=[""]), grpc.StatusCode.INVALID_ARGUMENT, "argv[0] is empty"),
    (dict(argv=["no-such-cmd-x"]), grpc.StatusCode.NOT_FOUND, "not found"),
    (dict(argv=["/etc/passwd"]), grpc.StatusCode.PERMISSION_DENIED, "cannot be executed"),
    (dict(argv=["true"], cwd="rel"), grpc.StatusCode.INVALID_ARGUMENT, "not absolute"),
    (dict(argv=["true"], cwd="/no/such/dir"), grpc.StatusCode.NOT_FOUND, "cwd"),
    (dict(argv=["true"], cwd="/etc/passwd"), grpc.StatusCode.INVALID_ARGUMENT,
     "not a directory"),
    (dict(argv=["true"], env={"A=B": "x"}), grpc.StatusCode.INVALID_ARGUMENT, "env name"),
    (dict(argv=["true"], env={"1A": "x"}), grpc.StatusCode.INVALID_ARGUMENT, "env name"),
    (dict(argv=["true"], timeout_ms=10**15), grpc.StatusCode.INVALID_ARGUMENT, "timeout_ms"),
])
def test_shell_bad_fields(b, cmd, code, text):
    c, d = code_of(lambda: list(b.commander.Shell(iter([cpb.Command(**cmd)]), timeout=30)))
    assert c == code and text in d, d


def test_shell_later_message_may_not_restart(b):
    c, d = code_of(lambda: list(b.commander.Shell(
        iter([cpb.Command(argv=["cat"]), cpb.Command(argv=["true"])]), timeout=30)))
    assert c == grpc.StatusCode.INVALID_ARGUMENT and "only the first Command" in d


def test_shell_stream_without_a_command(b):
    c, d = code_of(lambda: list(b.commander.Shell(iter([]), timeout=30)))
    assert c == grpc.StatusCode.INVALID_ARGUMENT


def test_client_gone_mid_call_leaves_no_process():
    b = Bridge()
    it = b.commander.Shell(iter([cpb.Command(shell="sleep 300 & sleep 300; wait")]), timeout=60)
    first = next(it)
    pid = first.started.pid
    server = b.server_pid()
    time.sleep(0.2)
    assert pid_alive(pid)
    grandkids = children_of(pid)
    assert grandkids
    b.proc.kill()  # socat and the client side vanish: runrpc's stdin ends
    b.proc.wait()
    assert wait_pid_gone(pid), "the command outlived its client"
    for g in grandkids:
        assert wait_pid_gone(g), "a process of the command's group outlived its client"
    assert wait_pid_gone(server), "runrpc outlived its stdin"
    b.close()


def test_cancel_kills_the_command(b):
    it = b.commander.Shell(iter([cpb.Command(shell="sleep 300")]), timeout=60)
    pid = next(it).started.pid
    it.cancel()
    assert wait_pid_gone(pid)
    assert b.runner.Info(rpb.InfoRequest(), timeout=30).pid == b.server_pid()


# ---------------------------------------------------------------- Runner

def test_spawn_wait_with_file_actions(b, tmp_path):
    out = tmp_path / "out"
    inp = tmp_path / "in"
    inp.write_text("hello\n")
    r = b.runner.Spawn(rpb.SpawnRequest(
        argv=["sh", "-c", "cat; echo err >&2; echo $X; exit 4"], env={"X": "y"},
        file_actions=[
            rpb.FileAction(open=rpb.FileAction.Open(fd=0, path=str(inp), mode="r")),
            rpb.FileAction(open=rpb.FileAction.Open(fd=1, path=str(out), mode="w")),
            rpb.FileAction(dup2=rpb.FileAction.Dup2(fd=1, new_fd=2)),
        ]), timeout=30)
    assert r.handle.startswith("proc-") and r.pid > 0
    st = b.runner.Wait(rpb.WaitRequest(handle=r.handle), timeout=30)
    assert (st.pid, st.code, st.signal) == (r.pid, 4, 0)
    assert out.read_text() == "hello\nerr\ny\n"
    # its end was told: the handle is gone
    c, d = code_of(lambda: b.runner.Wait(rpb.WaitRequest(handle=r.handle), timeout=30))
    assert c == grpc.StatusCode.NOT_FOUND


def test_spawn_leads_a_group_and_stop_kills_it(b):
    r = b.runner.Spawn(rpb.SpawnRequest(argv=["sh", "-c", "sleep 300 & exec sleep 301"]),
                       timeout=30)
    assert os.getpgid(r.pid) == r.pid
    time.sleep(0.2)
    kids = children_of(r.pid)
    st = b.runner.Stop(rpb.StopRequest(handle=r.handle, grace_ms=5000), timeout=30)
    assert (st.code, st.signal) == (128 + signal.SIGTERM, signal.SIGTERM)
    for k in kids:
        assert wait_pid_gone(k)


def test_stop_grace_then_kill(b):
    r = b.runner.Spawn(rpb.SpawnRequest(argv=["sh", "-c", "trap '' TERM; sleep 300"]),
                       timeout=30)
    time.sleep(0.3)
    st = b.runner.Stop(rpb.StopRequest(handle=r.handle, grace_ms=200), timeout=30)
    assert st.signal == signal.SIGKILL


def test_stop_of_an_ended_process_answers_its_status(b):
    r = b.runner.Spawn(rpb.SpawnRequest(argv=["true"]), timeout=30)
    time.sleep(0.3)
    st = b.runner.Stop(rpb.StopRequest(handle=r.handle), timeout=30)
    assert (st.code, st.signal) == (0, 0)


@pytest.mark.parametrize("req,code,text", [
    (rpb.SpawnRequest(), grpc.StatusCode.INVALID_ARGUMENT, "argv is empty"),
    (rpb.SpawnRequest(argv=["no-such-cmd-x"]), grpc.StatusCode.NOT_FOUND, "not found"),
    (rpb.SpawnRequest(argv=["true"], cwd="/nope"), grpc.StatusCode.NOT_FOUND, "cwd"),
    (rpb.SpawnRequest(argv=["true"], file_actions=[rpb.FileAction()]),
     grpc.StatusCode.INVALID_ARGUMENT, "file_actions[0].action is not set"),
    (rpb.SpawnRequest(argv=["true"], file_actions=[
        rpb.FileAction(close=rpb.FileAction.Close(fd=3))]),
     grpc.StatusCode.INVALID_ARGUMENT, "file_actions[0].close.fd 3"),
    (rpb.SpawnRequest(argv=["true"], file_actions=[
        rpb.FileAction(open=rpb.FileAction.Open(fd=1, path="rel", mode="w"))]),
     grpc.StatusCode.INVALID_ARGUMENT, "not absolute"),
    (rpb.SpawnRequest(argv=["true"], file_actions=[
        rpb.FileAction(open=rpb.FileAction.Open(fd=1, path="/tmp/x", mode="rw"))]),
     grpc.StatusCode.INVALID_ARGUMENT, "open.mode"),
    (rpb.SpawnRequest(argv=["true"], file_actions=[
        rpb.FileAction(open=rpb.FileAction.Open(fd=0, path="/no/such/file", mode="r"))]),
     grpc.StatusCode.NOT_FOUND, "cannot open"),
    (rpb.SpawnRequest(argv=["true"], file_actions=[
        rpb.FileAction(dup2=rpb.FileAction.Dup2(fd=0, new_fd=-1))]),
     grpc.StatusCode.INVALID_ARGUMENT, "dup2.new_fd -1"),
])
def test_spawn_bad_fields(b, req, code, text):
    c, d = code_of(lambda: b.runner.Spawn(req, timeout=30))
    assert c == code and text in d, d


@pytest.mark.parametrize("handle,code", [
    ("", grpc.StatusCode.INVALID_ARGUMENT), ("bogus", grpc.StatusCode.INVALID_ARGUMENT),
    ("proc-999", grpc.StatusCode.NOT_FOUND)])
def test_stop_and_wait_bad_handles(b, handle, code):
    assert code_of(lambda: b.runner.Stop(rpb.StopRequest(handle=handle), timeout=30))[0] == code
    assert code_of(lambda: b.runner.Wait(rpb.WaitRequest(handle=handle), timeout=30))[0] == code


def test_stop_grace_out_of_range(b):
    r = b.runner.Spawn(rpb.SpawnRequest(argv=["sleep", "300"]), timeout=30)
    c, d = code_of(lambda: b.runner.Stop(rpb.StopRequest(handle=r.handle, grace_ms=10**12),
                                         timeout=30))
    assert c == grpc.StatusCode.INVALID_ARGUMENT and "grace_ms" in d
    b.runner.Stop(rpb.StopRequest(handle=r.handle, grace_ms=0), timeout=30)


def test_server_stops_on_sigterm_killing_what_it_started():
    b = Bridge()
    r = b.runner.Spawn(rpb.SpawnRequest(argv=["sleep", "300"]), timeout=30)
    server = b.server_pid()
    os.kill(server, signal.SIGTERM)
    assert wait_pid_gone(server)
    assert wait_pid_gone(r.pid)
    b.close()


def test_spawned_processes_die_with_the_server():
    b = Bridge()
    r = b.runner.Spawn(rpb.SpawnRequest(argv=["sleep", "300"]), timeout=30)
    b.close()
    assert wait_pid_gone(r.pid)


def test_batch_order_concurrency_and_errors(b, tmp_path):
    log = tmp_path / "log"
    n = 6
    spawns = [rpb.SpawnRequest(argv=["sh", "-c", "echo start >>%s; sleep 0.3; echo end >>%s; "
                                     "exit %d" % (log, log, i)]) for i in range(n)]
    spawns.insert(2, rpb.SpawnRequest(argv=["no-such-cmd-x"]))
    t0 = time.monotonic()
    resp = b.runner.Batch(rpb.BatchRequest(spawns=spawns, concurrency=2), timeout=60)
    assert len(resp.results) == n + 1
    codes = [r.code for r in resp.results]
    assert codes[:2] == [0, 1] and codes[3:] == [2, 3, 4, 5]
    bad = resp.results[2]
    assert bad.pid == 0 and bad.error_code == grpc.StatusCode.NOT_FOUND.value[0]
    assert "not found" in bad.error
    # never more than two at once: the log's running count stays <= 2
    running = peak = 0
    for line in log.read_text().split():
        running += 1 if line == "start" else -1
        peak = max(peak, running)
    assert peak <= 2
    assert time.monotonic() - t0 >= 0.9  # 6 of 0.3 s two by two


def test_batch_limits(b):
    c, _ = code_of(lambda: b.runner.Batch(rpb.BatchRequest(
        spawns=[rpb.SpawnRequest(argv=["true"])], concurrency=100000), timeout=30))
    assert c == grpc.StatusCode.INVALID_ARGUMENT
    assert len(b.runner.Batch(rpb.BatchRequest(), timeout=30).results) == 0


def test_batch_bad_field_names_its_index(b):
    resp = b.runner.Batch(rpb.BatchRequest(spawns=[rpb.SpawnRequest(argv=["true"]),
                                                   rpb.SpawnRequest()]), timeout=30)
    assert resp.results[1].error_code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert resp.results[1].error.startswith("spawns[1]: argv is empty")


# ---------------------------------------------------------------- Fork

def test_fork_child_serves_through_the_parent(b):
    t = ForkTunnel(b.runner, b.dir)
    try:
        assert t.depth == 1
        info = t.runner.Info(rpb.InfoRequest(), timeout=30)
        assert (info.pid, info.ppid, info.depth) == (t.pid, b.server_pid(), 1)
        _, out, _, ex = shell(t, sh="echo $PPID")
        assert int(out) == t.pid and ex.code == 0
    finally:
        assert t.close() is None
    assert wait_pid_gone(t.pid)


def test_fork_nested_twice(b):
    t1 = ForkTunnel(b.runner, b.dir)
    t2 = ForkTunnel(t1.runner, b.dir)
    try:
        info = t2.runner.Info(rpb.InfoRequest(), timeout=30)
        assert (info.ppid, info.depth) == (t1.pid, 2)
    finally:
        t2.close()
        t1.close()
    assert wait_pid_gone(t2.pid) and wait_pid_gone(t1.pid)


def test_fork_child_dies_when_the_call_is_cancelled(b):
    t = ForkTunnel(b.runner, b.dir)
    r = t.runner.Spawn(rpb.SpawnRequest(argv=["sleep", "300"]), timeout=30)
    t.call.cancel()
    assert wait_pid_gone(t.pid)
    assert wait_pid_gone(r.pid)
    t.close()


# ---------------------------------------------------------------- strings

def test_nul_in_a_string_field_is_refused_not_cut(b, tmp_path):
    c, d = code_of(lambda: list(b.commander.Shell(
        iter([cpb.Command(argv=["touch", str(tmp_path / "a\x00b")])]), timeout=30)))
    assert c == grpc.StatusCode.INVALID_ARGUMENT and d == "commander.Command: argv[1] contains a NUL byte"
    assert not (tmp_path / "a").exists()
    c, d = code_of(lambda: b.runner.Spawn(rpb.SpawnRequest(
        argv=["true"], file_actions=[rpb.FileAction(open=rpb.FileAction.Open(
            fd=1, path="/tmp/x\x00y", mode="w"))]), timeout=30))
    assert c == grpc.StatusCode.INVALID_ARGUMENT
    assert d == "runner.SpawnRequest: file_actions[0].open.path contains a NUL byte"
    c, d = code_of(lambda: b.runner.Spawn(rpb.SpawnRequest(argv=["true"], env={"A": "x\x00"}),
                                          timeout=30))
    assert d == "runner.SpawnRequest: env[0].value contains a NUL byte"


def test_invalid_utf8_in_a_string_field_is_refused(b):
    # a BytesValue{value = b"\xff"} has Command.argv[0]'s wire form
    raw = lpb.BytesValue(value=b"\xff").SerializeToString()
    call = b.channel.stream_stream("/commander.Commander/Shell",
                                   request_serializer=lambda m: m,
                                   response_deserializer=cpb.Output.FromString)
    c, d = code_of(lambda: list(call(iter([raw]), timeout=30)))
    assert c == grpc.StatusCode.INVALID_ARGUMENT and d == "commander.Command: argv[0] is not valid UTF-8"

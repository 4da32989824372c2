"""runrpc.v1.Jobs through python grpcio: Start/Status/Wait/Logs/List/Signal/Stop."""

import os
import pwd
import time

import grpc
import pytest

from conftest import (BYTES_SCRIPT, PY, bytes_expected, logs, pb, pid_alive, rpc_error, start,
                      wait, wait_pid_gone)


def test_start_returns_ulid_and_pid_then_wait_exited(stub):
    r = start(stub, "/bin/sh", "-c", "exit 0")
    assert r.pid > 0
    st = wait(stub, r.job_id)
    assert st.job_id == r.job_id
    assert st.state == pb.JOB_STATE_EXITED
    assert st.exit_code == 0
    assert st.reason == "exited"
    assert st.pid == r.pid
    assert st.start_time_unix_ns > 0
    assert st.end_time_unix_ns >= st.start_time_unix_ns


def test_job_ids_are_unique_and_sortable(stub):
    ids = [start(stub, "true").job_id for _ in range(20)]
    assert len(set(ids)) == 20
    assert ids == sorted(ids), "ULIDs made one after the other sort by time"
    for i in ids:
        wait(stub, i)


def test_exit_code_kept(stub):
    r = start(stub, "/bin/sh", "-c", "exit 42")
    st = wait(stub, r.job_id)
    assert (st.state, st.exit_code, st.signal) == (pb.JOB_STATE_EXITED, 42, 0)


def test_killed_by_signal_reported(stub):
    r = start(stub, "/bin/sh", "-c", "kill -KILL $$")
    st = wait(stub, r.job_id)
    assert st.state == pb.JOB_STATE_KILLED
    assert st.signal == 9
    assert st.reason == "signaled"


def test_path_lookup_env_and_workdir(stub, tmp_path):
    d = str(tmp_path)
    r = start(stub, "sh", "-c", 'printf "%s|%s|%s" "$FOO" "$(pwd)" "$BAR"',
              env={"FOO": "foo value", "BAR": "b=a=r"}, workdir=d)
    wait(stub, r.job_id)
    out, err, _ = logs(stub, r.job_id)
    assert out == ("foo value|%s|b=a=r" % d).encode()
    assert err == b""


def test_default_workdir_is_home_and_default_env(stub):
    # as ssh: the home of the user it runs as (rund's here), HOME set to it
    home = pwd.getpwuid(os.geteuid()).pw_dir
    r = start(stub, "/bin/sh", "-c", 'pwd; echo "$HOME"; test -n "$PATH" && echo path-set')
    wait(stub, r.job_id)
    out, _, _ = logs(stub, r.job_id)
    want = home if os.path.isdir(home) else "/"
    assert out == ("%s\n%s\npath-set\n" % (want, home)).encode()


def test_status_running_then_exited(stub):
    r = start(stub, "/bin/sh", "-c", "sleep 2; exit 3", tags=["t1", "a.b:c/d=e-f"])
    st = stub.Status(pb.StatusRequest(job_id=r.job_id), timeout=10).status
    assert st.state == pb.JOB_STATE_RUNNING
    assert st.pid == r.pid and pid_alive(r.pid)
    assert st.end_time_unix_ns == 0
    assert st.request.command.path == "/bin/sh"
    assert list(st.request.command.args) == ["-c", "sleep 2; exit 3"]
    assert sorted(st.request.tags) == sorted(["t1", "a.b:c/d=e-f"])
    st = wait(stub, r.job_id)
    assert (st.state, st.exit_code) == (pb.JOB_STATE_EXITED, 3)
    st2 = stub.Status(pb.StatusRequest(job_id=r.job_id), timeout=10).status
    assert st2.state == pb.JOB_STATE_EXITED and st2.end_time_unix_ns > 0


def test_status_counts_bytes(stub):
    r = start(stub, "/bin/sh", "-c", "head -c 12345 /dev/zero; head -c 777 /dev/zero >&2")
    wait(stub, r.job_id)
    st = stub.Status(pb.StatusRequest(job_id=r.job_id), timeout=10).status
    assert (st.stdout_bytes, st.stderr_bytes) == (12345, 777)


def test_logs_binary_exact_streams_apart(stub):
    rounds = 200
    r = start(stub, PY, "-c", BYTES_SCRIPT, str(rounds))
    st = wait(stub, r.job_id)
    assert st.exit_code == 0
    want_out, want_err = bytes_expected(rounds)
    out, err, _ = logs(stub, r.job_id)
    assert out == want_out
    assert err == want_err
    out_only, err_none, msgs = logs(stub, r.job_id, stream=pb.STREAM_STDOUT)
    assert out_only == want_out and err_none == b""
    assert all(m.stream == pb.STREAM_STDOUT for m in msgs)
    out_none, err_only, _ = logs(stub, r.job_id, stream=pb.STREAM_STDERR)
    assert out_none == b"" and err_only == want_err


def test_logs_from_offsets(stub):
    r = start(stub, "/bin/sh", "-c", "printf 0123456789; printf abcdefghij >&2")
    wait(stub, r.job_id)
    out, err, _ = logs(stub, r.job_id, stdout_offset=4, stderr_offset=7)
    assert out == b"456789"
    assert err == b"hij"
    out, err, _ = logs(stub, r.job_id, stdout_offset=10, stderr_offset=10)
    assert out == b"" and err == b""


def test_logs_follow_streams_until_job_ends(stub):
    r = start(stub, "/bin/sh", "-c",
              "for i in 1 2 3 4 5; do echo line$i; sleep 0.2; done; echo bye >&2")
    out, err, _ = logs(stub, r.job_id, follow=True, timeout=30)
    assert out == b"".join(b"line%d\n" % i for i in range(1, 6))
    assert err == b"bye\n"
    st = stub.Status(pb.StatusRequest(job_id=r.job_id), timeout=10).status
    assert st.state == pb.JOB_STATE_EXITED


def test_logs_follow_of_finished_job_ends(stub):
    r = start(stub, "/bin/echo", "done")
    wait(stub, r.job_id)
    out, _, _ = logs(stub, r.job_id, follow=True, timeout=10)
    assert out == b"done\n"


def test_logs_without_follow_of_running_job_returns_what_exists(stub):
    r = start(stub, "/bin/sh", "-c", "echo early; exec sleep 30")
    deadline = time.monotonic() + 10
    out = b""
    while time.monotonic() < deadline and out != b"early\n":
        out, _, _ = logs(stub, r.job_id, timeout=10)
        time.sleep(0.05)
    assert out == b"early\n"
    stub.Stop(pb.StopRequest(job_id=r.job_id, grace_ms=1000), timeout=20)


def test_tail_output_never_lost_on_fast_exit(stub):
    ids = [start(stub, "/bin/sh", "-c", "head -c 300000 /dev/zero | tr '\\0' x; exit 5").job_id
           for _ in range(10)]
    for i in ids:
        st = wait(stub, i)
        assert st.exit_code == 5
        out, _, _ = logs(stub, i)
        assert out == b"x" * 300000


def test_list_filters_by_state_and_tag(stub):
    a = start(stub, "/bin/sh", "-c", "exit 0", tags=["grp-a"])
    b = start(stub, "sleep", "30", tags=["grp-a", "grp-b"])
    c = start(stub, "/bin/sh", "-c", "exit 1", tags=["grp-b"])
    wait(stub, a.job_id)
    wait(stub, c.job_id)
    every = {j.job_id: j for j in stub.List(pb.ListRequest(), timeout=10).jobs}
    assert {a.job_id, b.job_id, c.job_id} <= set(every)
    assert every[b.job_id].state == pb.JOB_STATE_RUNNING
    running = {j.job_id for j in stub.List(pb.ListRequest(state=pb.JOB_STATE_RUNNING),
                                           timeout=10).jobs}
    assert b.job_id in running and a.job_id not in running and c.job_id not in running
    exited = {j.job_id for j in stub.List(pb.ListRequest(state=pb.JOB_STATE_EXITED),
                                          timeout=10).jobs}
    assert {a.job_id, c.job_id} <= exited and b.job_id not in exited
    ga = {j.job_id for j in stub.List(pb.ListRequest(tag="grp-a"), timeout=10).jobs}
    assert ga == {a.job_id, b.job_id}
    gb_run = {j.job_id for j in stub.List(pb.ListRequest(tag="grp-b", state=pb.JOB_STATE_RUNNING),
                                          timeout=10).jobs}
    assert gb_run == {b.job_id}
    assert list(stub.List(pb.ListRequest(tag="nobody-has-this"), timeout=10).jobs) == []
    stub.Stop(pb.StopRequest(job_id=b.job_id, grace_ms=1000), timeout=20)


@pytest.mark.parametrize("sig", [pb.SignalRequest(number=15), pb.SignalRequest(name="TERM"),
                                 pb.SignalRequest(name="SIGTERM"), pb.SignalRequest(name="term")],
                         ids=["number", "name", "SIGname", "lowercase"])
def test_signal_by_number_and_name(stub, sig):
    r = start(stub, "sleep", "30")
    req = pb.SignalRequest()
    req.CopyFrom(sig)
    req.job_id = r.job_id
    stub.Signal(req, timeout=10)
    st = wait(stub, r.job_id)
    assert st.state == pb.JOB_STATE_KILLED and st.signal == 15


def test_signal_handled_by_job(stub):
    r = start(stub, "/bin/sh", "-c", 'trap "echo got-usr1; exit 7" USR1; while :; do sleep 0.05; done')
    time.sleep(0.3)  # let the shell install its trap
    stub.Signal(pb.SignalRequest(job_id=r.job_id, name="USR1"), timeout=10)
    st = wait(stub, r.job_id)
    assert (st.state, st.exit_code) == (pb.JOB_STATE_EXITED, 7)
    out, _, _ = logs(stub, r.job_id)
    assert out == b"got-usr1\n"


def test_stop_sigterm_reports_final_status(stub):
    r = start(stub, "sleep", "30")
    st = stub.Stop(pb.StopRequest(job_id=r.job_id), timeout=30).status
    assert st.state == pb.JOB_STATE_KILLED
    assert st.signal == 15
    assert st.reason == "stopped"
    assert st.end_time_unix_ns > 0
    assert wait_pid_gone(r.pid)


def test_stop_escalates_to_sigkill_after_grace(stub):
    # TERM is ignored by the shell and inherited as ignored by sleep
    r = start(stub, "/bin/sh", "-c", 'trap "" TERM; sleep 30 & wait; wait')
    time.sleep(0.3)
    t0 = time.monotonic()
    st = stub.Stop(pb.StopRequest(job_id=r.job_id, grace_ms=500), timeout=30).status
    assert time.monotonic() - t0 < 25
    assert st.state == pb.JOB_STATE_KILLED and st.signal == 9
    assert wait_pid_gone(r.pid)


def test_stop_kills_whole_process_group(stub):
    r = start(stub, "/bin/sh", "-c", "sleep 300 & echo $!; wait")
    child = None
    end = time.monotonic() + 10
    while child is None and time.monotonic() < end:
        out, _, _ = logs(stub, r.job_id)
        if out.endswith(b"\n"):
            child = int(out)
        time.sleep(0.05)
    assert child and pid_alive(child)
    stub.Stop(pb.StopRequest(job_id=r.job_id, grace_ms=2000), timeout=30)
    assert wait_pid_gone(child), "the job's child outlived Stop"


def test_stop_of_finished_job_returns_its_status(stub):
    r = start(stub, "/bin/sh", "-c", "exit 4")
    wait(stub, r.job_id)
    try:
        st = stub.Stop(pb.StopRequest(job_id=r.job_id), timeout=10).status
    except grpc.RpcError as e:
        # refusing is fine too, as long as it is said clearly
        assert e.code() == grpc.StatusCode.FAILED_PRECONDITION, e
        return
    assert (st.state, st.exit_code) == (pb.JOB_STATE_EXITED, 4)


def test_job_timeout_enforced_by_rund(stub):
    r = start(stub, "sleep", "30", timeout_ms=300)
    st = wait(stub, r.job_id, timeout=30)
    assert st.state == pb.JOB_STATE_KILLED
    assert st.reason == "timeout"
    assert st.request.timeout_ms == 300
    assert wait_pid_gone(r.pid)


def test_wait_many_waiters(stub):
    r = start(stub, "/bin/sh", "-c", "sleep 0.5; exit 9")
    futs = [stub.Wait.future(pb.WaitRequest(job_id=r.job_id), timeout=30) for _ in range(20)]
    for f in futs:
        st = f.result().status
        assert (st.state, st.exit_code) == (pb.JOB_STATE_EXITED, 9)


def test_jobs_stdin_is_not_inherited(stub):
    r = start(stub, "/bin/sh", "-c", "cat; echo end")
    st = wait(stub, r.job_id, timeout=20)
    assert st.exit_code == 0
    out, _, _ = logs(stub, r.job_id)
    assert out == b"end\n"


def test_many_jobs_and_unknown_after(stub):
    ids = [start(stub, "/bin/sh", "-c", "echo $0", str(i)).job_id for i in range(50)]
    for n, i in enumerate(ids):
        assert wait(stub, i).exit_code == 0
        assert logs(stub, i)[0] == b"%d\n" % n
    e = rpc_error(stub.Status, pb.StatusRequest(job_id="01ARZ3NDEKTSV4RRFFQ69G5FAV"), timeout=10)
    assert e.code() == grpc.StatusCode.NOT_FOUND
    assert len(stub.List(pb.ListRequest(), timeout=10).jobs) >= 50

"""Every request field is validated: the right gRPC code and a message that
names the problem. Nothing is created by a request that fails."""

import os
import re

import grpc
import pytest

from conftest import cmd, pb, rpc_error, start, unused_ulid, wait

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def job_count(stub):
    return len(stub.List(pb.ListRequest(), timeout=10).jobs)


def assert_error(e, code, *patterns):
    assert e.code() == code, "want %s, got %s: %s" % (code, e.code(), e.details())
    msg = e.details() or ""
    for p in patterns:
        assert re.search(p, msg, re.I), "message %r does not match %r" % (msg, p)


def start_err(stub, command, **kw):
    return rpc_error(stub.Start, pb.StartRequest(command=command, **kw), timeout=10)


def test_start_without_command(stub):
    e = rpc_error(stub.Start, pb.StartRequest(), timeout=10)
    assert_error(e, INVALID, r"command|path")


def test_start_empty_path(stub):
    assert_error(start_err(stub, cmd("")), INVALID, r"command|path", r"empty|required|missing")
    assert job_count(stub) == 0


def test_start_nul_in_path(stub):
    assert_error(start_err(stub, cmd("/bin/e\0cho")), INVALID, r"NUL|\\0|null")


def test_start_nul_in_arg(stub):
    assert_error(start_err(stub, cmd("/bin/echo", "ok", "b\0d")), INVALID, r"NUL|\\0|null", r"arg")


def test_start_nul_in_env(stub):
    assert_error(start_err(stub, cmd("/bin/true", env={"K": "v\0v"})), INVALID,
                 r"NUL|\\0|null", r"env|K")


def test_start_env_key_with_equals(stub):
    assert_error(start_err(stub, cmd("/bin/true", env={"A=B": "v"})), INVALID, r"env|A=B", r"=")


def test_start_env_empty_key(stub):
    assert_error(start_err(stub, cmd("/bin/true", env={"": "v"})), INVALID, r"env|key|name")


def test_start_oversize_arg(stub):
    # one argument above Linux's per-string limit (128 KiB): never executable
    e = start_err(stub, cmd("/bin/echo", "x" * (200 * 1024)))
    assert_error(e, INVALID, r"arg", r"long|large|size|limit|big|max")


def test_start_oversize_args_total(stub):
    # 3 MiB of arguments in total: above ARG_MAX on a default stack limit
    e = start_err(stub, cmd("/bin/echo", *(["y" * 100000] * 30)))
    assert_error(e, INVALID, r"arg", r"long|large|size|limit|big|max|many")


def test_start_oversize_env(stub):
    e = start_err(stub, cmd("/bin/true", env={"BIG": "z" * (200 * 1024)}))
    assert_error(e, INVALID, r"env|BIG", r"long|large|size|limit|big|max")
    assert job_count(stub) == 0


def test_start_relative_workdir(stub):
    e = start_err(stub, cmd("/bin/true", workdir="relative/dir"))
    assert_error(e, INVALID, r"workdir|directory|dir", r"absolute|relative")


def test_start_missing_workdir(stub):
    e = start_err(stub, cmd("/bin/true", workdir="/nonexistent/wd/for/runrpc"))
    assert e.code() != grpc.StatusCode.OK
    assert "/nonexistent/wd/for/runrpc" in (e.details() or "")
    assert job_count(stub) == 0


@pytest.mark.parametrize("tag", ["", "has space", "x" * 65, "bad\0tag", "semi;colon"])
def test_start_bad_tag(stub, tag):
    e = start_err(stub, cmd("/bin/true"), tags=[tag])
    assert_error(e, INVALID, r"tag")
    assert job_count(stub) == 0


def test_start_command_not_found(stub):
    e = start_err(stub, cmd("/nonexistent/bin/runrpc-nope"))
    assert e.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT,
                        grpc.StatusCode.FAILED_PRECONDITION), e
    assert "/nonexistent/bin/runrpc-nope" in e.details()
    assert re.search(r"not found|no such file", e.details(), re.I), e.details()
    assert job_count(stub) == 0, "a failed Start created a job"


def test_start_command_not_in_path(stub):
    e = start_err(stub, cmd("runrpc-no-such-command-xyz"))
    assert e.code() != grpc.StatusCode.OK
    assert "runrpc-no-such-command-xyz" in e.details()
    assert re.search(r"not found|no such file", e.details(), re.I), e.details()
    assert job_count(stub) == 0


def test_start_not_executable(stub, tmp_path):
    f = tmp_path / "script.sh"
    f.write_text("#!/bin/sh\necho hi\n")
    os.chmod(f, 0o644)
    e = start_err(stub, cmd(str(f)))
    assert e.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT,
                        grpc.StatusCode.FAILED_PRECONDITION), e
    assert str(f) in e.details()
    assert re.search(r"permission|executable", e.details(), re.I), e.details()
    assert job_count(stub) == 0


def test_start_directory_as_command(stub, tmp_path):
    e = start_err(stub, cmd(str(tmp_path)))
    assert e.code() != grpc.StatusCode.OK
    assert str(tmp_path) in e.details()
    assert job_count(stub) == 0


def by_id_calls(stub, job_id):
    return {
        "Status": lambda: stub.Status(pb.StatusRequest(job_id=job_id), timeout=10),
        "Wait": lambda: stub.Wait(pb.WaitRequest(job_id=job_id), timeout=10),
        "Stop": lambda: stub.Stop(pb.StopRequest(job_id=job_id), timeout=10),
        "Signal": lambda: stub.Signal(pb.SignalRequest(job_id=job_id, number=15), timeout=10),
        "Logs": lambda: list(stub.Logs(pb.LogsRequest(job_id=job_id), timeout=10)),
    }


@pytest.mark.parametrize("method", ["Status", "Wait", "Stop", "Signal", "Logs"])
def test_unknown_job_id_is_not_found(stub, method):
    jid = unused_ulid()
    e = rpc_error(by_id_calls(stub, jid)[method])
    assert_error(e, grpc.StatusCode.NOT_FOUND, re.escape(jid))


@pytest.mark.parametrize("method", ["Status", "Wait", "Stop", "Signal", "Logs"])
@pytest.mark.parametrize("bad", ["", "not-a-ulid", "01ARZ3NDEKTSV4RRFFQ69G5FA",
                                 "01ARZ3NDEKTSV4RRFFQ69G5FAVX", "01ARZ3NDEKTSV4RRFFQ69G5FAU",
                                 "../../etc/passwd0000000000"])
def test_malformed_job_id_is_invalid(stub, method, bad):
    e = rpc_error(by_id_calls(stub, bad)[method])
    assert_error(e, INVALID, r"id")


@pytest.mark.parametrize("sig", [pb.SignalRequest(number=0), pb.SignalRequest(number=65),
                                 pb.SignalRequest(number=-3), pb.SignalRequest(name="NOPE"),
                                 pb.SignalRequest(name=""), pb.SignalRequest()],
                         ids=["zero", "65", "negative", "bad-name", "empty-name", "unset"])
def test_signal_invalid(stub, sig):
    r = start(stub, "sleep", "30")
    req = pb.SignalRequest()
    req.CopyFrom(sig)
    req.job_id = r.job_id
    e = rpc_error(stub.Signal, req, timeout=10)
    assert_error(e, INVALID, r"signal")
    st = stub.Status(pb.StatusRequest(job_id=r.job_id), timeout=10).status
    assert st.state == pb.JOB_STATE_RUNNING
    stub.Stop(pb.StopRequest(job_id=r.job_id, grace_ms=1000), timeout=20)


def test_logs_bad_stream_value(stub):
    r = start(stub, "/bin/true")
    wait(stub, r.job_id)
    e = rpc_error(lambda: list(stub.Logs(pb.LogsRequest(job_id=r.job_id, stream=7), timeout=10)))
    assert_error(e, INVALID, r"stream")


def test_list_bad_state_value(stub):
    e = rpc_error(stub.List, pb.ListRequest(state=42), timeout=10)
    assert_error(e, INVALID, r"state")


def test_exec_first_message_must_be_start(stub):
    e = rpc_error(lambda: list(stub.Exec(iter([pb.ExecRequest(stdin=b"x")]), timeout=10)))
    assert_error(e, INVALID, r"start|first")


def test_exec_second_start_rejected(stub):
    reqs = [pb.ExecRequest(start=pb.ExecStart(command=cmd("cat"))),
            pb.ExecRequest(start=pb.ExecStart(command=cmd("cat")))]
    e = rpc_error(lambda: list(stub.Exec(iter(reqs), timeout=10)))
    assert_error(e, INVALID, r"start")


def test_exec_empty_command(stub):
    e = rpc_error(lambda: list(stub.Exec(iter([pb.ExecRequest(start=pb.ExecStart())]), timeout=10)))
    assert_error(e, INVALID, r"command|path")


def test_exec_nul_in_arg(stub):
    req = pb.ExecRequest(start=pb.ExecStart(command=cmd("/bin/echo", "a\0b")))
    e = rpc_error(lambda: list(stub.Exec(iter([req]), timeout=10)))
    assert_error(e, INVALID, r"NUL|\\0|null")


def test_unknown_method_unimplemented(rund):
    ch = rund.channel()
    fn = ch.unary_unary("/runrpc.v1.Jobs/NoSuchMethod", request_serializer=lambda x: x,
                        response_deserializer=lambda x: x)
    e = rpc_error(fn, b"", timeout=10)
    assert e.code() == grpc.StatusCode.UNIMPLEMENTED


def test_malformed_protobuf_rejected(rund, stub):
    ch = rund.channel()
    fn = ch.unary_unary("/runrpc.v1.Jobs/Start", request_serializer=lambda x: x,
                        response_deserializer=lambda x: x)
    e = rpc_error(fn, b"\xff\xff\xff\xff\x0f\x01", timeout=10)
    assert e.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.INTERNAL), e
    assert job_count(stub) == 0


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def test_start_env_key_repeated_on_the_wire(rund, stub):
    """A map key sent twice (found by fuzz/fuzz_request: job.json kept one,
    Status showed both): the last value wins, the job gets it once, and
    Status shows what the job got."""
    from conftest import logs
    c = (pb.Command(path="/bin/sh", args=["-c", 'echo "$K"; env | grep -c "^K="']).SerializeToString()
         + pb.Command(env={"K": "first"}).SerializeToString()
         + pb.Command(env={"K": "second", "L": "x"}).SerializeToString())
    raw = b"\x0a" + _varint(len(c)) + c
    fn = rund.channel().unary_unary("/runrpc.v1.Jobs/Start", request_serializer=lambda x: x,
                                    response_deserializer=pb.StartResponse.FromString)
    job_id = fn(raw, timeout=10).job_id
    wait(stub, job_id)
    out, _, _ = logs(stub, job_id)
    assert out == b"second\n1\n"
    # Status (raw: a client's map parsing would hide a repeat) shows the
    # environment the job got, once, before and after a restart of rund
    for _ in range(2):
        status = rund.channel().unary_unary("/runrpc.v1.Jobs/Status",
                                            request_serializer=pb.StatusRequest.SerializeToString,
                                            response_deserializer=lambda x: x)
        got = status(pb.StatusRequest(job_id=job_id), timeout=10)
        assert b"first" not in got and got.count(b"second") == 1
        env = pb.StatusResponse.FromString(got).status.request.command.env
        assert dict(env) == {"K": "second", "L": "x"}
        rund.stop()
        rund.start()

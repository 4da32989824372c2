"""runrpc's modes from the real binary: exec, the listing, serving gRPC over
a pipe or a socket (socat bridge, grpcio client), bad input on stdin."""

import os
import subprocess

import grpc
import pytest

from conftest import SANITIZER_RE
from shim_helpers import (RUNRPC, Bridge, shell, cpb, rpb, health_pb, health_grpc, refl_pb,
                          refl_grpc, refl1_pb, refl1_grpc)

SERVICES = ["commander.Commander", "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection", "loader.Loader", "runner.Runner"]
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def run(args, **kw):
    p = subprocess.run([RUNRPC] + args, capture_output=True, timeout=30, **kw)
    assert not SANITIZER_RE.search(p.stderr.decode("utf-8", "replace")), p.stderr
    return p


def test_exec_replaces_itself():
    p = run(["sh", "-c", "echo $$ $0; exit 7"])
    assert p.returncode == 7
    assert p.stdout.split()[1] == b"sh"


def test_exec_keeps_pid():
    p = subprocess.Popen([RUNRPC, "sh", "-c", "echo $$"], stdout=subprocess.PIPE)
    out, _ = p.communicate(timeout=30)
    assert int(out) == p.pid


def test_exec_not_found_is_127():
    p = run(["no-such-command-here"])
    assert p.returncode == 127
    assert p.stderr == b"runrpc: no-such-command-here: command not found\n"


def test_exec_not_executable_is_126(tmp_path):
    f = tmp_path / "x"
    f.write_text("data")
    p = run([str(f)])
    assert p.returncode == 126
    assert p.stderr == ("runrpc: %s: Permission denied\n" % f).encode()
    p = run([str(tmp_path)])
    assert p.returncode == 126


def test_double_dash_runs_a_command():
    p = run(["--", "echo", "--x"])
    assert p.returncode == 0 and p.stdout == b"--x\n"


def test_unknown_option_is_2():
    p = run(["--bogus"])
    assert p.returncode == 2
    assert b'unknown option "--bogus"' in p.stderr


def test_list_when_stdin_empty_or_closed():
    p = run([], stdin=subprocess.DEVNULL)
    assert p.returncode == 0
    assert p.stdout.decode().splitlines() == SERVICES
    # closed stdin
    p = subprocess.run("%s <&-" % RUNRPC, shell=True, capture_output=True, timeout=30)
    assert p.returncode == 0
    assert p.stdout.decode().splitlines() == SERVICES
    # an empty pipe
    p = run([], input=b"")
    assert p.stdout.decode().splitlines() == SERVICES


def test_list_on_a_terminal():
    import pty
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(RUNRPC, [RUNRPC])
    out = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert out.decode().split() == SERVICES


def test_list_pipes_into_itself():
    p = subprocess.run("%s | %s grep reflection" % (RUNRPC, RUNRPC), shell=True,
                       capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode == 0
    assert p.stdout.decode().splitlines() == SERVICES[2:4]


@pytest.mark.parametrize("data", [b"hello\n", b"GET / HTTP/1.1\r\n\r\n", PREFACE[:10],
                                  b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", b"\x00" * 100])
def test_bad_stdin_is_refused(data):
    p = run([], input=data)
    assert p.returncode == 2
    assert b"stdin is not a gRPC stream" in p.stderr
    assert p.stdout == b""


def test_preface_then_garbage_ends_cleanly():
    p = run([], input=PREFACE + b"\x00\x00\x04\x09garbagegarbage")
    # the HTTP/2 layer refuses the frame (GOAWAY) and the server ends with stdin
    assert p.returncode == 0
    assert p.stdout.startswith(b"\x00")  # our SETTINGS (and GOAWAY) went out


def test_preface_in_a_regular_file_is_refused(tmp_path):
    f = tmp_path / "in"
    f.write_bytes(PREFACE)
    with open(f, "rb") as stdin:
        p = run([], stdin=stdin)
    assert p.returncode == 2
    assert b"regular file" in p.stderr


@pytest.mark.parametrize("pipes", [True, False], ids=["pipes", "socketpair"])
def test_serves_grpc_on_stdio(pipes):
    b = Bridge(pipes=pipes)
    try:
        info = b.runner.Info(rpb.InfoRequest(), timeout=30)
        assert info.pid == b.server_pid()
        assert info.depth == 0
        pid, out, err, ex = shell(b, argv=["sh", "-c", "echo out; echo err >&2; exit 3"])
        assert (out, err, ex.code, ex.signal) == (b"out\n", b"err\n", 3, 0)
        assert pid > 0
    finally:
        b.close()


def test_health_and_reflection_lists_services():
    b = Bridge()
    try:
        st = health_grpc.HealthStub(b.channel).Check(health_pb.HealthCheckRequest(), timeout=30)
        assert st.status == health_pb.HealthCheckResponse.SERVING
        stub = refl_grpc.ServerReflectionStub(b.channel)
        resp = next(stub.ServerReflectionInfo(
            iter([refl_pb.ServerReflectionRequest(list_services="")]), timeout=30))
        names = sorted(s.name for s in resp.list_services_response.service)
        assert names == SERVICES
    finally:
        b.close()


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_reflection_describes_the_services(version):
    from google.protobuf import descriptor_pb2
    pb, grpc_mod = (refl1_pb, refl1_grpc) if version == "v1" else (refl_pb, refl_grpc)
    b = Bridge()
    try:
        stub = grpc_mod.ServerReflectionStub(b.channel)
        for svc, fname, method in [("runner.Runner", "shim/runner.proto", "Fork"),
                                   ("commander.Commander", "shim/commander.proto", "Shell"),
                                   ("loader.Loader", "shim/loader.proto", "Link")]:
            resp = next(stub.ServerReflectionInfo(
                iter([pb.ServerReflectionRequest(file_containing_symbol=svc)]), timeout=30))
            fd = descriptor_pb2.FileDescriptorProto.FromString(
                resp.file_descriptor_response.file_descriptor_proto[0])
            assert fd.name == fname
            assert method in [m.name for s in fd.service for m in s.method]
        resp = next(stub.ServerReflectionInfo(
            iter([pb.ServerReflectionRequest(file_containing_symbol="runrpc.v1.Jobs")]),
            timeout=30))
        assert resp.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
    finally:
        b.close()


def test_server_exits_when_stdin_closes():
    p = subprocess.Popen([RUNRPC], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdin.write(PREFACE)
    p.stdin.flush()
    p.stdin.close()
    p.wait(timeout=30)
    err = p.stderr.read()
    assert p.returncode == 0, err
    assert not SANITIZER_RE.search(err.decode("utf-8", "replace")), err

"""Our gRPC client (librunrpc, runctl) against an independent gRPC server:
a python grpcio server implementing runrpc.v1.Jobs with scripted behaviour.

This server is only a test peer for the client side; the real rund is tested
elsewhere. Binaries: $RUNCTL (else build/src/runctl/runctl) and the small C
program tests/integration/client_probe.c on the public API ($RUNRPC_CLIENT_PROBE,
else runrpc-client-probe in the build dir next to runctl, else compiled here
against the installed library through pkg-config).
"""

import concurrent.futures
import glob
import importlib
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import grpc
import pytest

ROOT = os.environ.get("RUNRPC_SOURCE_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
RUNCTL = os.environ.get("RUNCTL") or os.path.join(ROOT, "build", "src", "runctl", "runctl")
ULID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
ULID2 = "01BX5ZZKBKACTAV9WEVGEMMVRZ"
MiB = 1024 * 1024
SPECIAL = "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001F608\t\n 100% done"

# --------------------------------------------------------------------------
# stubs from our .proto (reuse the ones conftest.py made, if it did)


def _stubs():
    try:
        return (importlib.import_module("runrpc.v1.jobs_pb2"),
                importlib.import_module("runrpc.v1.jobs_pb2_grpc"))
    except ImportError:
        pass
    from grpc_tools import protoc
    out = tempfile.mkdtemp(prefix="rr-client-stubs-")
    wkt = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    proto_dir = os.path.join(ROOT, "proto")
    rc = protoc.main(["grpc_tools.protoc", "-I" + proto_dir, "-I" + wkt,
                      "--python_out=" + out, "--grpc_python_out=" + out,
                      os.path.join(proto_dir, "runrpc", "v1", "jobs.proto")])
    assert rc == 0, "grpc_tools.protoc failed"
    sys.path.insert(0, out)
    return (importlib.import_module("runrpc.v1.jobs_pb2"),
            importlib.import_module("runrpc.v1.jobs_pb2_grpc"))


pb, pb_grpc = _stubs()

# --------------------------------------------------------------------------
# the scripted peer


class Peer(pb_grpc.JobsServicer):
    """Each method runs self.script[name](request_or_iterator, context, peer);
    every call is recorded in self.calls."""

    def __init__(self):
        self.script = {}
        self.calls = []
        self.events = []
        self.lock = threading.Lock()

    def _run(self, name, req, ctx):
        with self.lock:
            self.calls.append({"method": name, "request": req,
                               "metadata": dict(ctx.invocation_metadata()),
                               "time_remaining": ctx.time_remaining(),
                               "peer": ctx.peer()})
        fn = self.script.get(name)
        if fn is None:
            ctx.abort(grpc.StatusCode.UNIMPLEMENTED, "peer: no script for " + name)
        return fn(req, ctx, self)

    def last(self, name):
        return [c for c in self.calls if c["method"] == name][-1]


for _m in ("Start", "Stop", "Status", "Logs", "List", "Wait", "Signal", "Exec"):
    setattr(Peer, _m, (lambda m: lambda self, req, ctx: self._run(m, req, ctx))(_m))


@pytest.fixture
def peer():
    d = tempfile.mkdtemp(prefix="rr-cli-")
    path = os.path.join(d, "peer.sock")
    p = Peer()
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=16))
    pb_grpc.add_JobsServicer_to_server(p, server)
    server.add_insecure_port("unix:" + path)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    p.addr = "unix:" + path
    p.tcp_addr = "h2c:127.0.0.1:%d" % port
    yield p
    server.stop(0)
    shutil.rmtree(d, ignore_errors=True)


def runctl(peer_or_addr, *args, input=None, timeout=30, addr=None, **kw):
    a = addr or (peer_or_addr.addr if peer_or_addr is not None else None)
    argv = [RUNCTL] + (["--addr", a] if a else []) + list(args)
    r = subprocess.run(argv, input=input, capture_output=True, timeout=timeout, **kw)
    _no_sanitizer(r.stderr)
    return r


def _no_sanitizer(err):
    if isinstance(err, bytes):
        err = err.decode(errors="replace")
    assert not re.search(r"ERROR: (Address|Leak)Sanitizer|runtime error:", err), err


def status_msg(state=pb.JOB_STATE_EXITED, job_id=ULID, **kw):
    cmd = pb.Command(path="/bin/echo", args=["hello world", "it's"], env={"A": "1", "B": "x y"},
                     workdir="/tmp")
    fields = dict(job_id=job_id, state=state, pid=4242, exit_code=0, signal=0, reason="exited",
                  start_time_unix_ns=1714564800123456789, end_time_unix_ns=1714564801000000000,
                  request=pb.StartRequest(command=cmd, tags=["t1", "t2"], timeout_ms=1500),
                  stdout_bytes=12, stderr_bytes=3)
    fields.update(kw)
    return pb.JobStatus(**fields)


# --------------------------------------------------------------------------
# the probe (public C API)


def _find_probe():
    p = os.environ.get("RUNRPC_CLIENT_PROBE")
    if p:
        return p
    m = re.match(r"(.*)/src/runctl/runctl$", RUNCTL)
    if m and os.path.exists(m.group(1) + "/src/lib/runrpc-client-probe"):
        return m.group(1) + "/src/lib/runrpc-client-probe"
    # an installed library: build the probe against it, as a user would
    prefix = os.environ.get("PREFIX") or os.path.dirname(os.path.dirname(RUNCTL))
    pc = os.path.join(prefix, "lib", "pkgconfig")
    if not os.path.exists(os.path.join(pc, "runrpc.pc")):
        pytest.fail("no client probe: set RUNRPC_CLIENT_PROBE or install librunrpc")
    env = dict(os.environ, PKG_CONFIG_PATH=pc)
    flags = subprocess.run(["pkg-config", "--define-prefix", "--cflags", "--libs", "--static",
                            "runrpc"], env=env, capture_output=True, text=True, check=True)
    out = os.path.join(tempfile.mkdtemp(prefix="rr-probe-"), "probe")
    san = []
    so = glob.glob(os.path.join(prefix, "lib", "librunrpc.so*"))
    if so and b"__asan" in open(so[0], "rb").read():
        san = ["-fsanitize=address,undefined"]
    subprocess.run(["cc", "-o", out, os.path.join(ROOT, "tests/integration/client_probe.c")]
                   + flags.stdout.split() + san, check=True)
    return out


_PROBE = None


def probe(addr, *args, timeout=30):
    global _PROBE
    if _PROBE is None:
        _PROBE = _find_probe()
    r = subprocess.run([_PROBE, addr] + [str(a) for a in args], capture_output=True,
                       timeout=timeout)
    _no_sanitizer(r.stderr)
    return r


def probe_error(r):
    """(CODE_NAME, exact message bytes) of a failed probe run."""
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    head, _, msg = r.stdout.partition(b"\n")
    assert head.startswith(b"ERR "), r.stdout
    return head[4:].decode(), msg


# --------------------------------------------------------------------------
# unary calls


def test_start_sends_request_and_prints_id(peer):
    peer.script["Start"] = lambda req, ctx, p: pb.StartResponse(job_id=ULID, pid=7)
    r = runctl(peer, "start", "--tag", "a", "--tag", "b:c", "--env", "K=V=W", "--env", "E=",
               "--workdir", "/srv", "--timeout", "1.5", "--", "/bin/prog", "-x", "--y", "")
    assert r.returncode == 0, r.stderr
    assert r.stdout == (ULID + "\n").encode()
    assert r.stderr == b""
    c = peer.last("Start")
    req = c["request"]
    assert req.command.path == "/bin/prog"
    assert list(req.command.args) == ["-x", "--y", ""]
    assert dict(req.command.env) == {"K": "V=W", "E": ""}
    assert req.command.workdir == "/srv"
    assert list(req.tags) == ["a", "b:c"]
    assert req.HasField("timeout_ms") and req.timeout_ms == 1500
    assert c["metadata"]["user-agent"].startswith("runrpc-c/")
    # unary calls carry a deadline (grpc-timeout), 30 s by default
    assert 20 < c["time_remaining"] <= 31


def test_start_without_timeout_leaves_field_unset(peer):
    peer.script["Start"] = lambda req, ctx, p: pb.StartResponse(job_id=ULID, pid=7)
    r = runctl(peer, "start", "true")
    assert r.returncode == 0, r.stderr
    req = peer.last("Start")["request"]
    assert not req.HasField("timeout_ms") and list(req.tags) == [] and req.command.path == "true"


def test_status_json_and_human(peer):
    peer.script["Status"] = lambda req, ctx, p: pb.StatusResponse(status=status_msg())
    r = runctl(peer, "status", ULID.lower(), "--json")
    assert r.returncode == 0, r.stderr
    assert peer.last("Status")["request"].job_id == ULID  # upper-cased client side
    o = json.loads(r.stdout)
    assert o == {
        "job_id": ULID, "state": "exited", "pid": 4242, "exit_code": 0, "signal": None,
        "reason": "exited", "start_time": "2024-05-01T12:00:00.123456Z",
        "end_time": "2024-05-01T12:00:01.000000Z",
        "command": ["/bin/echo", "hello world", "it's"], "env": {"A": "1", "B": "x y"},
        "workdir": "/tmp", "tags": ["t1", "t2"], "timeout_ms": 1500, "timeout_grace_ms": 10000,
        "stdout_bytes": 12, "stderr_bytes": 3, "stdout_lost_bytes": 0, "stderr_lost_bytes": 0,
        "log_error": None, "owner": [], "kind": "job", "limits": None, "usage": None,
        "cgroup": None}
    r = runctl(peer, "status", ULID)
    assert r.returncode == 0, r.stderr
    lines = dict(l.split(": ", 1) if ": " in l else (l.rstrip(":"), "")
                 for l in r.stdout.decode().splitlines())
    assert lines["job_id"] == ULID and lines["state"] == "exited" and lines["pid"] == "4242"
    assert lines["command"] == "/bin/echo 'hello world' 'it'\\''s'"
    assert lines["end_time"] == "2024-05-01T12:00:01.000000Z"


def test_status_running_has_null_end_time(peer):
    st = status_msg(state=pb.JOB_STATE_RUNNING, end_time_unix_ns=0, reason="",
                    request=pb.StartRequest(command=pb.Command(path="sleep", args=["9"])))
    peer.script["Status"] = lambda req, ctx, p: pb.StatusResponse(status=st)
    o = json.loads(runctl(peer, "status", ULID, "--json").stdout)
    assert o["state"] == "running" and o["end_time"] is None and o["timeout_ms"] is None
    assert o["command"] == ["sleep", "9"] and o["env"] == {} and o["tags"] == []


CODES = [c for c in grpc.StatusCode if c != grpc.StatusCode.OK]


@pytest.mark.parametrize("code", CODES, ids=[c.name for c in CODES])
def test_error_codes_reach_the_cli(peer, code):
    def fail(req, ctx, p):
        ctx.abort(code, "scripted %s for %s" % (code.name, req.job_id))
    peer.script["Status"] = fail
    r = runctl(peer, "status", ULID)
    assert r.returncode == 1
    assert r.stdout == b""
    assert r.stderr.decode() == "runctl: status %s: %s: scripted %s for %s\n" % (
        ULID, code.name, code.name, ULID)


def test_error_message_decoded_exactly(peer):
    """grpcio percent-encodes grpc-message; we must give back the exact UTF-8."""
    def fail(req, ctx, p):
        ctx.abort(grpc.StatusCode.FAILED_PRECONDITION, SPECIAL)
    peer.script["Status"] = fail
    code, msg = probe_error(probe(peer.addr, "status", ULID, 5000))
    assert code == "FAILED_PRECONDITION"
    assert msg == SPECIAL.encode()
    # the CLI keeps it on one line
    r = runctl(peer, "status", ULID)
    assert r.returncode == 1
    assert r.stderr.decode().count("\n") == 1
    assert "\u263a and non-BMP \U0001F608" in r.stderr.decode()


def test_unimplemented_method(peer):
    # no script for List: the peer answers UNIMPLEMENTED (Trailers-Only)
    r = runctl(peer, "list")
    assert r.returncode == 1
    assert r.stderr.decode() == "runctl: list: UNIMPLEMENTED: peer: no script for List\n"


def test_unknown_service_on_server():
    """A grpcio server without our service: 'Method not found!' in Trailers-Only."""
    d = tempfile.mkdtemp(prefix="rr-cli-")
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=2))
    server.add_insecure_port("unix:" + d + "/s.sock")
    server.start()
    try:
        r = runctl(None, "status", ULID, addr="unix:" + d + "/s.sock")
        assert r.returncode == 1
        assert r.stderr.decode().startswith("runctl: status %s: UNIMPLEMENTED: " % ULID)
    finally:
        server.stop(0)
        shutil.rmtree(d, ignore_errors=True)


def test_list_table_json_and_filters(peer):
    jobs = [status_msg(),
            status_msg(job_id=ULID2, state=pb.JOB_STATE_KILLED, signal=9, exit_code=0,
                       reason="signaled")]
    peer.script["List"] = lambda req, ctx, p: pb.ListResponse(jobs=jobs)
    r = runctl(peer, "list", "--state", "killed", "--tag", "t1", "--json")
    assert r.returncode == 0, r.stderr
    req = peer.last("List")["request"]
    assert req.state == pb.JOB_STATE_KILLED and req.tag == "t1"
    arr = json.loads(r.stdout)
    assert [o["job_id"] for o in arr] == [ULID, ULID2]
    assert arr[1]["state"] == "killed" and arr[1]["signal"] == 9
    r = runctl(peer, "list")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    assert lines[0].split() == ["ID", "KIND", "STATE", "PID", "EXIT", "STARTED", "COMMAND"]
    assert lines[1].split()[:6] == [ULID, "job", "exited", "4242", "0", "2024-05-01T12:00:00Z"]
    assert lines[2].split()[:5] == [ULID2, "job", "killed", "4242", "SIGKILL"]
    assert peer.last("List")["request"].state == pb.JOB_STATE_UNSPECIFIED
    peer.script["List"] = lambda req, ctx, p: pb.ListResponse()
    assert json.loads(runctl(peer, "list", "--json").stdout) == []


def test_signal_by_name_and_number(peer):
    peer.script["Signal"] = lambda req, ctx, p: pb.SignalResponse()
    for arg, num in (("9", 9), ("KILL", 9), ("SIGKILL", 9), ("kill", 9), ("term", 15),
                     ("SIGUSR1", 10), ("RTMIN+1", signal.SIGRTMIN + 1)):
        r = runctl(peer, "signal", ULID, arg)
        assert r.returncode == 0, r.stderr
        req = peer.last("Signal")["request"]
        assert req.job_id == ULID and req.WhichOneof("sig") == "number" and req.number == num


def test_stop_sends_grace_and_prints_final_status(peer):
    st = status_msg(state=pb.JOB_STATE_KILLED, signal=15, reason="stopped")
    peer.script["Stop"] = lambda req, ctx, p: pb.StopResponse(status=st)
    r = runctl(peer, "stop", ULID, "--grace", "2500ms")
    assert r.returncode == 0, r.stderr
    c = peer.last("Stop")
    assert c["request"].HasField("grace_ms") and c["request"].grace_ms == 2500
    assert c["time_remaining"] > 2.5  # the deadline leaves room for the grace period
    assert r.stdout.decode() == "%s killed signal=15 SIGTERM reason=stopped\n" % ULID
    runctl(peer, "stop", ULID)
    assert not peer.last("Stop")["request"].HasField("grace_ms")


@pytest.mark.parametrize("state,code,sig,want", [
    (pb.JOB_STATE_EXITED, 0, 0, 0), (pb.JOB_STATE_EXITED, 7, 0, 7),
    (pb.JOB_STATE_KILLED, 0, 15, 143), (pb.JOB_STATE_FAILED, 0, 0, 125)])
def test_wait_exit_status(peer, state, code, sig, want):
    def wait(req, ctx, p):
        time.sleep(0.3)
        return pb.WaitResponse(status=status_msg(state=state, exit_code=code, signal=sig))
    peer.script["Wait"] = wait
    r = runctl(peer, "wait", ULID)
    assert r.returncode == want, r.stderr
    # Wait has no deadline of its own: a job may run for days
    assert peer.last("Wait")["time_remaining"] is None or \
        peer.last("Wait")["time_remaining"] > 3600


def test_wait_failure_exits_125(peer):
    def wait(req, ctx, p):
        ctx.abort(grpc.StatusCode.NOT_FOUND, "job %s not found" % req.job_id)
    peer.script["Wait"] = wait
    r = runctl(peer, "wait", ULID)
    assert r.returncode == 125
    assert r.stderr.decode() == "runctl: wait %s: NOT_FOUND: job %s not found\n" % (ULID, ULID)


# --------------------------------------------------------------------------
# deadlines and broken servers


def test_deadline_exceeded(peer):
    def slow(req, ctx, p):
        time.sleep(5)
        return pb.WaitResponse(status=status_msg())
    peer.script["Wait"] = slow
    t0 = time.monotonic()
    code, msg = probe_error(probe(peer.addr, "wait", ULID, 300))
    took = time.monotonic() - t0
    assert code == "DEADLINE_EXCEEDED", msg
    assert took < 3, took
    tr = peer.last("Wait")["time_remaining"]
    assert tr is not None and tr <= 0.3


def _silent_server(accept_and_close=False):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    conns = []

    def loop():
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            if accept_and_close:
                c.close()
            else:
                conns.append(c)  # never answers, never closes
    threading.Thread(target=loop, daemon=True).start()
    return s, conns


def test_server_that_never_answers_times_out():
    s, conns = _silent_server()
    try:
        t0 = time.monotonic()
        code, msg = probe_error(probe("h2c:127.0.0.1:%d" % s.getsockname()[1], "status", ULID, 500))
        assert code == "DEADLINE_EXCEEDED", msg
        assert time.monotonic() - t0 < 3
        assert b"/runrpc.v1.Jobs/Status" in msg and b"500 ms" in msg
    finally:
        s.close()
        for c in conns:
            c.close()


def test_server_that_closes_at_once_is_unavailable():
    s, _ = _silent_server(accept_and_close=True)
    try:
        addr = "h2c:127.0.0.1:%d" % s.getsockname()[1]
        r = runctl(None, "status", ULID, addr=addr)
        assert r.returncode == 1
        line = r.stderr.decode()
        assert line.startswith("runctl: ") and ": UNAVAILABLE: " in line and addr in line, line
    finally:
        s.close()


def test_connection_refused_is_clear():
    d = tempfile.mkdtemp(prefix="rr-cli-")
    try:
        r = runctl(None, "status", ULID, addr="unix:" + d + "/none.sock")
        assert r.returncode == 1
        assert r.stderr.decode() == ("runctl: connect: UNAVAILABLE: cannot connect to unix:%s/"
                                     "none.sock: No such file or directory\n" % d)
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        r = runctl(None, "exec", "true", addr="h2c:127.0.0.1:%d" % port)
        assert r.returncode == 125
        assert r.stderr.decode() == ("runctl: connect: UNAVAILABLE: cannot connect to "
                                     "h2c:127.0.0.1:%d: Connection refused\n" % port)
        # RUNRPC_ADDR is honoured
        r = runctl(None, "list", env=dict(os.environ, RUNRPC_ADDR="unix:" + d + "/x.sock"))
        assert r.returncode == 1 and ("unix:" + d + "/x.sock").encode() in r.stderr
    finally:
        shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------
# sizes, connection reuse


def test_large_messages_and_receive_limit(peer):
    big = "r" * (3 * MiB)
    peer.script["Status"] = lambda req, ctx, p: pb.StatusResponse(status=status_msg(reason=big))
    r = probe(peer.addr, "status", ULID, 10000)
    assert r.returncode == 0, r.stdout
    assert r.stdout == ("OK %s exited reason_len=%d\n" % (ULID, len(big))).encode()
    # over the 4 MiB default: RESOURCE_EXHAUSTED, locally
    huge = "h" * (5 * MiB)
    peer.script["Status"] = lambda req, ctx, p: pb.StatusResponse(status=status_msg(reason=huge))
    code, msg = probe_error(probe(peer.addr, "status", ULID, 10000))
    assert code == "RESOURCE_EXHAUSTED" and b"larger than max" in msg
    # a smaller configured limit
    peer.script["Status"] = lambda req, ctx, p: pb.StatusResponse(status=status_msg(reason=big))
    code, _ = probe_error(probe(peer.addr, "status", ULID, 10000, 1 * MiB))
    assert code == "RESOURCE_EXHAUSTED"
    # a large request (1.5 MiB of arguments: above our 1 MiB stream window and
    # many frames; exec's stdin test sends more) arrives intact
    peer.script["Start"] = lambda req, ctx, p: pb.StartResponse(job_id=ULID, pid=1)
    args = [chr(ord("a") + i) * (100 * 1024) for i in range(15)]
    r = runctl(peer, "start", "--", "/bin/echo", *args)
    assert r.returncode == 0, r.stderr[:300]
    assert list(peer.last("Start")["request"].command.args) == args


def test_many_sequential_calls_share_one_connection(peer):
    peer.script["Status"] = lambda req, ctx, p: pb.StatusResponse(status=status_msg())
    r = probe(peer.tcp_addr, "repeat", ULID, 300)
    assert r.returncode == 0, r.stdout
    assert r.stdout == b"OK 300\n"
    peers = {c["peer"] for c in peer.calls if c["method"] == "Status"}
    assert len(peers) == 1, peers  # one TCP connection (same client port) for all calls


# --------------------------------------------------------------------------
# server streaming


def test_logs_streams_exact_bytes(peer):
    out_chunks = [bytes(range(256)) * 4, b"", b"\x00\xff" * 70000, b"tail"]
    err_chunks = [b"err\n", b"\x1b[31mred\x1b[0m"]

    def logs(req, ctx, p):
        off = {1: 0, 2: 0}
        for i in range(max(len(out_chunks), len(err_chunks))):
            for s, chunks in ((1, out_chunks), (2, err_chunks)):
                if i < len(chunks) and req.stream in (0, s):
                    yield pb.LogsResponse(stream=s, offset=off[s], data=chunks[i])
                    off[s] += len(chunks[i])
    peer.script["Logs"] = logs
    r = runctl(peer, "logs", ULID)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"".join(out_chunks)
    assert r.stderr == b"".join(err_chunks)
    req = peer.last("Logs")["request"]
    assert req.job_id == ULID and not req.follow and req.stream == 0
    r = runctl(peer, "logs", "-f", "--stderr", ULID)
    assert r.returncode == 0 and r.stdout == b"" and r.stderr == b"".join(err_chunks)
    req = peer.last("Logs")["request"]
    assert req.follow and req.stream == pb.STREAM_STDERR
    r = runctl(peer, "logs", ULID, "--follow", "--stdout")
    assert r.stdout == b"".join(out_chunks) and r.stderr == b""
    assert peer.last("Logs")["request"].stream == pb.STREAM_STDOUT
    # a follow stream has no deadline
    assert peer.last("Logs")["time_remaining"] is None or \
        peer.last("Logs")["time_remaining"] > 3600


def test_logs_error_after_data(peer):
    def logs(req, ctx, p):
        yield pb.LogsResponse(stream=1, offset=0, data=b"partial\n")
        ctx.abort(grpc.StatusCode.DATA_LOSS, "log file truncated")
    peer.script["Logs"] = logs
    r = runctl(peer, "logs", ULID)
    assert r.returncode == 1
    assert r.stdout == b"partial\n"
    assert r.stderr.decode() == "runctl: logs %s: DATA_LOSS: log file truncated\n" % ULID


def test_logs_reports_dropped_bytes(peer):
    def logs(req, ctx, p):
        yield pb.LogsResponse(stream=1, offset=1000, data=b"kept", dropped=1000)
    peer.script["Logs"] = logs
    r = runctl(peer, "logs", "--stdout", ULID)
    assert r.returncode == 0
    assert r.stdout == b"kept"
    assert b"1000 bytes of stdout were dropped" in r.stderr


def test_logs_follow_is_live(peer):
    """Chunks arrive as the server sends them, not at the end."""
    gate = threading.Event()

    def logs(req, ctx, p):
        yield pb.LogsResponse(stream=1, offset=0, data=b"first\n")
        gate.wait(20)
        yield pb.LogsResponse(stream=1, offset=6, data=b"second\n")
    peer.script["Logs"] = logs
    proc = subprocess.Popen([RUNCTL, "--addr", peer.addr, "logs", "-f", ULID],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"first\n"
        gate.set()
        assert proc.stdout.readline() == b"second\n"
        assert proc.wait(10) == 0
    finally:
        gate.set()
        if proc.poll() is None:
            proc.kill()
        proc.wait()


# --------------------------------------------------------------------------
# bidi Exec


def exec_echo(transform=bytes.upper, code=3, sig=0):
    """Exec script: started_pid, then one stdout message per stdin chunk
    (transformed), records close_stdin and the client's half-close."""
    def run(it, ctx, p):
        first = next(it)
        assert first.WhichOneof("msg") == "start"
        p.events.append(("start", first.start))
        yield pb.ExecResponse(started_pid=99)
        for m in it:
            kind = m.WhichOneof("msg")
            if kind == "stdin":
                yield pb.ExecResponse(stdout=transform(m.stdin))
            elif kind == "close_stdin":
                p.events.append(("close_stdin", None))
                break  # runctl keeps its side open after close_stdin (signals)
        else:
            p.events.append(("half_close", None))
        yield pb.ExecResponse(stderr=b"done\n")
        yield pb.ExecResponse(exit=pb.ExitStatus(exit_code=code, signal=sig,
                                                 reason="signaled" if sig else "exited"))
    return run


def test_exec_stdin_passthrough_and_close_stdin(peer):
    peer.script["Exec"] = exec_echo()
    data = os.urandom(3 * MiB + 17)
    r = runctl(peer, "exec", "--env", "A=b", "--workdir", "/w", "--timeout", "2m", "--",
               "cat", "-n", input=data, timeout=60)
    assert r.returncode == 3, r.stderr
    assert r.stdout == data.upper()
    assert r.stderr == b"done\n"
    kinds = [e[0] for e in peer.events]
    assert kinds == ["start", "close_stdin"], kinds
    start = peer.events[0][1]
    assert start.command.path == "cat" and list(start.command.args) == ["-n"]
    assert dict(start.command.env) == {"A": "b"} and start.command.workdir == "/w"
    assert start.HasField("timeout_ms") and start.timeout_ms == 120000
    # exec has no RPC deadline: a command may run for as long as it likes
    tr = peer.last("Exec")["time_remaining"]
    assert tr is None or tr > 3600


def test_exec_empty_stdin(peer):
    peer.script["Exec"] = exec_echo(code=0)
    r = runctl(peer, "exec", "true", stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"" and r.stderr == b"done\n"
    assert [e[0] for e in peer.events] == ["start", "close_stdin"]


def test_exec_is_interactive(peer):
    """Each stdin line is answered before the next is written: nothing waits for EOF."""
    peer.script["Exec"] = exec_echo(code=0)
    proc = subprocess.Popen([RUNCTL, "--addr", peer.addr, "exec", "cat"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for i in range(20):
            line = b"line %d\n" % i
            proc.stdin.write(line)
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], 10)
            assert ready, "no answer to line %d" % i
            assert os.read(proc.stdout.fileno(), 100) == line.upper()
        assert "half_close" not in [e[0] for e in peer.events]
        proc.stdin.close()
        assert proc.wait(10) == 0
        assert proc.stderr.read() == b"done\n"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_exec_ends_while_stdin_is_endless(peer):
    """A command that exits without reading stdin: runctl must not keep pumping."""
    def run(it, ctx, p):
        next(it)
        yield pb.ExecResponse(started_pid=5)
        yield pb.ExecResponse(stdout=b"bye\n")
        yield pb.ExecResponse(exit=pb.ExitStatus(exit_code=4, reason="exited"))
    peer.script["Exec"] = run
    with open("/dev/zero", "rb") as zero:
        r = runctl(peer, "exec", "true", stdin=zero, timeout=20)
    assert r.returncode == 4, r.stderr
    assert r.stdout == b"bye\n" and r.stderr == b""


def test_exec_killed_by_signal(peer):
    peer.script["Exec"] = exec_echo(code=0, sig=9)
    r = runctl(peer, "exec", "sleep", "100", stdin=subprocess.DEVNULL)
    assert r.returncode == 137


@pytest.mark.parametrize("code,rc", [(grpc.StatusCode.NOT_FOUND, 127),
                                     (grpc.StatusCode.PERMISSION_DENIED, 126),
                                     (grpc.StatusCode.INVALID_ARGUMENT, 125),
                                     (grpc.StatusCode.INTERNAL, 125)])
def test_exec_failures(peer, code, rc):
    def run(it, ctx, p):
        next(it)
        ctx.abort(code, 'command "nope" scripted failure')
    peer.script["Exec"] = run
    r = runctl(peer, "exec", "nope", stdin=subprocess.DEVNULL)
    assert r.returncode == rc
    assert r.stderr.decode() == 'runctl: exec: %s: command "nope" scripted failure\n' % code.name


def test_exec_stream_without_exit_status_is_an_error(peer):
    def run(it, ctx, p):
        next(it)
        yield pb.ExecResponse(started_pid=1)
    peer.script["Exec"] = run
    r = runctl(peer, "exec", "x", stdin=subprocess.DEVNULL)
    assert r.returncode == 125
    assert b"INTERNAL" in r.stderr and b"without an exit status" in r.stderr


def _exec_flood(p, ctx, chunk=64 * 1024, total=256 * MiB):
    sent = 0
    p.sent = 0
    while sent < total and ctx.is_active():
        yield pb.ExecResponse(stdout=b"x" * chunk)
        sent += chunk
        p.sent = sent
    p.events.append(("flood_end", sent))


def test_exec_slow_reader_back_pressures_server(peer):
    """runctl's stdout is a pipe nobody reads: the server must be held back by
    flow control, not buffered into runctl's memory."""
    def run(it, ctx, p):
        next(it)
        yield from _exec_flood(p, ctx)
        yield pb.ExecResponse(exit=pb.ExitStatus(exit_code=0, reason="exited"))
    peer.script["Exec"] = run
    rfd, wfd = os.pipe()
    proc = subprocess.Popen([RUNCTL, "--addr", peer.addr, "exec", "flood"],
                            stdin=subprocess.DEVNULL, stdout=wfd, stderr=subprocess.PIPE)
    os.close(wfd)
    try:
        time.sleep(2)
        stalled = peer.sent
        time.sleep(1)
        assert peer.sent == stalled, "server kept sending to a stalled client"
        assert stalled < 48 * MiB, stalled  # windows + one pipe, far below 256 MiB
        # draining resumes the stream up to the end
        got = 0
        while True:
            b = os.read(rfd, 1 << 20)
            if not b:
                break
            got += len(b)
        assert proc.wait(30) == 0
        assert got == 256 * MiB
    finally:
        os.close(rfd)
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_exec_stdout_closed_pipe_exits_quietly_and_cancels(peer):
    cancelled = threading.Event()

    def run(it, ctx, p):
        next(it)
        ctx.add_callback(cancelled.set)
        yield from _exec_flood(p, ctx)
        yield pb.ExecResponse(exit=pb.ExitStatus(exit_code=0, reason="exited"))
    peer.script["Exec"] = run
    sh = subprocess.run(["/bin/sh", "-c", '"$0" --addr "$1" exec flood | head -c 10; '
                         'echo " status=${PIPESTATUS:-x}"', RUNCTL, peer.addr],
                        capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    assert sh.stdout.startswith(b"xxxxxxxxxx"), sh.stdout[:100]
    assert sh.stderr == b"", sh.stderr  # no "Broken pipe" noise
    assert cancelled.wait(10), "the server never saw the call end"
    assert peer.sent < 256 * MiB


def test_exec_sigpipe_status():
    """runctl dies of SIGPIPE, like any command writing to a closed pipe."""
    d = tempfile.mkdtemp(prefix="rr-cli-")
    p = Peer()
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_JobsServicer_to_server(p, server)
    server.add_insecure_port("unix:" + d + "/p.sock")
    server.start()

    def run(it, ctx, peer_):
        next(it)
        yield from _exec_flood(peer_, ctx)
        yield pb.ExecResponse(exit=pb.ExitStatus(exit_code=0, reason="exited"))
    p.script["Exec"] = run
    try:
        rfd, wfd = os.pipe()
        os.close(rfd)
        r = subprocess.run([RUNCTL, "--addr", "unix:" + d + "/p.sock", "exec", "flood"],
                           stdout=wfd, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                           timeout=30)
        os.close(wfd)
        assert r.returncode == -signal.SIGPIPE, r.returncode
        assert r.stderr == b""
    finally:
        server.stop(0)
        shutil.rmtree(d, ignore_errors=True)


def test_exec_over_tcp(peer):
    peer.script["Exec"] = exec_echo(transform=lambda b: b[::-1], code=0)
    r = runctl(peer, "exec", "rev", input=b"abc", addr=peer.tcp_addr)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"cba"


# --------------------------------------------------------------------------
# usage errors never reach the server


@pytest.mark.parametrize("args,needle", [
    (["status"], "missing job ID"),
    (["status", "not-a-ulid"], "invalid job ID"),
    (["status", "01ARZ3NDEKTSV4RRFFQ69G5FAI"], "invalid job ID"),  # I is not Crockford
    (["status", "81ARZ3NDEKTSV4RRFFQ69G5FAV"], "invalid job ID"),  # > 128 bits
    (["status", ULID, "--bogus"], "unknown option '--bogus'"),
    (["logs", ULID, "--stdout", "--stderr"], "exclude each other"),
    (["exec"], "missing command"),
    (["exec", "--timeout", "10x", "true"], "invalid duration"),
    (["exec", "--timeout", "-1", "true"], "invalid duration"),
    (["start", "--env", "NOEQUALS", "true"], "KEY=VALUE"),
    (["start", "--env", "=v", "true"], "KEY=VALUE"),
    (["stop", ULID, "--grace", "soon"], "invalid duration"),
    (["signal", ULID], "missing signal"),
    (["signal", ULID, "SIGFOO"], "invalid signal"),
    (["signal", ULID, "65"], "invalid signal"),
    (["list", "--state", "sleeping"], "invalid --state"),
    (["wait"], "missing job ID"),
    (["frobnicate"], "unknown command"),
    (["--nope", "list"], "unknown option"),
])
def test_usage_errors(peer, args, needle):
    r = runctl(peer, *args)
    assert r.returncode == 2, (r.returncode, r.stderr)
    err = r.stderr.decode()
    assert err.count("\n") == 1 and needle in err and err.startswith("runctl: "), err
    assert peer.calls == []


def test_help():
    for args in (["--help"], ["help"], ["help", "exec"], ["exec", "--help"], ["logs", "--help"]):
        r = runctl(None, *args)
        assert r.returncode == 0 and r.stdout.startswith(b"Usage: runctl"), args
    assert runctl(None, "--version").stdout.startswith(b"runctl ")


# --------------------------------------------------------------------------
# TLS against grpcio's TLS server (mTLS, independent implementation)


@pytest.fixture
def tls_peer():
    import tls_testcerts
    d = tempfile.mkdtemp(prefix="rr-cli-tls-")
    pki = tls_testcerts.standard(d)
    p = Peer()
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=8))
    pb_grpc.add_JobsServicer_to_server(p, server)
    creds = grpc.ssl_server_credentials([(pki.read("server", "key"), pki.read("server", "pem"))],
                                        root_certificates=pki.read("ca", "pem"),
                                        require_client_auth=True)
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    p.addr = "127.0.0.1:%d" % port
    p.pki = pki
    p.script["Status"] = lambda req, ctx, peer: pb.StatusResponse(status=status_msg())
    yield p
    server.stop(0)
    shutil.rmtree(d, ignore_errors=True)


def _tls_flags(pki):
    return ["--ca", pki.path("ca", "pem"), "--tls-cert", pki.path("client", "pem"),
            "--tls-key", pki.path("client", "key")]


def test_tls_mtls_and_token_reach_grpcio_server(tls_peer):
    r = runctl(None, *_tls_flags(tls_peer.pki), "--token", "rr_tok-1", "status", ULID,
               addr=tls_peer.addr)
    assert r.returncode == 0, r.stderr
    md = tls_peer.last("Status")["metadata"]
    assert md["authorization"] == "Bearer rr_tok-1"
    # no token: no authorization header
    r = runctl(None, *_tls_flags(tls_peer.pki), "status", ULID, addr=tls_peer.addr)
    assert r.returncode == 0, r.stderr
    assert "authorization" not in tls_peer.last("Status")["metadata"]
    # localhost is in the server certificate too
    port = tls_peer.addr.rsplit(":", 1)[1]
    r = runctl(None, *_tls_flags(tls_peer.pki), "status", ULID, addr="localhost:" + port)
    assert r.returncode == 0, r.stderr


def test_tls_library_takes_no_files_of_its_own(tls_peer):
    # librunrpc never picks up STATE/tls/{ca.pem,client.pem,client.key} (the
    # admin certificate) by itself: only runctl has default files (issue 9)
    state = tempfile.mkdtemp(prefix="rr-state-")
    try:
        os.mkdir(os.path.join(state, "tls"), 0o700)
        for f in ("ca.pem", "client.pem", "client.key"):
            shutil.copy(os.path.join(tls_peer.pki.d, f), os.path.join(state, "tls", f))
        env = dict(os.environ, RUNRPC_STATE_DIR=state)
        r = subprocess.run([_find_probe(), tls_peer.addr, "repeat", ULID, "5"],
                           capture_output=True, timeout=30, env=env)
        assert r.returncode == 1, r.stdout
        assert r.stdout == (b"ERR INVALID_ARGUMENT\n%s is a TLS address: give the CA that "
                            b"signed the server certificate (tls_ca_file)"
                            % tls_peer.addr.encode()), r.stdout
        assert tls_peer.calls == []
        # runctl does use them, and says so with -v
        r = runctl(None, "-v", "status", ULID, addr=tls_peer.addr, env=env)
        assert r.returncode == 0, r.stderr
        err = r.stderr.decode()
        for what, f in (("CA file", "ca.pem"), ("client certificate", "client.pem"),
                        ("client key", "client.key")):
            assert "runctl: %s: %s (default" % (what, os.path.join(state, "tls", f)) in err, err
        assert len({c["peer"] for c in tls_peer.calls}) == 1
    finally:
        shutil.rmtree(state, ignore_errors=True)


def test_tls_without_client_certificate_is_refused_by_grpcio(tls_peer):
    r = runctl(None, "--ca", tls_peer.pki.path("ca", "pem"), "status", ULID, addr=tls_peer.addr,
               env=dict(os.environ, RUNRPC_STATE_DIR="/nonexistent"))
    assert r.returncode == 1
    line = r.stderr.decode()
    assert line.startswith("runctl: ") and "UNAVAILABLE" in line and tls_peer.addr in line, line
    assert tls_peer.calls == []

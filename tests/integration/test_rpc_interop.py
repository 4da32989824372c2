"""Interop and robustness tests of our gRPC server (rpc-testserver serving
test.v1.Echo) against Debian's grpcio, nghttp and raw sockets.

RPC_TESTSERVER names the binary; otherwise the usual build dirs are tried.
"""
import os
import queue
import re
import resource
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

import grpc
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ECHO_PROTO = os.path.join(ROOT, "proto", "test", "v1", "echo.proto")
SPECIAL = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def find_testserver():
    env = os.environ.get("RPC_TESTSERVER")
    if env:
        return env
    for d in ("build", "build-asan"):
        p = os.path.join(ROOT, d, "src", "rpc", "rpc-testserver")
        if os.access(p, os.X_OK):
            return p
    pytest.skip("rpc-testserver not built (set RPC_TESTSERVER)")


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    """Stubs for echo.proto generated with grpc_tools at test time."""
    d = tmp_path_factory.mktemp("stubs")
    shutil.copy(ECHO_PROTO, d / "echo.proto")  # top level: 'test' clashes with the stdlib
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", str(d),
                    "--python_out", str(d), "--grpc_python_out", str(d), str(d / "echo.proto")],
                   check=True)
    sys.path.insert(0, str(d))
    import echo_pb2
    import echo_pb2_grpc
    yield echo_pb2, echo_pb2_grpc
    sys.path.remove(str(d))


class Server:
    def __init__(self, *extra):
        self.dir = tempfile.mkdtemp(prefix="rpcsrv")
        self.sock = os.path.join(self.dir, "sub", "echo.sock")
        self.errpath = os.path.join(self.dir, "stderr")
        with open(self.errpath, "w") as err:
            self.proc = subprocess.Popen(
                [find_testserver(), "--listen", "unix:" + self.sock, "--listen", "127.0.0.1:0",
                 *extra], stdout=subprocess.PIPE, stderr=err, text=True)
        self.tcp = None
        deadline = time.time() + 20
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("rpc-testserver exited before ready")
            m = re.match(r"listening (127\.0\.0\.1:\d+)", line)
            if m:
                self.tcp = m.group(1)
            if line.strip() == "ready":
                break
        self.addr = "unix:" + self.sock

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        self.proc.terminate()
        rc = self.proc.wait(timeout=20)
        with open(self.errpath) as f:
            err = f.read()
        shutil.rmtree(self.dir, ignore_errors=True)
        # sanitizer reports (UBSan does not exit) fail the test too
        assert "runtime error" not in err and "Sanitizer" not in err, err
        return rc


@pytest.fixture(scope="module")
def server():
    s = Server("--handshake-ms", "1000")
    yield s
    assert s.proc.poll() is None, "server died during the tests"
    assert s.stop() == 0
    assert not os.path.exists(s.sock), "unix socket left behind"


@pytest.fixture
def stub(pb, server):
    ch = grpc.insecure_channel(server.addr)
    yield pb[1].EchoStub(ch)
    ch.close()


def healthy(pb, server):
    """A normal call still works (after each abuse)."""
    with grpc.insecure_channel(server.addr) as ch:
        r = pb[1].EchoStub(ch).UnaryCall(pb[0].SimpleRequest(response_size=10), timeout=10)
        assert len(r.payload.body) == 10
    assert server.proc.poll() is None


# ---- interop cases (grpc doc/interop-test-descriptions.md) ----

def test_empty_unary(pb, stub):
    assert stub.EmptyCall(pb[0].Empty(), timeout=10) == pb[0].Empty()


def test_large_unary(pb, stub):
    req = pb[0].SimpleRequest(response_size=314159, payload=pb[0].Payload(body=b"\0" * 271828))
    r = stub.UnaryCall(req, timeout=10)
    assert r.payload.body == b"\0" * 314159


def test_client_streaming(pb, stub):
    reqs = [pb[0].StreamingInputCallRequest(payload=pb[0].Payload(body=b"\0" * n))
            for n in (27182, 8, 1828, 45904)]
    assert stub.StreamingInputCall(iter(reqs), timeout=10).aggregated_payload_size == 74922


def test_server_streaming(pb, stub):
    sizes = (31415, 9, 2653, 58979)
    req = pb[0].StreamingOutputCallRequest(
        response_parameters=[pb[0].ResponseParameters(size=n) for n in sizes])
    got = [len(r.payload.body) for r in stub.StreamingOutputCall(req, timeout=10)]
    assert got == list(sizes)


def test_ping_pong(pb, stub):
    q = queue.Queue()

    def reqs():
        while True:
            item = q.get()
            if item is None:
                return
            yield item

    call = stub.FullDuplexCall(reqs(), timeout=10)
    for out, inp in zip((31415, 9, 2653, 58979), (27182, 8, 1828, 45904)):
        q.put(pb[0].StreamingOutputCallRequest(
            response_parameters=[pb[0].ResponseParameters(size=out)],
            payload=pb[0].Payload(body=b"\0" * inp)))
        assert len(next(call).payload.body) == out
    q.put(None)
    assert list(call) == []
    assert call.code() == grpc.StatusCode.OK


def test_empty_stream(pb, stub):
    call = stub.FullDuplexCall(iter([]), timeout=10)
    assert list(call) == []
    assert call.code() == grpc.StatusCode.OK


def test_cancel_after_begin(pb, stub, server):
    never = threading.Event()

    def reqs():
        never.wait(10)
        return
        yield

    fut = stub.StreamingInputCall.future(reqs(), timeout=10)
    time.sleep(0.2)
    fut.cancel()
    never.set()
    assert fut.cancelled() or fut.code() == grpc.StatusCode.CANCELLED
    healthy(pb, server)


def test_cancel_after_first_response(pb, stub, server):
    q = queue.Queue()

    def reqs():
        while True:
            item = q.get()
            if item is None:
                return
            yield item

    call = stub.FullDuplexCall(reqs(), timeout=10)
    q.put(pb[0].StreamingOutputCallRequest(
        response_parameters=[pb[0].ResponseParameters(size=31415)],
        payload=pb[0].Payload(body=b"\0" * 27182)))
    assert len(next(call).payload.body) == 31415
    call.cancel()
    q.put(None)
    assert call.code() == grpc.StatusCode.CANCELLED
    healthy(pb, server)


def test_timeout_on_sleeping_server(pb, stub, server):
    q = queue.Queue()

    def reqs():
        yield pb[0].StreamingOutputCallRequest(payload=pb[0].Payload(body=b"\0" * 27182))
        q.get(timeout=10)

    call = stub.FullDuplexCall(reqs(), timeout=0.001)
    with pytest.raises(grpc.RpcError) as ei:
        list(call)
    q.put(None)
    assert ei.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    healthy(pb, server)


def test_server_enforces_deadline(pb, stub, server):
    # the server answers DEADLINE_EXCEEDED itself (sleep longer than the deadline)
    t0 = time.time()
    with pytest.raises(grpc.RpcError) as ei:
        stub.UnaryCall(pb[0].SimpleRequest(sleep_ms=5000, response_size=1), timeout=0.3)
    assert ei.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.time() - t0 < 3
    healthy(pb, server)


def test_status_code_and_message(pb, stub):
    st = pb[0].EchoStatus(code=2, message="test status message")
    with pytest.raises(grpc.RpcError) as ei:
        stub.UnaryCall(pb[0].SimpleRequest(response_status=st), timeout=10)
    assert ei.value.code() == grpc.StatusCode.UNKNOWN
    assert ei.value.details() == "test status message"
    call = stub.FullDuplexCall(iter([pb[0].StreamingOutputCallRequest(response_status=st)]),
                               timeout=10)
    with pytest.raises(grpc.RpcError) as ei:
        list(call)
    assert ei.value.code() == grpc.StatusCode.UNKNOWN
    assert ei.value.details() == "test status message"


def test_special_status_message(pb, stub):
    st = pb[0].EchoStatus(code=2, message=SPECIAL)
    with pytest.raises(grpc.RpcError) as ei:
        stub.UnaryCall(pb[0].SimpleRequest(response_status=st), timeout=10)
    assert ei.value.code() == grpc.StatusCode.UNKNOWN
    assert ei.value.details() == SPECIAL


def test_custom_metadata(pb, stub):
    md = [("x-grpc-test-echo-initial", "test_initial_metadata_value"),
          ("x-grpc-test-echo-trailing-bin", b"\xab\xab\xab")]
    r, call = stub.UnaryCall.with_call(
        pb[0].SimpleRequest(response_size=314159, payload=pb[0].Payload(body=b"\0" * 271828)),
        metadata=md, timeout=10)
    assert len(r.payload.body) == 314159
    assert ("x-grpc-test-echo-initial", "test_initial_metadata_value") in \
        [(m.key, m.value) for m in call.initial_metadata()]
    assert ("x-grpc-test-echo-trailing-bin", b"\xab\xab\xab") in \
        [(m.key, m.value) for m in call.trailing_metadata()]
    call = stub.FullDuplexCall(iter([pb[0].StreamingOutputCallRequest(
        response_parameters=[pb[0].ResponseParameters(size=314159)],
        payload=pb[0].Payload(body=b"\0" * 271828))]), metadata=md, timeout=10)
    assert [len(x.payload.body) for x in call] == [314159]
    assert ("x-grpc-test-echo-initial", "test_initial_metadata_value") in \
        [(m.key, m.value) for m in call.initial_metadata()]
    assert ("x-grpc-test-echo-trailing-bin", b"\xab\xab\xab") in \
        [(m.key, m.value) for m in call.trailing_metadata()]


def test_unimplemented_method(pb, stub):
    with pytest.raises(grpc.RpcError) as ei:
        stub.UnimplementedCall(pb[0].Empty(), timeout=10)
    assert ei.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_unimplemented_service(pb, server):
    with grpc.insecure_channel(server.addr) as ch:
        fn = ch.unary_unary("/test.v1.NoSuchService/EmptyCall",
                            request_serializer=pb[0].Empty.SerializeToString,
                            response_deserializer=pb[0].Empty.FromString)
        with pytest.raises(grpc.RpcError) as ei:
            fn(pb[0].Empty(), timeout=10)
        assert ei.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert "NoSuchService" in ei.value.details()


def test_message_over_limit(pb, stub, server):
    req = pb[0].SimpleRequest(payload=pb[0].Payload(body=b"\0" * (4 * 1024 * 1024 + 10)))
    with pytest.raises(grpc.RpcError) as ei:
        stub.UnaryCall(req, timeout=20)
    assert ei.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    healthy(pb, server)


def test_malformed_protobuf(pb, server):
    with grpc.insecure_channel(server.addr) as ch:
        fn = ch.unary_unary("/test.v1.Echo/UnaryCall", request_serializer=lambda b: b,
                            response_deserializer=lambda b: b)
        with pytest.raises(grpc.RpcError) as ei:
            fn(b"\xff\xff\xff\xff", timeout=10)
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "test.v1.SimpleRequest" in ei.value.details()


def test_tcp_loopback(pb, server):
    with grpc.insecure_channel(server.tcp) as ch:
        assert pb[1].EchoStub(ch).EmptyCall(pb[0].Empty(), timeout=10) == pb[0].Empty()


# ---- abuse: after each one the server must still answer ----

def unix_conn(server):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(server.sock)
    s.settimeout(10)
    return s


def read_until_closed(s, limit=5.0):
    s.settimeout(limit)
    t0 = time.time()
    try:
        while s.recv(65536):
            if time.time() - t0 > limit:
                return False
    except (ConnectionResetError, BrokenPipeError):
        pass
    except socket.timeout:
        return False
    return True


def test_garbage_bytes(pb, server):
    s = unix_conn(server)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + os.urandom(4096))
    assert read_until_closed(s), "server kept a garbage connection open"
    s.close()
    s = unix_conn(server)
    s.sendall(PREFACE + os.urandom(8192))
    assert read_until_closed(s)
    s.close()
    healthy(pb, server)


def test_half_preface_then_silence(pb, server):
    s = unix_conn(server)
    s.sendall(PREFACE[:10])
    t0 = time.time()
    assert read_until_closed(s, 8.0), "half preface not timed out"
    assert time.time() - t0 < 8.0
    s.close()
    healthy(pb, server)


def h2_frame(ftype, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", stream) + payload


def test_closed_mid_frame(pb, server):
    s = unix_conn(server)
    settings = h2_frame(4, 0, 0, b"")
    headers = h2_frame(1, 4, 1, b"\x83\x86" + b"\x00" * 40)  # promises more than sent
    s.sendall(PREFACE + settings + headers[:20])
    s.close()
    s = unix_conn(server)
    s.sendall(PREFACE + settings + h2_frame(0, 0, 1, b"x" * 100)[:50])
    s.shutdown(socket.SHUT_WR)
    read_until_closed(s)
    s.close()
    healthy(pb, server)


def test_thousand_abandoned_connections(pb, server):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    socks = []
    try:
        for i in range(1000):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(server.sock)
            if i % 3 == 1:
                s.sendall(PREFACE)
            elif i % 3 == 2:
                s.sendall(PREFACE + h2_frame(4, 0, 0, b""))
            socks.append(s)
        healthy(pb, server)  # while they are all still open
    finally:
        for s in socks:
            s.close()
    healthy(pb, server)


def test_slow_reader_bounded_memory(pb, server):
    ch = grpc.insecure_channel(server.addr)
    stub = pb[1].EchoStub(ch)
    before = server.rss_kib()
    # ~1 GiB offered; the client reads one message and then stops
    req = pb[0].StreamingOutputCallRequest(
        response_parameters=[pb[0].ResponseParameters(size=512 * 1024)] * 2048)
    call = stub.StreamingOutputCall(req, timeout=60)
    next(call)
    peak = 0
    for _ in range(10):
        time.sleep(0.2)
        peak = max(peak, server.rss_kib())
    healthy(pb, server)  # other calls are not stalled
    peak = max(peak, server.rss_kib())
    call.cancel()
    ch.close()
    print(f"server RSS before {before} KiB, peak {peak} KiB")
    assert peak - before < 200 * 1024, f"server RSS grew by {peak - before} KiB"
    healthy(pb, server)


def nghttp_post(server, path, headers):
    if not shutil.which("nghttp"):
        pytest.skip("nghttp not installed")
    with tempfile.NamedTemporaryFile() as body:
        body.write(b"\0\0\0\0\0")
        body.flush()
        cmd = ["nghttp", "-v", "-d", body.name, f"http://{server.tcp}{path}"]
        for h in headers:
            cmd += ["-H", h]
        out = subprocess.run(cmd, capture_output=True, timeout=20).stdout.decode("latin-1")
    return out


def test_wrong_content_type(pb, server):
    out = nghttp_post(server, "/test.v1.Echo/EmptyCall",
                      ["content-type: text/plain", "te: trailers"])
    assert ":status: 415" in out
    assert "grpc-status: 3" in out
    healthy(pb, server)


def test_missing_te(pb, server):
    out = nghttp_post(server, "/test.v1.Echo/EmptyCall", ["content-type: application/grpc"])
    assert re.search(r"grpc-status: (3|13)", out), out
    assert "grpc-status: 0" not in out
    healthy(pb, server)


def test_nghttp_well_formed_call(pb, server):
    out = nghttp_post(server, "/test.v1.Echo/EmptyCall",
                      ["content-type: application/grpc", "te: trailers"])
    assert ":status: 200" in out and "grpc-status: 0" in out
    # trailers came after response headers and data, each stream ended once
    assert out.index(":status: 200") < out.index("grpc-status: 0")


def test_stale_socket_replaced_and_live_one_refused(server):
    # a second server on the same socket must refuse: the first is alive
    p = subprocess.run([find_testserver(), "--listen", "unix:" + server.sock],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode != 0
    assert "another server" in p.stderr
    # a stale socket file (nobody listening) is replaced
    d = tempfile.mkdtemp(prefix="rpcstale")
    path = os.path.join(d, "s.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()
    srv = subprocess.Popen([find_testserver(), "--listen", "unix:" + path],
                           stdout=subprocess.PIPE, text=True)
    try:
        assert "ready" in srv.stdout.readline() + srv.stdout.readline()
        assert os.stat(path).st_mode & 0o777 == 0o666
    finally:
        srv.terminate()
        assert srv.wait(timeout=20) == 0
    assert not os.path.exists(path)
    shutil.rmtree(d, ignore_errors=True)


def test_non_loopback_refused():
    p = subprocess.run([find_testserver(), "--listen", "0.0.0.0:0"], capture_output=True,
                       text=True, timeout=20)
    assert p.returncode != 0
    assert "TLS is required for non-loopback addresses" in p.stderr


def test_keepalive_pings_keep_idle_connection(pb):
    # the server pings idle connections every 100 ms; grpcio answers and the
    # connection stays usable (the ping is not treated as abuse by either side)
    s = Server("--keepalive-ms", "100")
    try:
        with grpc.insecure_channel(s.addr) as ch:
            stub = pb[1].EchoStub(ch)
            assert stub.EmptyCall(pb[0].Empty(), timeout=10) == pb[0].Empty()
            time.sleep(1.5)
            assert stub.EmptyCall(pb[0].Empty(), timeout=10) == pb[0].Empty()
    finally:
        assert s.stop() == 0


def test_max_connections(pb):
    s = Server("--max-connections", "2")
    try:
        held = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(2)]
        for h in held:
            h.connect(s.sock)
            h.sendall(PREFACE + h2_frame(4, 0, 0, b""))
        time.sleep(0.2)
        extra = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        extra.connect(s.sock)
        assert read_until_closed(extra, 5.0), "connection over the limit was not closed"
        extra.close()
        for h in held:
            h.close()
        time.sleep(0.2)
        healthy(pb, s)
    finally:
        assert s.stop() == 0


def hpack_literal(name, value):
    # literal header field without indexing, new name, no Huffman coding
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def test_stdio_reader_gone_is_not_sigpipe(pb):
    """Over pipes (the shim's stdio transport) the server writes with
    SIGPIPE at its default: a reader that goes away mid-stream must end the
    connection (EPIPE), not kill the process."""
    proc = subprocess.Popen([find_testserver(), "--stdio"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        req = pb[0].StreamingOutputCallRequest(
            response_parameters=[pb[0].ResponseParameters(size=256 * 1024)] * 1024)
        msg = req.SerializeToString()
        headers = b"".join(hpack_literal(n, v) for n, v in (
            (b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"stdio"),
            (b":path", b"/test.v1.Echo/StreamingOutputCall"),
            (b"content-type", b"application/grpc"), (b"te", b"trailers")))
        big = 2 ** 31 - 1
        proc.stdin.write(PREFACE + h2_frame(4, 0, 0, struct.pack(">HI", 4, big)) +  # SETTINGS
                         h2_frame(8, 0, 0, struct.pack(">I", big - 65535)) +  # WINDOW_UPDATE
                         h2_frame(1, 4, 1, headers) +  # HEADERS, END_HEADERS
                         h2_frame(0, 1, 1, b"\0" + struct.pack(">I", len(msg)) + msg))
        proc.stdin.flush()
        got = 0
        while got < 4 * 1024 * 1024:  # the stream is flowing
            chunk = proc.stdout.read1(65536)
            assert chunk, "server closed its stdout early: " + proc.stderr.read().decode(errors="replace")[-3000:]
            got += len(chunk)
        proc.stdout.close()  # the reader goes; stdin stays open
        rc = proc.wait(timeout=60)
        err = proc.stderr.read().decode(errors="replace")
        assert rc != -13, "killed by SIGPIPE:\n" + err[-4000:]
        assert rc == 0, "exit %d:\n%s" % (rc, err[-4000:])
        assert "runtime error" not in err and "Sanitizer" not in err, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdin.close()

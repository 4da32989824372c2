"""rund --metrics: Prometheus text on plain HTTP, parsed with the real
parser (python3-prometheus-client): calls by method and code with latency
histograms, connections, jobs by state and reason, spawn latency, log
bytes, refused TLS handshakes; bad requests and bad flags."""

import socket
import ssl
import subprocess
import time

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import RUND, cmd, pb, rpc_error, start, wait


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http(port, request, timeout=10):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        out = b""
        while True:
            b = s.recv(65536)
            if not b:
                return out
            out += b


def scrape(port):
    raw = http(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK"), head
    assert b"text/plain; version=0.0.4" in head
    assert int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0]) == len(body)
    fams = {f.name: f for f in text_string_to_metric_families(body.decode())}
    return fams


def value(fams, family, name, **labels):
    for s in fams[family].samples:
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return None


@pytest.fixture
def mrund(rund_factory):
    port = free_port()
    r = rund_factory(extra_args=["--metrics", "127.0.0.1:%d" % port]).start()
    r.metrics_port = port
    return r


def test_metrics_count_what_happens(mrund):
    port, stub = mrund.metrics_port, mrund.stub()
    assert 'msg="metrics" addr="127.0.0.1:%d"' % port in mrund.stderr_text()
    fams = scrape(port)
    assert value(fams, "runrpc_jobs", "runrpc_jobs", state="running") == 0
    ok = start(stub, "/bin/sh", "-c", "echo out; echo err >&2").job_id
    assert wait(stub, ok).exit_code == 0
    bad = start(stub, "/bin/sh", "-c", "exit 3").job_id
    assert wait(stub, bad).exit_code == 3
    running = start(stub, "/bin/sleep", "60").job_id
    rpc_error(stub.Status, pb.StatusRequest(job_id="01ARZ3NDEKTSV4RRFFQ69G5FAV"), timeout=10)
    fams = scrape(port)
    started = value(fams, "runrpc_rpc_requests", "runrpc_rpc_requests_total",
                    method="runrpc.v1.Jobs/Start", code="OK")
    assert started == 3, fams["runrpc_rpc_requests"].samples
    assert value(fams, "runrpc_rpc_requests", "runrpc_rpc_requests_total",
                 method="runrpc.v1.Jobs/Status", code="NOT_FOUND") == 1
    assert value(fams, "runrpc_rpc_duration_seconds", "runrpc_rpc_duration_seconds_count",
                 method="runrpc.v1.Jobs/Start") == 3
    assert value(fams, "runrpc_rpc_duration_seconds", "runrpc_rpc_duration_seconds_bucket",
                 method="runrpc.v1.Jobs/Start", le="+Inf") == 3
    assert value(fams, "runrpc_job_spawn_seconds", "runrpc_job_spawn_seconds_count") == 3
    assert value(fams, "runrpc_job_spawn_seconds", "runrpc_job_spawn_seconds_sum") > 0
    assert value(fams, "runrpc_jobs", "runrpc_jobs", state="running") == 1
    assert value(fams, "runrpc_jobs", "runrpc_jobs", state="exited", reason="exited") == 2
    assert value(fams, "runrpc_job_log_bytes", "runrpc_job_log_bytes", stream="stdout") == 4
    assert value(fams, "runrpc_job_log_bytes", "runrpc_job_log_bytes", stream="stderr") == 4
    assert value(fams, "runrpc_connections", "runrpc_connections") >= 1
    assert value(fams, "process_resident_memory_bytes", "process_resident_memory_bytes") > 1e6
    stub.Stop(pb.StopRequest(job_id=running, grace_ms=0), timeout=30)
    fams = scrape(port)
    assert value(fams, "runrpc_jobs", "runrpc_jobs", state="running") == 0
    assert value(fams, "runrpc_jobs", "runrpc_jobs", state="killed", reason="stopped") == 1
    # an Exec: counted when its stream ends
    out = b"".join(m.stdout for m in stub.Exec(iter([pb.ExecRequest(
        start=pb.ExecStart(command=cmd("/bin/echo", "x")))]), timeout=30))
    assert out == b"x\n"
    for _ in range(50):
        fams = scrape(port)
        if value(fams, "runrpc_rpc_requests", "runrpc_rpc_requests_total",
                 method="runrpc.v1.Jobs/Exec", code="OK") == 1:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(fams["runrpc_rpc_requests"].samples)
    assert value(fams, "runrpc_job_spawn_seconds", "runrpc_job_spawn_seconds_count") == 4
    # an unknown method is counted, but not under a name a client made up
    ch = mrund.channel()
    with pytest.raises(grpc.RpcError) as ei:
        ch.unary_unary("/made.up.Service/Nope")(b"", timeout=10)
    assert ei.value.code() == grpc.StatusCode.UNIMPLEMENTED
    fams = scrape(port)
    assert value(fams, "runrpc_rpc_requests", "runrpc_rpc_requests_total",
                 method="other", code="UNIMPLEMENTED") == 1
    assert not any("made.up" in str(s.labels) for s in fams["runrpc_rpc_requests"].samples)
    assert value(fams, "runrpc_metrics_scrapes", "runrpc_metrics_scrapes_total") >= 5
    mrund.stop()


def test_tls_refusals_are_counted(rund_factory):
    port, tport = free_port(), free_port()
    r = rund_factory(extra_args=["--metrics", "127.0.0.1:%d" % port,
                                 "--listen", "127.0.0.1:%d" % tport]).start()
    for _ in range(2):  # no h2 in ALPN: refused in the handshake
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["http/1.1"])
        try:
            with socket.create_connection(("127.0.0.1", tport), timeout=10) as s:
                with ctx.wrap_socket(s) as t:
                    t.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
                    t.recv(100)
        except (ssl.SSLError, OSError):
            pass
    for _ in range(50):
        n = value(scrape(port), "runrpc_tls_handshakes_refused",
                  "runrpc_tls_handshakes_refused_total")
        if n == 2:
            break
        time.sleep(0.1)
    assert n == 2, r.stderr_text()[-3000:]
    r.stop()


@pytest.mark.parametrize("req,status", [
    (b"GET / HTTP/1.1\r\n\r\n", b"404"),
    (b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", b"405"),
    (b"garbage\r\n\r\n", b"400"),
    (b"GET /metrics HTTP/1.1\r\n" + b"X: " + b"a" * 5000 + b"\r\n\r\n", b"431"),
])
def test_bad_requests(mrund, req, status):
    out = http(mrund.metrics_port, req)
    assert out.split(b" ")[1] == status, out[:200]
    # still serving
    assert "runrpc_jobs" in scrape(mrund.metrics_port)


def test_slow_scrapers_do_not_stall_rund(mrund):
    # 20 connections that never send a request: rund serves on
    idle = [socket.create_connection(("127.0.0.1", mrund.metrics_port)) for _ in range(20)]
    try:
        stub = mrund.stub()
        assert wait(stub, start(stub, "/bin/true").job_id).exit_code == 0
    finally:
        for s in idle:
            s.close()
    assert "runrpc_jobs" in scrape(mrund.metrics_port)


@pytest.mark.parametrize("addr,msg", [
    ("nonsense", 'want HOST:PORT'),
    ("127.0.0.1:", "missing port"),
    ("999.1.1.1:80", 'cannot serve metrics" error="--metrics \\"999.1.1.1:80\\"'),
])
def test_bad_metrics_flag(tmp_path, addr, msg):
    p = subprocess.run([RUND, "--listen", "unix:%s/s.sock" % tmp_path, "--state-dir",
                        str(tmp_path / "state"), "--metrics", addr],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1, p.stderr
    assert msg in p.stderr, p.stderr

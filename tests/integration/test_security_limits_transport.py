"""What a client can make rund hold at the transport (issue 9): request bytes
before and after authorisation, connections per peer, PING-only connections,
decoded header bytes, stalled Logs readers. Each test replays an attack at a
small scale with a raw HTTP/2 client (python3-h2) and checks rund's RSS, fds
and answers; figures are printed (pytest -s)."""

import os
import socket
import struct
import subprocess
import sys
import time

import grpc
import pytest

from conftest import fd_count, pb, rss_kib
from security_helpers import SecRund, pki  # noqa: F401

h2 = pytest.importorskip("h2.connection")
import h2.config  # noqa: E402
import h2.events  # noqa: E402
import h2.exceptions  # noqa: E402
import h2.settings  # noqa: E402

MiB = 1024 * 1024
START = "/runrpc.v1.Jobs/Start"


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class H2Client:
    """A raw HTTP/2 client on a connected socket."""

    def __init__(self, sock, window=None):
        self.sock = sock
        self.sock.settimeout(5)
        self.c = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.c.initiate_connection()
        if window is not None:
            self.c.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.flush()
        self.status = {}   # stream id -> grpc-status (str)
        self.message = {}  # stream id -> grpc-message
        self.reset = {}    # stream id -> RST_STREAM error code
        self.data = {}     # stream id -> response bytes
        self.terminated = None  # GOAWAY error code
        self.closed = False

    @classmethod
    def connect(cls, addr, **kw):
        if addr.startswith("unix:"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(addr[5:])
        else:
            host, port = addr.rsplit(":", 1)
            s = socket.create_connection((host.replace("h2c:", ""), int(port)))
        return cls(s, **kw)

    def flush(self):
        out = self.c.data_to_send()
        if out:
            self.sock.sendall(out)

    def request(self, path, extra=(), end=False):
        sid = self.c.get_next_available_stream_id()
        hdrs = [(":method", "POST"), (":scheme", "http"), (":path", path),
                (":authority", "localhost"), ("content-type", "application/grpc"),
                ("te", "trailers")] + list(extra)
        self.c.send_headers(sid, hdrs, end_stream=end)
        self.flush()
        return sid

    def send_some(self, sid, data):
        """Send what flow control allows of data; returns bytes sent."""
        try:
            n = min(len(data), self.c.local_flow_control_window(sid))
            sent = 0
            while sent < n:
                k = min(n - sent, self.c.max_outbound_frame_size)
                self.c.send_data(sid, data[sent:sent + k])
                sent += k
            self.flush()
            return sent
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            return 0

    def pump(self, timeout=0.2):
        """Read and handle what arrives within timeout; False once closed."""
        end = time.monotonic() + timeout
        while not self.closed:
            left = end - time.monotonic()
            if left <= 0:
                break
            self.sock.settimeout(left)
            try:
                buf = self.sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                buf = b""
            if not buf:
                self.closed = True
                break
            for ev in self.c.receive_data(buf):
                self._event(ev)
            self.flush()
        return not self.closed

    def _event(self, ev):
        if isinstance(ev, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
            for k, v in ev.headers:
                if k == "grpc-status":
                    self.status[ev.stream_id] = v
                elif k == "grpc-message":
                    self.message[ev.stream_id] = v
        elif isinstance(ev, h2.events.DataReceived):
            self.data[ev.stream_id] = self.data.get(ev.stream_id, b"") + ev.data
        elif isinstance(ev, h2.events.StreamReset):
            self.reset[ev.stream_id] = ev.error_code
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.terminated = ev.error_code

    def close(self):
        self.sock.close()


def grpc_frame(payload, announce=None):
    return struct.pack(">BI", 0, len(payload) if announce is None else announce) + payload


def partial_attack(client, path, streams, extra=(), seconds=2.0):
    """Open streams each announcing a 4 MiB message and send what flow control
    allows; returns the request bytes the server let in."""
    chunk = b"\0" * (4 * MiB)
    sids, sent = [], 0
    for _ in range(streams):
        sid = client.request(path, extra)
        sids.append(sid)
        sent += client.send_some(sid, grpc_frame(b"", announce=4 * MiB))
    end = time.monotonic() + seconds
    while time.monotonic() < end and client.pump(0.05):
        for sid in sids:
            if sid not in client.status and sid not in client.reset:
                sent += client.send_some(sid, chunk[:256 * 1024])
    return sids, sent


@pytest.fixture
def h2c_rund():
    r = SecRund(tls=False, h2c=True)
    # ASan keeps freed memory in quarantine (256 MB by default) instead of
    # reusing it: a small one lets RSS show what rund really holds
    asan = os.environ.get("ASAN_OPTIONS", "")
    r.env_extra["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "quarantine_size_mb=1"
    r.start()
    yield r
    r.stop()


def test_unauthenticated_partial_messages_refused_at_headers(h2c_rund):
    r = h2c_rund
    before = rss_kib(r.pid)
    cl = H2Client.connect(r.h2c_addr)
    sids, sent = partial_attack(cl, START, 200)
    unix = r.unix_stub()
    assert unix.List(pb.ListRequest(), timeout=10) is not None  # others are served meanwhile
    after = rss_kib(r.pid)
    print("\nunauthenticated h2c, 200 streams x partial 4 MiB: rund RSS %d -> %d KiB, "
          "%d request bytes sent" % (before, after, sent))
    assert all(cl.status.get(s) == "16" for s in sids), (cl.status, cl.message)
    assert "no identity" in cl.message[sids[0]]
    assert after - before < 16 * 1024, (before, after)
    cl.close()


def test_authorised_request_bytes_bounded_per_connection(h2c_rund):
    r = h2c_rund
    unix = r.unix_stub()
    unix.List(pb.ListRequest(), timeout=10)
    before = rss_kib(r.pid)
    figures = []
    for rnd in range(2):  # a second round must reuse what the first freed
        cl = H2Client.connect(r.addr)
        sids, sent = partial_attack(cl, START, 100)
        # a connection holds at most 16 MiB (plus HTTP/2's initial 64 KiB)
        assert sent <= 16 * MiB + 64 * 1024 + 100 * 5, sent
        assert sent >= 8 * MiB, sent  # the window was granted to an identified caller
        rss = rss_kib(r.pid)
        t0 = time.monotonic()
        st = unix.Start(pb.StartRequest(command=pb.Command(path="true")), timeout=10)
        figures.append((sent, rss, time.monotonic() - t0))
        assert st.job_id
        cl.close()
        time.sleep(0.3)
    after = rss_kib(r.pid)
    print("\nunix, 100 streams x partial 4 MiB, twice: rund RSS %d KiB before, %s, %d after"
          % (before, ", ".join("sent %d B -> RSS %d KiB (Start %.3f s)" % f for f in figures),
             after))
    assert figures[0][1] - before < 64 * 1024, figures
    assert figures[1][1] - figures[0][1] < 16 * 1024, figures


def test_message_larger_than_limit_resource_exhausted(h2c_rund):
    cl = H2Client.connect(h2c_rund.addr)
    sid = cl.request(START)
    cl.send_some(sid, grpc_frame(b"", announce=5 * MiB))
    end = time.monotonic() + 5
    while sid not in cl.status and time.monotonic() < end and cl.pump(0.1):
        pass
    assert cl.status.get(sid) == "8", (cl.status, cl.message)
    assert "larger than max" in cl.message[sid]
    cl.close()


def test_header_amplification_refused_early(h2c_rund):
    r = h2c_rund
    big = "v" * 4000  # one dynamic-table entry, then ~2 bytes per reference
    cpu0 = cpu_seconds(r.pid)
    t0 = time.monotonic()
    cl = H2Client.connect(r.addr)
    sid = cl.request(START, [("x-big", big)] * 2000)
    while sid not in cl.reset and time.monotonic() - t0 < 5 and cl.pump(0.1):
        pass
    assert cl.reset.get(sid) == 11, (cl.reset, cl.status)  # ENHANCE_YOUR_CALM
    # a connection that keeps doing it is closed (GOAWAY ENHANCE_YOUR_CALM)
    for _ in range(200):
        if cl.closed or cl.terminated is not None:
            break
        try:
            cl.request(START, [("x-big", big)] * 2000)
        except (h2.exceptions.ProtocolError, BrokenPipeError, ConnectionResetError):
            break
        cl.pump(0.01)
    while not cl.closed and time.monotonic() - t0 < 10 and cl.pump(0.1):
        pass
    cpu = cpu_seconds(r.pid) - cpu0
    print("\n2,000 x 4 KB indexed header per request: refused, connection closed after "
          "%.2f s, rund CPU %.2f s" % (time.monotonic() - t0, cpu))
    assert cl.terminated == 11 or cl.closed, (cl.terminated, cl.closed)
    assert cpu < 2.0, cpu
    cl.close()
    assert r.unix_stub().List(pb.ListRequest(), timeout=10) is not None


def test_many_small_headers_linear(h2c_rund):
    times = {}
    for n in (700, 1400):
        cl = H2Client.connect(h2c_rund.addr)
        t0 = time.monotonic()
        extra = [("x-h%d" % i, "v") for i in range(n)]
        sid = cl.request("/runrpc.v1.Jobs/List", extra)
        cl.send_some(sid, grpc_frame(b""))
        cl.c.end_stream(sid)
        cl.flush()
        while sid not in cl.status and time.monotonic() - t0 < 10 and cl.pump(0.05):
            pass
        times[n] = time.monotonic() - t0
        assert cl.status.get(sid) == "0", (cl.status, cl.message, cl.reset)
        cl.close()
    print("\nrequest with 700 / 1,400 headers answered in %.3f / %.3f s" % (times[700],
                                                                        times[1400]))
    assert times[1400] < 0.25, times


def test_ping_only_connection_closed():
    r = SecRund(tls=False, extra_args=["--idle-timeout", "1s"]).start()
    try:
        cl = H2Client.connect(r.addr)
        t0 = time.monotonic()
        # ping until rund says GOAWAY (h2 refuses to ping after it), then
        # see the connection close
        while time.monotonic() - t0 < 5 and cl.pump(0.2) and cl.terminated is None:
            cl.c.ping(b"12345678")
            cl.flush()
        while time.monotonic() - t0 < 5 and cl.pump(0.2):
            pass
        took = time.monotonic() - t0
        print("\nPING every 0.2 s, --idle-timeout 1s: closed after %.2f s" % took)
        assert cl.closed and 0.9 < took < 3, took
        assert cl.terminated == 0  # GOAWAY NO_ERROR before the close
        # a connection with a call open is not idle: Logs follows a 2 s job
        u = r.unix_stub()
        job = u.Start(pb.StartRequest(command=pb.Command(path="sleep", args=["2"])),
                      timeout=10).job_id
        got = list(u.Logs(pb.LogsRequest(job_id=job, follow=True), timeout=10))
        assert got == []
        assert "idle timeout" in r.stderr_text()
    finally:
        r.stop()


HOLDER = r"""
import socket, sys, time
path, n = sys.argv[1], int(sys.argv[2])
preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
held, out = [], []
for i in range(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(path)
        s.sendall(preface)
        ok = len(s.recv(9)) == 9  # the server's SETTINGS, or EOF when refused
    except OSError:
        ok = False
    out.append("1" if ok else "0")
    held.append(s)
print("".join(out), flush=True)
sys.stdin.read()
"""


def hold_connections(r, uid, n):
    p = subprocess.Popen([sys.executable, "-c", HOLDER, r.sock, str(n)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         preexec_fn=lambda: (os.setgid(uid), os.setuid(uid)))
    line = p.stdout.readline().decode().strip()
    return p, line


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as other uids")
def test_connections_per_peer_with_admin_room():
    r = SecRund(tls=False, extra_args=["--max-connections", "12",
                                      "--max-conns-per-peer", "4"])
    os.chmod(r.base, 0o755)
    r.start()
    procs = []
    try:
        p, got = hold_connections(r, 65534, 6)
        procs.append(p)
        assert got == "111100", got  # 4 per peer
        p, got = hold_connections(r, 65533, 4)
        procs.append(p)
        assert got == "1100", got  # 12 - 6 kept for admins = 6 for everyone else
        # root (an admin) still gets in, past the per-peer and the shared share
        stubs = [r.unix_stub() for _ in range(3)]
        for s in stubs:
            assert s.List(pb.ListRequest(), timeout=10) is not None
        text = r.stderr_text()
        assert "uid:65534 has 4 connections (limit 4 per peer)" in text
        assert "kept for admins" in text
    finally:
        for p in procs:
            p.stdin.close()
            p.wait(10)
        r.stop()


def tls_hold(r, cert, src):
    """A TLS connection from address src with cert, kept open; None if rund
    closed it right after the handshake."""
    import ssl
    ctx = ssl.create_default_context(cafile=r.pki.ca.cert)
    ctx.load_cert_chain(cert.cert, cert.key)
    ctx.set_alpn_protocols(["h2"])
    raw = socket.create_connection(("127.0.0.1", r.tls_port), timeout=5, source_address=(src, 0))
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
    s.settimeout(1.0)
    try:
        while True:  # rund's SETTINGS (and ACK) come; a refused one is closed
            if not s.recv(4096):
                s.close()
                return None
    except (socket.timeout, TimeoutError):
        return s
    except (ConnectionResetError, ssl.SSLError):
        s.close()
        return None


def test_connections_per_certificate_identity(pki):
    # one certificate has its share whatever addresses it comes from
    r = SecRund(pki=pki, extra_args=["--max-conns-per-peer", "3"])
    r.start()
    held = []
    try:
        for src in ("127.0.0.1", "127.0.0.2", "127.0.0.3"):
            held.append(tls_hold(r, pki.alice, src))
        assert all(held), held
        assert tls_hold(r, pki.alice, "127.0.0.4") is None  # a 4th from a new address
        other = tls_hold(r, pki.bob, "127.0.0.5")  # another identity is not affected
        assert other is not None
        held.append(other)
        assert "san:uri:runrpc:alice has 3 connections (limit 3 per peer)" in r.stderr_text()
        held.pop(0).close()  # a slot freed is a slot usable again
        deadline = time.monotonic() + 5
        again = None
        while again is None and time.monotonic() < deadline:
            again = tls_hold(r, pki.alice, "127.0.0.6")
        assert again is not None
        held.append(again)
    finally:
        for s in held:
            if s:
                s.close()
        r.stop()


def test_stalled_logs_readers_hold_little(h2c_rund):
    r = h2c_rund
    u = r.unix_stub()
    job = u.Start(pb.StartRequest(command=pb.Command(
        path="sh", args=["-c", "head -c 4194304 /dev/zero"])), timeout=10).job_id
    u.Wait(pb.WaitRequest(job_id=job), timeout=30)
    fds0, rss0 = fd_count(r.pid), rss_kib(r.pid)
    cl = H2Client.connect(r.addr, window=0)  # never opens a stream window
    req = pb.LogsRequest(job_id=job, follow=True).SerializeToString()
    for _ in range(100):
        sid = cl.request("/runrpc.v1.Jobs/Logs")
        cl.send_some(sid, grpc_frame(req))
        cl.c.end_stream(sid)
        cl.flush()
    cl.pump(1.0)
    fds1, rss1 = fd_count(r.pid), rss_kib(r.pid)
    print("\n100 stalled Logs readers: rund fds %d -> %d, RSS %d -> %d KiB"
          % (fds0, fds1, rss0, rss1))
    assert fds1 - fds0 < 10, (fds0, fds1)
    assert rss1 - rss0 < 32 * 1024, (rss0, rss1)
    cl.close()
    assert u.List(pb.ListRequest(), timeout=10) is not None


def test_trickled_headers_do_not_hold_a_connection():
    """Slowloris (found by bench/load.py): a request whose HEADERS frame
    arrives a byte at a time kept its connection forever, since a call was
    open; only calls whose headers are complete keep a connection busy."""
    r = SecRund(tls=False, extra_args=["--idle-timeout", "1s"]).start()
    try:
        block = h2_frame_headers_health()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(r.sock)
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))
        s.sendall(block[:12])  # the frame header: the request has begun
        s.settimeout(0.2)
        t0, closed, i = time.monotonic(), False, 12
        while time.monotonic() - t0 < 8 and not closed:
            try:
                s.send(block[i:i + 1] if i < len(block) - 1 else b"")
                i += 1
                while True:
                    if not s.recv(65536):
                        closed = True
                        break
            except socket.timeout:
                pass
            except OSError:
                closed = True
        took = time.monotonic() - t0
        s.close()
        print("\nheaders a byte per 0.2 s, --idle-timeout 1s: closed after %.2f s" % took)
        assert closed and took < 6, took
        assert "idle timeout" in r.stderr_text()
    finally:
        r.stop()


def h2_frame_headers_health():
    import hpack
    block = hpack.Encoder().encode([(":method", "POST"), (":scheme", "http"),
                                    (":path", "/grpc.health.v1.Health/Check"),
                                    (":authority", "localhost"),
                                    ("content-type", "application/grpc"), ("te", "trailers")])
    return struct.pack(">I", len(block))[1:] + bytes([1, 0x5]) + struct.pack(">I", 1) + block

"""gzip/deflate message compression (issue 17, grpc/doc/compression.md):
rund reads compressed requests from stock clients (python grpcio with
compression on the channel or per call), answers compressed when the client
compresses and accepts the same, bounds the decompressed size by the message
limit (a zip bomb gets RESOURCE_EXHAUSTED without being inflated past it),
refuses an unknown grpc-encoding with UNIMPLEMENTED and grpc-accept-encoding,
and a bad payload or a flag without grpc-encoding with INTERNAL. runctl
--compress does the same from our client. What crosses the socket is
counted by a relay between client and rund, so "compressed" is measured,
not assumed. Raw HTTP/2 requests go through nghttp (nghttp2-client)."""

import os
import re
import socket
import struct
import subprocess
import threading
import zlib

import grpc
import pytest

from conftest import RUNCTL, pb, pb_grpc
from security_helpers import free_port, new_token

NGHTTP = "/usr/bin/nghttp"


class Relay:
    """unix socket relay to rund's socket, counting bytes each way."""

    def __init__(self, target, path):
        self.target, self.path = target, path
        self.up = self.down = 0
        self.lock = threading.Lock()
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(self.target)
            threading.Thread(target=self._pump, args=(c, s, "up"), daemon=True).start()
            threading.Thread(target=self._pump, args=(s, c, "down"), daemon=True).start()

    def _pump(self, a, b, way):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                with self.lock:
                    setattr(self, way, getattr(self, way) + len(d))
                b.sendall(d)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def reset(self):
        with self.lock:
            self.up = self.down = 0

    def close(self):
        self.srv.close()


TOKEN = new_token()


@pytest.fixture
def srv(rund_factory, tmp_path):
    tokfile = tmp_path / "tokens"
    import hashlib
    tokfile.write_text("t sha256:%s\n" % hashlib.sha256(TOKEN.encode()).hexdigest())
    os.chmod(tokfile, 0o600)
    port = free_port()
    r = rund_factory(extra_args=["--listen", "h2c:127.0.0.1:%d" % port, "--token-file",
                                 str(tokfile), "--allow-insecure-tokens"]).start()
    r.h2c = "127.0.0.1:%d" % port
    relay = Relay(r.sock, str(tmp_path / "relay.sock"))
    r.relay = relay
    yield r
    relay.close()


def relay_stub(srv, compression=None):
    ch = grpc.insecure_channel("unix:" + srv.relay.path, compression=compression,
                               options=[("grpc.max_receive_message_length", 64 << 20)])
    srv._channels.append(ch)
    return pb_grpc.JobsStub(ch)


def exec_out(stub, argv, stdin=b"", **kw):
    def reqs():
        yield pb.ExecRequest(start=pb.ExecStart(command=pb.Command(path=argv[0], args=argv[1:])))
        for i in range(0, len(stdin), 65536):
            yield pb.ExecRequest(stdin=stdin[i:i + 65536])
        yield pb.ExecRequest(close_stdin=True)
    out, code = b"", None
    for m in stub.Exec(reqs(), timeout=60, **kw):
        if m.WhichOneof("msg") == "stdout":
            out += m.stdout
        elif m.WhichOneof("msg") == "exit":
            code = m.exit.exit_code
    return out, code


DATA = b"".join(b"line %06d of some compressible text\n" % i for i in range(60000))  # 2.2 MB


@pytest.mark.parametrize("alg", ["Gzip", "Deflate"])
def test_grpcio_channel_compression_both_ways(srv, alg):
    st = relay_stub(srv, getattr(grpc.Compression, alg))
    srv.relay.reset()
    out, code = exec_out(st, ["/bin/cat"], DATA)
    assert code == 0 and out == DATA
    # both directions went compressed: a fraction of the 2.2 MB each way
    assert srv.relay.up < len(DATA) // 5, srv.relay.up
    assert srv.relay.down < len(DATA) // 5, srv.relay.down
    # a unary call with a big compressed request (argv) works too
    big = ["x" * 100000] * 5
    r = st.Start(pb.StartRequest(command=pb.Command(path="/bin/true", args=big)), timeout=15)
    assert st.Wait(pb.WaitRequest(job_id=r.job_id), timeout=30).status.exit_code == 0


def test_grpcio_per_call_compression_and_plain(srv):
    st = relay_stub(srv)
    srv.relay.reset()
    out, code = exec_out(st, ["/bin/cat"], DATA, compression=grpc.Compression.Gzip)
    assert code == 0 and out == DATA
    assert srv.relay.up < len(DATA) // 5 and srv.relay.down < len(DATA) // 5
    # without compression nothing is compressed (the client did not ask)
    srv.relay.reset()
    out, code = exec_out(st, ["/bin/cat"], DATA)
    assert code == 0 and out == DATA
    assert srv.relay.up > len(DATA) and srv.relay.down > len(DATA)


def test_incompressible_data(srv):
    # random bytes do not shrink: they go as they are (rund and runctl back
    # off after a message that did not pay) and arrive intact both ways
    data = os.urandom(3 << 20)
    st = relay_stub(srv, grpc.Compression.Gzip)
    srv.relay.reset()
    out, code = exec_out(st, ["/bin/cat"], data)
    assert code == 0 and out == data
    assert srv.relay.down < len(data) * 1.01, srv.relay.down
    p = runctl(srv, "--compress", "exec", "--", "cat", input=data)
    assert p.returncode == 0 and p.stdout == data, p.stderr


def test_small_messages_go_uncompressed(srv):
    # under 1 KiB it does not pay: rund sends the flag 0 (grpcio reads both)
    st = relay_stub(srv, grpc.Compression.Gzip)
    out, code = exec_out(st, ["/bin/echo", "hi"])
    assert (out, code) == (b"hi\n", 0)
    assert len(st.List(pb.ListRequest(), timeout=10).jobs) >= 0


def runctl(srv, *args, input=b"", env=None):
    e = dict(os.environ)
    e.pop("RUNRPC_COMPRESS", None)
    e.update(env or {})
    return subprocess.run([RUNCTL, "--addr", "unix:" + srv.relay.path] + list(args),
                          input=input, capture_output=True, timeout=60, env=e)


def test_runctl_compress(srv):
    srv.relay.reset()
    p = runctl(srv, "--compress", "exec", "--", "cat", input=DATA)
    assert p.returncode == 0 and p.stdout == DATA, p.stderr
    assert srv.relay.up < len(DATA) // 5 and srv.relay.down < len(DATA) // 5, (
        srv.relay.up, srv.relay.down)
    srv.relay.reset()
    p = runctl(srv, "exec", "--", "cat", input=DATA, env={"RUNRPC_COMPRESS": "1"})
    assert p.returncode == 0 and p.stdout == DATA, p.stderr
    assert srv.relay.up < len(DATA) // 5 and srv.relay.down < len(DATA) // 5
    # off by default
    srv.relay.reset()
    p = runctl(srv, "exec", "--", "cat", input=DATA)
    assert p.returncode == 0 and p.stdout == DATA, p.stderr
    assert srv.relay.up > len(DATA) and srv.relay.down > len(DATA)
    # start/logs/status through the same option
    p = runctl(srv, "--compress", "start", "--", "sh", "-c", "yes abc | head -c 300000")
    jid = p.stdout.decode().strip()
    assert p.returncode == 0 and jid, p.stderr
    assert runctl(srv, "--compress", "wait", jid).returncode == 0
    p = runctl(srv, "--compress", "logs", jid)
    assert p.returncode == 0 and p.stdout == b"abc\n" * 75000, p.stderr[:300]


def nghttp(srv, path, body, *headers, token=True):
    argv = [NGHTTP, "-v", "-H", "content-type: application/grpc", "-H", "te: trailers"]
    for h in headers:
        argv += ["-H", h]
    if token:
        argv += ["-H", "authorization: Bearer " + TOKEN]
    bodyfile = os.path.join(srv.base, "body.bin")
    with open(bodyfile, "wb") as f:
        f.write(body)
    argv += ["-d", bodyfile, "http://%s%s" % (srv.h2c, path)]
    p = subprocess.run(argv, capture_output=True, timeout=60)
    text = p.stdout.decode("utf-8", "replace")
    got = dict(re.findall(r"recv \(stream_id=\d+\) (grpc-[a-z-]+): (.*)", text))
    assert "grpc-status" in got, text
    return got


def framed(flag, payload):
    return bytes([flag]) + struct.pack(">I", len(payload)) + payload


def gz(data, wbits=31):
    z = zlib.compressobj(9, zlib.DEFLATED, wbits)
    return z.compress(data) + z.flush()


def zeros_bomb(mib):
    """A valid gzip stream of mib MiB of zeros, made without deflating them
    all: after a sync flush, every further MiB of zeros (with zeros behind it)
    deflates to the same bytes, so they are repeated; the trailer's CRC-32
    and size are those of the whole."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b"\0" * (1 << 20)
    head = z.compress(chunk) + z.flush(zlib.Z_SYNC_FLUSH)
    steady = z.compress(chunk) + z.flush(zlib.Z_SYNC_FLUSH)
    body = head + steady * (mib - 1) + z.flush()
    crc = 0
    for _ in range(mib):
        crc = zlib.crc32(chunk, crc)
    return body[:-8] + struct.pack("<II", crc, (mib << 20) & 0xFFFFFFFF)


def vm_hwm_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1))


@pytest.mark.timeout(240)
def test_zip_bomb_resource_exhausted_memory_flat(srv):
    bomb = zeros_bomb(512)  # 512 MiB of zeros in about 0.5 MB (under the 4 MiB limit)
    assert len(bomb) < 4 << 20
    before = vm_hwm_kb(srv.pid)
    for _ in range(3):
        got = nghttp(srv, "/runrpc.v1.Jobs/List", framed(1, bomb), "grpc-encoding: gzip")
        assert got["grpc-status"] == "8", got
        assert "decompressed message larger than max" in got["grpc-message"], got
    # inflating stopped at the limit: rund's peak grew by far less than 512 MiB
    assert vm_hwm_kb(srv.pid) - before < 128 * 1024, (before, vm_hwm_kb(srv.pid))
    # an anonymous call (health) has the 64 KiB limit, decompressed too
    small = gz(b"\0" * (8 << 20))
    assert len(small) < 64 << 10
    got = nghttp(srv, "/grpc.health.v1.Health/Check", framed(1, small), "grpc-encoding: gzip",
                 token=False)
    assert got["grpc-status"] == "8", got
    # rund still serves
    assert relay_stub(srv).List(pb.ListRequest(), timeout=10) is not None


def test_protocol_errors(srv):
    # a payload that is not gzip: INTERNAL
    got = nghttp(srv, "/runrpc.v1.Jobs/List", framed(1, b"0123456789"), "grpc-encoding: gzip")
    assert got["grpc-status"] == "13" and "cannot decompress" in got["grpc-message"], got
    # truncated gzip, and bytes after the end
    whole = gz(b"hello" * 1000)
    got = nghttp(srv, "/runrpc.v1.Jobs/List", framed(1, whole[:-8]), "grpc-encoding: gzip")
    assert got["grpc-status"] == "13", got
    got = nghttp(srv, "/runrpc.v1.Jobs/List", framed(1, whole + b"junk"), "grpc-encoding: gzip")
    assert got["grpc-status"] == "13", got
    # the flag set without grpc-encoding (or with identity): INTERNAL
    for hdr in ([], ["grpc-encoding: identity"]):
        got = nghttp(srv, "/runrpc.v1.Jobs/List", framed(1, gz(b"")), *hdr)
        assert got["grpc-status"] == "13", got
        assert "no grpc-encoding" in got["grpc-message"], got
    # an encoding rund does not speak: UNIMPLEMENTED, saying what it accepts
    got = nghttp(srv, "/runrpc.v1.Jobs/List", framed(0, b""), "grpc-encoding: br")
    assert got["grpc-status"] == "12", got
    assert got["grpc-accept-encoding"] == "identity,deflate,gzip", got
    # a good compressed request over the raw path (deflate = zlib format)
    got = nghttp(srv, "/runrpc.v1.Jobs/List", framed(1, gz(b"", 15)), "grpc-encoding: deflate")
    assert got["grpc-status"] == "0", got

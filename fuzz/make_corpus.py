#!/usr/bin/python3
"""Write the seed corpora of fuzz/corpus/<target>/ from real sessions.

h2_server: what a real gRPC client (Debian's python3-grpcio) sent to a real
rund, recorded by a unix-socket proxy in between (one file per connection),
plus hand-made sessions written with python3-h2 (CONTINUATION, padding,
RST_STREAM, PING, SETTINGS, a message split over DATA frames, a deadline,
trailers from the client). request: each Jobs request message as grpcio
encodes it, after the method byte of fuzz_request.c. job_json, tokens,
cert_san: files rund wrote itself (job.json of finished jobs, a token file
line, its embedded TLS certificates in DER). secrets_acl, runctl_flags:
small hand-written examples.

Usage: RUND=build-asan/src/rund/rund fuzz/make_corpus.py  (as root; a few
seconds). Run it again only to refresh the seeds; corpora grown by fuzzing
are merged into the same folders by fuzz/run.sh merge.
"""
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
os.environ.setdefault("RUNRPC_SOURCE_ROOT", ROOT)
import conftest  # noqa: E402  (generates the jobs_pb2 stubs)
import grpc  # noqa: E402
import h2.config  # noqa: E402
import h2.connection  # noqa: E402

pb, pbg = conftest.pb, conftest.pb_grpc
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
METHOD_BYTE = {"Start": 0, "Status": 1, "List": 2, "Signal": 3, "Wait": 4, "Stop": 5,
               "Logs": 6, "Exec": 7}


def put(target, data, name=None):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    name = name or hashlib.sha1(data).hexdigest()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


class Recorder:
    """unix proxy: client bytes to rund are kept, one buffer per connection."""

    def __init__(self, path, upstream):
        self.path, self.upstream, self.sessions = path, upstream, []
        self.ls = socket.socket(socket.AF_UNIX)
        self.ls.bind(path)
        self.ls.listen(16)
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            u = socket.socket(socket.AF_UNIX)
            u.connect(self.upstream)
            buf = bytearray()
            self.sessions.append(buf)
            threading.Thread(target=self.pump, args=(c, u, buf), daemon=True).start()
            threading.Thread(target=self.pump, args=(u, c, None), daemon=True).start()

    @staticmethod
    def pump(a, b, buf):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                if buf is not None:
                    buf += d
                b.sendall(d)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def grpcio_sessions(addr):
    """One channel (one connection) per scenario."""
    def chan():
        return grpc.insecure_channel(addr, options=[("grpc.enable_retries", 0)])

    def cmd(path, *args, **kw):
        return pb.Command(path=path, args=list(args), **kw)

    scenarios = []

    def scenario(f):
        scenarios.append(f)
        return f

    @scenario
    def start_wait_logs(ch):
        st = pbg.JobsStub(ch)
        r = st.Start(pb.StartRequest(command=cmd("/bin/sh", "-c", "echo out; echo err >&2"),
                                     tags=["fuzz"], timeout_ms=60000), timeout=10)
        st.Wait(pb.WaitRequest(job_id=r.job_id), timeout=10)
        list(st.Logs(pb.LogsRequest(job_id=r.job_id), timeout=10))
        st.Status(pb.StatusRequest(job_id=r.job_id), timeout=10)

    @scenario
    def start_limits_stop(ch):
        st = pbg.JobsStub(ch)
        lim = pb.Limits(cpu=pb.CpuMax(quota_us=50000, period_us=100000),
                        memory_max=64 << 20, pids_max=20)
        try:
            r = st.Start(pb.StartRequest(command=cmd("/bin/sleep", "30", env={"A": "b"},
                                                     workdir="/tmp"), limits=lim), timeout=10)
            st.Signal(pb.SignalRequest(job_id=r.job_id, name="TERM"), timeout=10)
            st.Stop(pb.StopRequest(job_id=r.job_id, grace_ms=100), timeout=10)
        except grpc.RpcError:
            pass

    @scenario
    def list_pages(ch):
        st = pbg.JobsStub(ch)
        st.List(pb.ListRequest(page_size=2, tag="fuzz"), timeout=10)

    @scenario
    def exec_stream(ch):
        st = pbg.JobsStub(ch)
        reqs = [pb.ExecRequest(start=pb.ExecStart(command=cmd("/bin/cat"))),
                pb.ExecRequest(stdin=b"hello\n" * 100), pb.ExecRequest(close_stdin=True)]
        list(st.Exec(iter(reqs), timeout=10))

    @scenario
    def errors(ch):
        st = pbg.JobsStub(ch)
        for f in (lambda: st.Status(pb.StatusRequest(job_id="nope"), timeout=5),
                  lambda: st.Start(pb.StartRequest(command=cmd("")), timeout=5),
                  lambda: st.Signal(pb.SignalRequest(job_id="01HZX3NDEKTSV4RRFFQ69G5FAV",
                                                     number=99), timeout=5)):
            try:
                f()
            except grpc.RpcError:
                pass

    @scenario
    def reflection_and_health(ch):
        def raw(path, body):
            return ch.unary_unary(path, request_serializer=None,
                                  response_deserializer=None)(body, timeout=5)
        raw("/grpc.health.v1.Health/Check", b"")
        raw("/grpc.health.v1.Health/Check", b"\n\x0erunrpc.v1.Jobs")
        refl = ch.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                                request_serializer=None, response_deserializer=None)
        list(refl(iter([b":\x00", b"\x22\x0erunrpc.v1.Jobs"]), timeout=5))  # list, file of symbol

    for f in scenarios:
        ch = chan()
        try:
            f(ch)
        except grpc.RpcError as e:
            print("make_corpus: %s: %s" % (f.__name__, e.code()), file=sys.stderr)
        ch.close()
        time.sleep(0.2)


def frame_bytes(conn):
    return conn.data_to_send()


def h2_sessions():
    """Hand-made sessions for the edges grpcio does not send."""
    out = []
    hdrs = [(":method", "POST"), (":scheme", "http"), (":path", "/grpc.health.v1.Health/Check"),
            (":authority", "localhost"), ("content-type", "application/grpc"), ("te", "trailers")]
    msg = b"\x00\x00\x00\x00\x00"

    def new():
        c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                 header_encoding="utf-8"))
        c.initiate_connection()
        return c

    c = new()  # plain call, padded DATA, PING, SETTINGS
    c.send_headers(1, hdrs)
    c.send_data(1, msg, end_stream=True, pad_length=7)
    c.ping(b"12345678")
    c.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
    out.append(c.data_to_send())

    c = new()  # headers too big for one frame: CONTINUATION
    c.max_outbound_frame_size = 16384
    big = hdrs + [("x-pad-%d" % i, "v" * 200) for i in range(120)]
    c.send_headers(1, big, end_stream=False)
    c.send_data(1, msg, end_stream=True)
    out.append(c.data_to_send())

    c = new()  # rapid reset
    for sid in range(1, 40, 2):
        c.send_headers(sid, hdrs)
        c.reset_stream(sid)
    out.append(c.data_to_send())

    c = new()  # a Start message split over DATA frames, deadline, client trailers
    start = pb.StartRequest(command=pb.Command(path="/bin/true", args=["a" * 3000]),
                            tags=["t"]).SerializeToString()
    body = b"\x00" + len(start).to_bytes(4, "big") + start
    c.send_headers(1, [(k, v if k != ":path" else "/runrpc.v1.Jobs/Start") for k, v in hdrs]
                   + [("grpc-timeout", "1S"), ("authorization", "Bearer rr_x")])
    for i in range(0, len(body), 1000):
        c.send_data(1, body[i:i + 1000])
    c.send_headers(1, [("x-trailer", "1")], end_stream=True)
    out.append(c.data_to_send())

    c = new()  # bad requests: GET, unknown path, wrong content-type, compressed flag
    c.send_headers(1, [(":method", "GET")] + hdrs[1:], end_stream=True)
    c.send_headers(3, [(k, v if k != ":path" else "/no.Such/Method") for k, v in hdrs])
    c.send_data(3, msg, end_stream=True)
    c.send_headers(5, [(k, v if k != "content-type" else "text/plain") for k, v in hdrs])
    c.send_data(5, msg, end_stream=True)
    c.send_headers(7, hdrs + [("grpc-encoding", "gzip")])
    c.send_data(7, b"\x01\x00\x00\x00\x00", end_stream=True)
    c.increment_flow_control_window(1 << 20)
    out.append(c.data_to_send())
    return out


def main():
    rund = os.environ.get("RUND") or os.path.join(ROOT, "build-asan", "src", "rund", "rund")
    tmp = tempfile.mkdtemp(prefix="rr-corpus-")
    state = os.path.join(tmp, "state")
    sock = os.path.join(tmp, "rund.sock")
    proxy = os.path.join(tmp, "proxy.sock")
    p = subprocess.Popen([rund, "--listen", "unix:" + sock, "--state-dir", state,
                          "--retention", "1h"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "err"), "wb"))
    try:
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        rec = Recorder(proxy, sock)
        grpcio_sessions("unix:" + proxy)
        time.sleep(0.5)
        for s in rec.sessions:
            if s:
                put("h2_server", bytes(s))
        for s in h2_sessions():
            put("h2_server", s)
        # request messages as grpcio encodes them
        reqs = [("Start", pb.StartRequest(command=pb.Command(path="/bin/echo", args=["hi"],
                                                             env={"K": "v"}, workdir="/"),
                                          tags=["a", "b"], timeout_ms=1000,
                                          limits=pb.Limits(cpu=pb.CpuMax(quota_us=20000),
                                                           memory_max=1 << 26, pids_max=5,
                                                           io=[pb.IoMax(device="", rbps=1 << 20,
                                                                        wiops=100)]))),
                ("Status", pb.StatusRequest(job_id="01HZX3NDEKTSV4RRFFQ69G5FAV")),
                ("List", pb.ListRequest(state=2, tag="a", page_size=10,
                                        page_token="01HZX3NDEKTSV4RRFFQ69G5FAV")),
                ("Signal", pb.SignalRequest(job_id="01HZX3NDEKTSV4RRFFQ69G5FAV", name="SIGRTMIN+2")),
                ("Signal", pb.SignalRequest(job_id="01HZX3NDEKTSV4RRFFQ69G5FAV", number=15)),
                ("Wait", pb.WaitRequest(job_id="01HZX3NDEKTSV4RRFFQ69G5FAV")),
                ("Stop", pb.StopRequest(job_id="01HZX3NDEKTSV4RRFFQ69G5FAV", grace_ms=5)),
                ("Logs", pb.LogsRequest(job_id="01HZX3NDEKTSV4RRFFQ69G5FAV", follow=True,
                                        stream=2, stdout_offset=5, stderr_offset=7)),
                ("Exec", pb.ExecRequest(start=pb.ExecStart(command=pb.Command(path="/bin/cat"),
                                                           timeout_ms=5))),
                ("Exec", pb.ExecRequest(stdin=b"data")),
                ("Exec", pb.ExecRequest(signal=2))]
        for name, m in reqs:
            put("request", bytes([METHOD_BYTE[name]]) + m.SerializeToString())
        # job.json files rund wrote, its token file line, its certificates
        jobs = os.path.join(state, "jobs")
        for j in sorted(os.listdir(jobs))[:6]:
            with open(os.path.join(jobs, j, "job.json"), "rb") as f:
                put("job_json", f.read())
        env = dict(os.environ)
        subprocess.run([rund, "tokens", "create", "alice", "--state-dir", state],
                       check=True, stdout=subprocess.DEVNULL, env=env)
        subprocess.run([rund, "tokens", "create", "ci-bot@example.com", "--state-dir", state],
                       check=True, stdout=subprocess.DEVNULL, env=env)
        with open(os.path.join(state, "tokens"), "rb") as f:
            put("tokens", b"# tokens\n\n" + f.read())
        tls = os.path.join(state, "tls")
        for name in sorted(os.listdir(tls)) if os.path.isdir(tls) else []:
            if name.endswith(".pem") or name.endswith(".crt"):
                der = subprocess.run(["openssl", "x509", "-in", os.path.join(tls, name),
                                      "-outform", "DER"], capture_output=True)
                if der.returncode == 0:
                    put("cert_san", der.stdout)
        key = os.path.join(tmp, "k.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-subj", "/CN=fuzz",
                        "-days", "1", "-addext",
                        "subjectAltName=DNS:admin.example.com,URI:spiffe://a/b,IP:127.0.0.1,"
                        "IP:::1,email:root@example.com,DNS:*.x.test,otherName:1.2.3.4;UTF8:x",
                        "-outform", "DER", "-out", os.path.join(tmp, "c.der")],
                       check=True, capture_output=True)
        with open(os.path.join(tmp, "c.der"), "rb") as f:
            put("cert_san", f.read())
    finally:
        p.terminate()
        p.wait(timeout=20)
        shutil.rmtree(tmp, ignore_errors=True)
    put("secrets_acl", b"# who may use which secret\ndb uid:1000\ndb token:alice\n"
        b"deploy-key san:dns:ci.example.com\n\napi\tsan:uri:spiffe://x/y\n")
    put("secrets_acl", b"db uid:0\r\nDB san:email:a@b.c\n# comment\nx san:ip:::1\n")
    for i, v in enumerate([b"\x00512M", b"\x001.5GiB", b"\x0010k", b"\x01100", b"\x020.5",
                           b"\x0250%", b"\x0250000/100000", b"\x031.5", b"\x03500ms",
                           b"\x037d", b"\x0310s", b"\x042\x010.5", b"\x0410M",
                           b"\x09/dev/sda=10M\x018:0=5M\x01100"]):
        put("runctl_flags", v)


if __name__ == "__main__":
    main()

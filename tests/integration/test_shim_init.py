"""runrpc as init (--init: the same code as PID 1, as a child subreaper):
serves on listeners named by flags or RUNRPC_LISTEN, reaps orphans,
forwards signals to its children and never exits on its own; listeners'
admission: unix peers root or runrpc's uid, TCP only with TLS client
certificates or a bearer token (h2c on loopback), never plain TCP."""

import os
import re
import shutil
import signal
import subprocess
import time

import grpc
import pytest

from conftest import RUND, SANITIZER_RE, pid_alive, short_tmpdir, wait_pid_gone
from shim_helpers import RUNRPC, children_of, cpb, cpb_grpc, rpb, rpb_grpc, health_pb, health_grpc
import tls_testcerts


class Init:
    def __init__(self, args, env_extra=None, dir=None):
        self.dir = dir or short_tmpdir("rr-init-")
        os.chmod(self.dir, 0o755)
        self.stderr_path = os.path.join(self.dir, "stderr")
        env = dict(os.environ)
        env.update(env_extra or {})
        with open(self.stderr_path, "wb") as errf:
            self.proc = subprocess.Popen([RUNRPC, "--init"] + args, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=errf, env=env,
                                         start_new_session=True)

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def address(self, n=1, timeout=20):
        """The n-th "listening" address runrpc logged."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            found = re.findall(r'msg="listening" addr="([^"]+)"', self.stderr())
            if len(found) >= n:
                return found[n - 1]
            assert self.proc.poll() is None, self.stderr()
            time.sleep(0.02)
        raise AssertionError("runrpc did not listen: " + self.stderr())

    def stop(self):
        """Init never exits on its own: SIGKILL it, then check its stderr."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=20)
        text = self.stderr()
        shutil.rmtree(self.dir, ignore_errors=True)
        assert not SANITIZER_RE.search(text), text[-6000:]
        return text


@pytest.fixture
def unix_init():
    d = short_tmpdir("rr-init-")
    sock = os.path.join(d, "s.sock")
    i = Init(["--listen", "unix:" + sock], dir=d)
    i.address()
    i.sock = sock
    i.channel = grpc.insecure_channel("unix:" + sock)
    i.runner = rpb_grpc.RunnerStub(i.channel)
    yield i
    i.channel.close()
    i.stop()


def test_init_serves_a_unix_listener_and_survives_its_clients(unix_init):
    info = unix_init.runner.Info(rpb.InfoRequest(), timeout=30)
    assert info.pid == unix_init.proc.pid
    unix_init.channel.close()
    time.sleep(0.5)
    assert unix_init.proc.poll() is None  # init serves on
    ch = grpc.insecure_channel("unix:" + unix_init.sock)
    assert rpb_grpc.RunnerStub(ch).Info(rpb.InfoRequest(), timeout=30).pid == info.pid
    ch.close()


def test_init_reaps_orphans(unix_init):
    r = unix_init.runner.Spawn(rpb.SpawnRequest(argv=["sh", "-c", "sleep 1 & sleep 1 & exit 0"]),
                               timeout=30)
    unix_init.runner.Wait(rpb.WaitRequest(handle=r.handle), timeout=30)
    orphans = children_of(unix_init.proc.pid)  # the sleeps, now ours
    assert len(orphans) == 2, orphans
    for k in orphans:
        assert wait_pid_gone(k)
    time.sleep(0.5)
    assert children_of(unix_init.proc.pid) == []  # reaped, not zombies


def test_init_forwards_signals_and_stays(unix_init, tmp_path):
    f = tmp_path / "got"
    r = unix_init.runner.Spawn(rpb.SpawnRequest(argv=[
        "sh", "-c", "trap 'echo usr1 >> %s' USR1; trap 'echo term >> %s; exit 0' TERM; "
        "while :; do sleep 0.05; done" % (f, f)]), timeout=30)
    time.sleep(0.5)
    os.kill(unix_init.proc.pid, signal.SIGUSR1)
    end = time.monotonic() + 10
    while not (f.exists() and "usr1" in f.read_text()) and time.monotonic() < end:
        time.sleep(0.05)
    assert f.read_text() == "usr1\n"
    os.kill(unix_init.proc.pid, signal.SIGTERM)
    st = unix_init.runner.Wait(rpb.WaitRequest(handle=r.handle), timeout=30)
    assert st.code == 0 and f.read_text() == "usr1\nterm\n"
    time.sleep(0.3)
    assert unix_init.proc.poll() is None  # SIGTERM went to its children, not to it


def test_unix_listener_refuses_other_users(unix_init):
    # nothing of the tree is imported: it may sit in a directory uid 65534
    # cannot read (test.sh and CI checkouts in a 0700 temp dir); an empty
    # InfoRequest is zero bytes on the wire
    code = ("import grpc\n"
            "ch = grpc.insecure_channel('unix:%s')\n"
            "try:\n"
            "    ch.unary_unary('/runner.Runner/Info')(b'', timeout=20)\n"
            "    print('OK')\n"
            "except grpc.RpcError as e:\n"
            "    print(e.code().name, e.details())\n" % unix_init.sock)
    p = subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, timeout=60,
                       preexec_fn=lambda: (os.setgid(65534), os.setuid(65534)),
                       env=dict(os.environ), cwd="/")
    out = p.stdout.decode()
    assert out.startswith("PERMISSION_DENIED"), out + p.stderr.decode()
    assert "uid 65534 may not use this runrpc" in out


def test_listeners_from_the_environment():
    d = short_tmpdir("rr-init-")
    sock = os.path.join(d, "env.sock")
    i = Init([], env_extra={"RUNRPC_LISTEN": "unix:" + sock}, dir=d)
    try:
        assert i.address() == "unix:" + sock
        ch = grpc.insecure_channel("unix:" + sock)
        assert rpb_grpc.RunnerStub(ch).Info(rpb.InfoRequest(), timeout=30).pid == i.proc.pid
        ch.close()
    finally:
        i.stop()


@pytest.mark.parametrize("args,text", [
    (["--listen", "127.0.0.1:0"], "needs TLS"),
    (["--listen", "h2c:127.0.0.1:0"], "plaintext TCP needs --token-file"),
    (["--listen", "0.0.0.0:0", "--token-file", "/nonexistent"], "token file"),
    (["--listen"], "--listen needs a value"),
    (["--listen", "unix:/tmp/x", "echo"], "take no command"),
])
def test_tcp_is_never_served_unauthenticated(args, text):
    p = subprocess.run([RUNRPC] + args, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode in (1, 2), p
    assert text in p.stderr.decode(), p.stderr


def make_token(d, name="alice"):
    path = os.path.join(d, "tokens")
    p = subprocess.run([RUND, "tokens", "create", name, "--token-file", path],
                       capture_output=True, timeout=30, check=True)
    token = p.stdout.decode().split()[-1]
    assert token.startswith("rr_"), p.stdout
    return path, token


def test_h2c_with_a_token():
    d = short_tmpdir("rr-init-")
    tokens, token = make_token(d)
    i = Init(["--listen", "h2c:127.0.0.1:0", "--token-file", tokens], dir=d)
    try:
        addr = i.address()[len("h2c:"):]
        ch = grpc.insecure_channel(addr)
        stub = rpb_grpc.RunnerStub(ch)
        with pytest.raises(grpc.RpcError) as ei:
            stub.Info(rpb.InfoRequest(), timeout=30)
        assert ei.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as ei:
            stub.Info(rpb.InfoRequest(), timeout=30, metadata=[("authorization", "Bearer rr_x")])
        assert ei.value.code() == grpc.StatusCode.UNAUTHENTICATED
        md = [("authorization", "Bearer " + token)]
        assert stub.Info(rpb.InfoRequest(), timeout=30, metadata=md).pid == i.proc.pid
        # health needs no identity
        st = health_grpc.HealthStub(ch).Check(health_pb.HealthCheckRequest(), timeout=30)
        assert st.status == health_pb.HealthCheckResponse.SERVING
        ch.close()
    finally:
        i.stop()


def test_tls_with_client_certificates():
    d = short_tmpdir("rr-init-")
    pki = tls_testcerts.standard(d)
    i = Init(["--listen", "127.0.0.1:0", "--tls-cert", pki.path("server", "pem"),
              "--tls-key", pki.path("server", "key"), "--client-ca", pki.path("ca", "pem")],
             dir=d)
    try:
        addr = i.address()
        creds = grpc.ssl_channel_credentials(pki.read("ca", "pem"), pki.read("client", "key"),
                                             pki.read("client", "pem"))
        ch = grpc.secure_channel(addr, creds, options=[("grpc.ssl_target_name_override",
                                                        "localhost")])
        _, out, _, ex = None, b"", b"", None
        for m in cpb_grpc.CommanderStub(ch).Shell(iter([cpb.Command(argv=["echo", "tls"])]),
                                                 timeout=30):
            if m.WhichOneof("kind") == "stdout":
                out += m.stdout
            elif m.WhichOneof("kind") == "exit":
                ex = m.exit
        assert out == b"tls\n" and ex.code == 0
        ch.close()
        # no client certificate: the handshake is refused
        ch = grpc.secure_channel(addr, grpc.ssl_channel_credentials(pki.read("ca", "pem")),
                                 options=[("grpc.ssl_target_name_override", "localhost")])
        with pytest.raises(grpc.RpcError) as ei:
            rpb_grpc.RunnerStub(ch).Info(rpb.InfoRequest(), timeout=10)
        assert ei.value.code() == grpc.StatusCode.UNAVAILABLE
        ch.close()
    finally:
        i.stop()

"""Helpers for the runrpc shim tests: the binary, python stubs of its protos
(proto/shim/*.proto, generated once per session), and a socat bridge that
gives grpcio a unix socket whose one connection is runrpc's stdin/stdout.
"""

import os
import shutil
import subprocess
import sys
import time

import grpc

from conftest import ROOT, BUILD, SANITIZER_RE, gen_grpc_stubs, short_tmpdir

RUNRPC = os.environ.get("RUNRPC") or (
    os.path.join(os.path.dirname(os.environ["RUND"]), "runrpc")
    if os.environ.get("RUND") else os.path.join(BUILD, "src", "shim", "runrpc"))
SOCAT = shutil.which("socat")


os.environ.setdefault("RUNRPC", RUNRPC)
sys.path.insert(0, os.path.join(ROOT, "examples"))
from runrpc_shim import (M, STUB_DIR, ForkTunnel, fork_chain, close_chain,  # noqa: E402,F401
                         unix_listening)
G = gen_grpc_stubs(STUB_DIR)
health_pb, health_grpc = G["rr_health"]
refl_pb, refl_grpc = G["rr_reflection_v1alpha"]
refl1_pb, refl1_grpc = G["rr_reflection_v1"]
cpb, cpb_grpc = M["commander"], M["commander_grpc"]
lpb, lpb_grpc = M["loader"], M["loader_grpc"]
rpb, rpb_grpc = M["runner"], M["runner_grpc"]


class Bridge:
    """socat listening on a unix socket; its one connection runs runrpc with
    the connection on stdin/stdout (pipes=True: two pipes, else a socketpair)."""

    def __init__(self, pipes=True, env_extra=None):
        self.dir = short_tmpdir("rr-shim-")
        self.sock = os.path.join(self.dir, "s.sock")
        self.stderr_path = os.path.join(self.dir, "stderr")
        opts = ",pipes" if pipes else ""
        env = dict(os.environ)
        env.update(env_extra or {})
        with open(self.stderr_path, "wb") as errf:
            self.proc = subprocess.Popen(
                [SOCAT, "UNIX-LISTEN:%s" % self.sock, "EXEC:%s%s" % (RUNRPC, opts)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errf,
                env=env, start_new_session=True)
        end = time.monotonic() + 10
        while not unix_listening(self.sock):  # the file exists before listen()
            if time.monotonic() > end or self.proc.poll() is not None:
                raise AssertionError("socat did not listen: " + self.stderr_text())
            time.sleep(0.01)
        self.channel = grpc.insecure_channel("unix:" + self.sock)
        self.commander = cpb_grpc.CommanderStub(self.channel)
        self.loader = lpb_grpc.LoaderStub(self.channel)
        self.runner = rpb_grpc.RunnerStub(self.channel)

    def stderr_text(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def server_pid(self):
        """runrpc's pid: socat's child."""
        kids = children_of(self.proc.pid)
        assert len(kids) == 1, kids
        return kids[0]

    def close(self, check=True):
        self.channel.close()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("runrpc did not exit when its client went away")
        text = self.stderr_text()
        shutil.rmtree(self.dir, ignore_errors=True)
        if check:
            assert not SANITIZER_RE.search(text), text[-6000:]
        return text


def children_of(pid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        fields = st.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            out.append(int(d))
    return out


def shell(bridge, argv=None, sh=None, stdin=b"", timeout=30, **kw):
    """Run a command through Commander.Shell: (pid, stdout, stderr, exit)."""
    first = cpb.Command(argv=argv or [], shell=sh or "", stdin=stdin, **kw)
    pid, out, err, ex = None, b"", b"", None
    for m in bridge.commander.Shell(iter([first]), timeout=timeout):
        k = m.WhichOneof("kind")
        if k == "started":
            pid = m.started.pid
        elif k == "stdout":
            out += m.stdout
        elif k == "stderr":
            err += m.stderr
        elif k == "exit":
            ex = m.exit
    return pid, out, err, ex

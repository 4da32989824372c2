"""A small python grpcio client library for runrpc (the shim), shared by the
examples and the tests: stubs generated at run time from proto/shim/*.proto
(grpc_tools, as Debian's python3-grpc-tools ships it), a socat bridge that
serves runrpc over a pipe on a unix socket, and ForkTunnel, which turns a
runner.Runner/Fork call into a grpcio channel to the forked child.

Run with /usr/bin/python3 (Debian's grpcio). RUNRPC names the binary
(default: runrpc in PATH).
"""

import atexit
import importlib
import itertools
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_DIR = os.environ.get("RUNRPC_PROTO_DIR") or os.path.join(HERE, "..", "proto")
RUNRPC = os.environ.get("RUNRPC") or shutil.which("runrpc") or "runrpc"


def gen_stubs():
    """(dir, {"commander": pb2, "commander_grpc": pb2_grpc, ...})"""
    from grpc_tools import protoc
    out = tempfile.mkdtemp(prefix="rr-shim-stubs-")
    atexit.register(shutil.rmtree, out, True)
    wkt = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    files = [os.path.join(PROTO_DIR, "shim", n + ".proto")
             for n in ("commander", "loader", "runner")]
    rc = protoc.main(["grpc_tools.protoc", "-I" + PROTO_DIR, "-I" + wkt,
                      "--python_out=" + out, "--grpc_python_out=" + out] + files)
    if rc != 0:
        raise RuntimeError("grpc_tools.protoc failed on proto/shim (rc %d)" % rc)
    sys.path.insert(0, out)
    mods = {}
    for n in ("commander", "loader", "runner"):
        mods[n] = importlib.import_module("shim.%s_pb2" % n)
        mods[n + "_grpc"] = importlib.import_module("shim.%s_pb2_grpc" % n)
    return out, mods


STUB_DIR, M = gen_stubs()
cpb, cpb_grpc = M["commander"], M["commander_grpc"]
lpb, lpb_grpc = M["loader"], M["loader_grpc"]
rpb, rpb_grpc = M["runner"], M["runner_grpc"]


def unix_listening(path):
    """Whether a unix socket bound to path listens (/proc/net/unix
    __SO_ACCEPTCON): socat's socket file exists before its listen()."""
    with open("/proc/net/unix") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 8 and parts[7] == path and int(parts[3], 16) & 0x10000:
                return True
    return False


class SocatBridge:
    """`socat UNIX-LISTEN:sock EXEC:runrpc,pipes`: the one connection to sock
    is runrpc's stdin/stdout (two pipes; pipes=False: a socketpair)."""

    def __init__(self, dir, pipes=True, stderr=None, env=None, runrpc=None):
        self.sock = os.path.join(dir, "runrpc.sock")
        opts = ",pipes" if pipes else ""
        self.proc = subprocess.Popen(
            ["socat", "UNIX-LISTEN:%s" % self.sock, "EXEC:%s%s" % (runrpc or RUNRPC, opts)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, env=env,
            start_new_session=True)
        end = time.monotonic() + 10
        while not unix_listening(self.sock):
            if time.monotonic() > end or self.proc.poll() is not None:
                raise RuntimeError("socat did not listen on %s" % self.sock)
            time.sleep(0.01)
        self.addr = "unix:" + self.sock

    def wait(self, timeout=20):
        return self.proc.wait(timeout=timeout)


class Stubs:
    def __init__(self, channel):
        self.channel = channel
        self.commander = cpb_grpc.CommanderStub(channel)
        self.loader = lpb_grpc.LoaderStub(channel)
        self.runner = rpb_grpc.RunnerStub(channel)


_fork_ids = itertools.count()


class ForkTunnel:
    """runner.Runner/Fork as a grpcio channel: a unix socket in dir whose
    one connection is carried by the Fork call (request data out, response
    data back). .pid and .depth come from the first answer."""

    def __init__(self, runner_stub, dir, timeout=60):
        self._q = queue.Queue()
        self.path = os.path.join(dir, "fork-%d-%d.sock" % (os.getpid(), next(_fork_ids)))
        self._ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._ls.bind(self.path)
        self._ls.listen(1)

        def requests():
            yield rpb.ForkRequest()
            while True:
                b = self._q.get()
                if b is None:
                    return
                yield rpb.ForkRequest(data=b)

        self.call = runner_stub.Fork(requests(), timeout=timeout)
        first = next(self.call)
        self.pid, self.depth = first.pid, first.depth
        self.error = None
        self._conn = None
        self._accepted = threading.Event()
        self._threads = [threading.Thread(target=self._up, daemon=True),
                         threading.Thread(target=self._down, daemon=True)]
        for t in self._threads:
            t.start()
        self.channel = grpc.insecure_channel("unix:" + self.path)
        self.runner = rpb_grpc.RunnerStub(self.channel)
        self.commander = cpb_grpc.CommanderStub(self.channel)
        self.loader = lpb_grpc.LoaderStub(self.channel)

    def _up(self):  # client -> child
        try:
            conn, _ = self._ls.accept()
        except OSError:  # closed before grpc connected
            self._q.put(None)
            self._accepted.set()
            return
        self._conn = conn
        self._accepted.set()
        while True:
            try:
                b = conn.recv(65536)
            except OSError:
                b = b""
            if not b:
                self._q.put(None)
                return
            self._q.put(b)

    def _down(self):  # child -> client
        self._accepted.wait()
        if not self._conn:
            return
        try:
            for m in self.call:
                if m.data:
                    self._conn.sendall(m.data)
        except Exception as e:  # noqa: BLE001 - reported by close()
            self.error = e
        try:
            self._conn.shutdown(2)
        except OSError:
            pass

    def close(self, timeout=30):
        self.channel.close()
        if not self._accepted.wait(0.5):
            self._ls.shutdown(socket.SHUT_RDWR)
        for t in self._threads:
            t.join(timeout)
        self._ls.close()
        if self._conn:
            self._conn.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass
        return self.error



def fork_chain(root_runner, depth, dir):
    """depth nested Forks, each through the one before: the tunnels, root's
    child first."""
    tunnels = []
    runner = root_runner
    for _ in range(depth):
        t = ForkTunnel(runner, dir)
        tunnels.append(t)
        runner = t.runner
    return tunnels


def close_chain(tunnels):
    for t in reversed(tunnels):
        t.close()

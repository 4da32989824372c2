"""Fixtures for the end-to-end tests: a real rund on a unix socket in a temp
dir (own state dir), python grpcio stubs generated from our .proto at session
start, and a runctl runner. Binaries come from $RUND / $RUNCTL (test.sh points
them at a temporary install), else from build/.

Every test has a timeout (default 60 s, @pytest.mark.timeout(N) to change).
"""

import contextlib
import faulthandler
import importlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import grpc
import pytest

ROOT = os.environ.get("RUNRPC_SOURCE_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
PROTO_DIR = os.path.join(ROOT, "proto")
BUILD = os.path.join(ROOT, "build")
RUND = os.environ.get("RUND") or os.path.join(BUILD, "src", "rund", "rund")
RUNCTL = os.environ.get("RUNCTL") or os.path.join(BUILD, "src", "runctl", "runctl")
# runproc: $RUNPROC, else next to $RUND (an install), else the build tree
RUNPROC = os.environ.get("RUNPROC") or (
    os.path.join(os.path.dirname(os.environ["RUND"]), "runproc")
    if os.environ.get("RUND") else os.path.join(BUILD, "src", "runproc", "runproc"))

DEFAULT_TIMEOUT = 60
ULID_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
# what a sanitizer prints when it finds something
SANITIZER_RE = re.compile(
    r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (Address|Undefined|Leak)")
MiB = 1024 * 1024

# --------------------------------------------------------------------------
# stubs


def _gen_stubs():
    from grpc_tools import protoc
    out = tempfile.mkdtemp(prefix="rr-stubs-")
    # grpc_tools ships google/protobuf/*.proto next to its module
    wkt = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    rc = protoc.main(["grpc_tools.protoc", "-I" + PROTO_DIR, "-I" + wkt,
                      "--python_out=" + out, "--grpc_python_out=" + out,
                      os.path.join(PROTO_DIR, "runrpc", "v1", "jobs.proto")])
    if rc != 0:
        raise RuntimeError("grpc_tools.protoc failed on jobs.proto (rc %d)" % rc)
    sys.path.insert(0, out)
    pb = importlib.import_module("runrpc.v1.jobs_pb2")
    pbg = importlib.import_module("runrpc.v1.jobs_pb2_grpc")
    return out, pb, pbg


_STUB_DIR, pb, pb_grpc = _gen_stubs()


def gen_grpc_stubs(out):
    """Python stubs of grpc.health.v1 and grpc.reflection.v1/v1alpha in OUT,
    imported: {"rr_health": (pb2, pb2_grpc), "rr_reflection_v1": ...,
    "rr_reflection_v1alpha": ...}. The .proto files are copied under flat
    names first: a python package named "grpc" would shadow grpcio itself
    (and a module imported twice is the same one: no duplicate symbols)."""
    from grpc_tools import protoc
    src = os.path.join(out, "grpcsrc")
    os.mkdir(src)
    protos = {"rr_health.proto": "grpc/health/v1/health.proto",
              "rr_reflection_v1.proto": "grpc/reflection/v1/reflection.proto",
              "rr_reflection_v1alpha.proto": "grpc/reflection/v1alpha/reflection.proto"}
    for flat, path in protos.items():
        shutil.copy(os.path.join(PROTO_DIR, path), os.path.join(src, flat))
    rc = protoc.main(["grpc_tools.protoc", "-I" + src, "--python_out=" + out,
                      "--grpc_python_out=" + out] + [os.path.join(src, p) for p in protos])
    if rc != 0:
        raise RuntimeError("grpc_tools.protoc failed on the grpc protos (rc %d)" % rc)
    if out not in sys.path:
        sys.path.insert(0, out)
    return {n: (importlib.import_module(n + "_pb2"), importlib.import_module(n + "_pb2_grpc"))
            for n in ("rr_health", "rr_reflection_v1", "rr_reflection_v1alpha")}


def pytest_unconfigure(config):
    shutil.rmtree(_STUB_DIR, ignore_errors=True)


def pytest_configure(config):
    config.addinivalue_line("markers", "timeout(seconds): per-test time limit")


# --------------------------------------------------------------------------
# per-test timeout without plugins: SIGALRM raises in the test; a hard
# faulthandler exit backs it up if the test is stuck in C code


class RunTimeout(Exception):
    pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    m = item.get_closest_marker("timeout")
    secs = int(m.args[0]) if m else DEFAULT_TIMEOUT

    def on_alarm(signum, frame):
        raise RunTimeout("test exceeded its %d s timeout" % secs)

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(secs)
    faulthandler.dump_traceback_later(secs + 60, exit=True)
    try:
        yield
    finally:
        signal.alarm(0)
        faulthandler.cancel_dump_traceback_later()
        signal.signal(signal.SIGALRM, old)


# --------------------------------------------------------------------------
# rund


def short_tmpdir(prefix):
    # unix socket paths are limited to 108 bytes: stay short, under /tmp
    return tempfile.mkdtemp(prefix=prefix, dir="/tmp")


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for pid %d" % pid)


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def pid_alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False  # gone, or reaped while we read it
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for(pred, timeout=20, step=0.05):
    """Poll pred until it is true (True) or timeout seconds passed (its
    last answer)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


def job_status(stub, job_id):
    return stub.Status(pb.StatusRequest(job_id=job_id), timeout=10).status


def wait_pid_gone(pid, timeout=15.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


class Rund:
    """One rund process listening on unix:<dir>/rund.sock with <dir>/state."""

    def __init__(self, base=None, extra_args=(), env_extra=None):
        self.base = base or short_tmpdir("rr-")
        self.sock = os.path.join(self.base, "rund.sock")
        self.addr = "unix:" + self.sock
        self.state = os.path.join(self.base, "state")
        self.extra_args = list(extra_args)
        self.env_extra = dict(env_extra or {})
        self.proc = None
        self.runs = 0
        self._channels = []

    @property
    def pid(self):
        return self.proc.pid

    def start(self, wait=True):
        self.runs += 1
        self.stderr_path = os.path.join(self.base, "rund.%d.stderr" % self.runs)
        env = dict(os.environ)
        env.update(self.env_extra)
        args = [RUND, "--listen", self.addr, "--state-dir", self.state] + self.extra_args
        with open(self.stderr_path, "wb") as errf:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                         stdout=errf, stderr=errf, env=env,
                                         start_new_session=True)
        if wait:
            self.wait_ready()
        return self

    def stderr_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def wait_ready(self, timeout=30.0):
        end = time.monotonic() + timeout
        last = None
        while time.monotonic() < end:
            rc = self.proc.poll()
            if rc is not None:
                raise AssertionError("rund exited with %d before it answered:\n%s"
                                     % (rc, self.stderr_text()[-4000:]))
            if os.path.exists(self.sock):
                ch = grpc.insecure_channel(self.addr)
                try:
                    self.ready_probe(ch)
                    return
                except grpc.RpcError as e:
                    last = e
                finally:
                    ch.close()
            time.sleep(0.05)
        raise AssertionError("rund did not answer %s within %.0f s (last: %r)\n%s"
                             % (self.READY_CALL, timeout, last, self.stderr_text()[-4000:]))

    READY_CALL = "List"

    def ready_probe(self, ch):
        """Raises grpc.RpcError until rund serves (subclasses ask otherwise)."""
        pb_grpc.JobsStub(ch).List(pb.ListRequest(), timeout=2)

    def channel(self, **opts):
        options = [("grpc.max_receive_message_length", 64 * MiB),
                   ("grpc.enable_retries", 0)]
        options += list(opts.items())
        ch = grpc.insecure_channel(self.addr, options=options)
        self._channels.append(ch)
        return ch

    def stub(self, **opts):
        return pb_grpc.JobsStub(self.channel(**opts))

    def assert_clean_stderr(self):
        text = self.stderr_text()
        m = SANITIZER_RE.search(text)
        assert not m, "sanitizer report in rund's stderr:\n" + text[max(0, m.start() - 200):][:8000]

    def stop(self, timeout=20.0):
        """SIGTERM; assert exit 0 and no sanitizer report. Returns the stderr text."""
        for ch in self._channels:
            ch.close()
        self._channels = []
        if self.proc is None:
            return ""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("rund did not exit within %.0f s of SIGTERM\n%s"
                                     % (timeout, self.stderr_text()[-4000:]))
        rc = self.proc.returncode
        self.assert_clean_stderr()
        assert rc == 0, "rund exited %d after SIGTERM:\n%s" % (rc, self.stderr_text()[-4000:])
        return self.stderr_text()

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def rund_cgroup_name(state_dir):
    """rund's cgroup subtree for a state dir (src/rund/setup.c: "runrpc-" and
    48 bits of the FNV-1a hash of its real path)."""
    h = 0xcbf29ce484222325
    for b in os.path.realpath(state_dir).encode():
        h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    return "runrpc-%012x" % (h & 0xffffffffffff)


def remove_rund_cgroups(state_dir, timeout=10.0):
    """After a test's rund is gone: what it left in its cgroup subtree (the
    job cgroups of jobs it left running, by design kept for the next rund of
    the same state dir, which a test's temporary one never gets): the
    processes of those jobs are killed by pid, the directories removed."""
    name = rund_cgroup_name(state_dir)
    tops = []
    for h in os.listdir("/sys/fs/cgroup"):
        for root, dirs, _ in os.walk(os.path.join("/sys/fs/cgroup", h)):
            if name in dirs:
                tops.append(os.path.join(root, name))
                dirs[:] = []
            elif root.count("/") > 8:
                dirs[:] = []
    end = time.monotonic() + timeout
    for top in tops:
        for d, _, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
            while True:
                try:
                    with open(os.path.join(d, "cgroup.procs")) as f:
                        pids = [int(x) for x in f.read().split()]
                except OSError:
                    pids = []
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                try:
                    os.rmdir(d)
                    break
                except OSError:
                    if time.monotonic() > end:
                        break
                    time.sleep(0.05)


@pytest.fixture
def rund_factory():
    """Make rund instances (not started); all are stopped after the test,
    their jobs' leftover cgroups removed."""
    made = []

    def make(**kw):
        r = Rund(**kw)
        made.append(r)
        return r

    yield make
    errors = []
    for r in made:
        try:
            r.stop()
        except AssertionError as e:
            errors.append(str(e))
        finally:
            r.kill()
    for r in made:
        if r.proc is not None and os.path.isdir(r.state):
            remove_rund_cgroups(r.state)
        shutil.rmtree(r.base, ignore_errors=True)
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)


@pytest.fixture
def rund(rund_factory):
    return rund_factory().start()


@pytest.fixture
def stub(rund):
    return rund.stub()


# --------------------------------------------------------------------------
# runctl


class CtlResult:
    def __init__(self, args, rc, out, err):
        self.args, self.rc, self.out, self.err = args, rc, out, err

    @property
    def text(self):
        return self.out.decode("utf-8", "replace")

    @property
    def errtext(self):
        return self.err.decode("utf-8", "replace")

    def __repr__(self):
        return "runctl %r -> rc=%d stdout=%r stderr=%r" % (
            self.args, self.rc, self.out[:2000], self.err[:2000])


def check_no_sanitizer(err, who):
    text = err.decode("utf-8", "replace") if isinstance(err, bytes) else err
    m = SANITIZER_RE.search(text)
    assert not m, "sanitizer report from %s:\n%s" % (who, text[max(0, m.start() - 200):][:8000])


class Ctl:
    def __init__(self, addr):
        self.addr = addr

    def __call__(self, *args, input=b"", timeout=30, addr=True, env=None):
        argv = [RUNCTL] + (["--addr", self.addr] if addr and self.addr else []) + list(args)
        e = dict(os.environ)
        if env:
            e.update(env)
        p = subprocess.run(argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, env=e)
        check_no_sanitizer(p.stderr, "runctl %r" % (args,))
        return CtlResult(args, p.returncode, p.stdout, p.stderr)

    def popen(self, *args, **kw):
        argv = [RUNCTL, "--addr", self.addr] + list(args)
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        return subprocess.Popen(argv, **kw)


@pytest.fixture
def ctl(rund):
    return Ctl(rund.addr)


@pytest.fixture
def ctl_noaddr():
    return Ctl(None)


# --------------------------------------------------------------------------
# helpers shared by the tests


def cmd(path, *args, env=None, workdir=""):
    return pb.Command(path=path, args=list(args), env=env or {}, workdir=workdir)


def start(stub, path, *args, tags=(), timeout_ms=None, env=None, workdir=""):
    req = pb.StartRequest(command=cmd(path, *args, env=env, workdir=workdir), tags=list(tags))
    if timeout_ms is not None:
        req.timeout_ms = timeout_ms
    resp = stub.Start(req, timeout=30)
    assert ULID_RE.match(resp.job_id), "job id %r is not a ULID" % resp.job_id
    return resp


def wait(stub, job_id, timeout=30):
    return stub.Wait(pb.WaitRequest(job_id=job_id), timeout=timeout).status


def logs(stub, job_id, follow=False, stream=0, timeout=30, **kw):
    """(stdout bytes, stderr bytes, [responses])"""
    out, err, msgs = bytearray(), bytearray(), []
    for r in stub.Logs(pb.LogsRequest(job_id=job_id, follow=follow, stream=stream, **kw),
                       timeout=timeout):
        msgs.append(r)
        if r.stream == pb.STREAM_STDOUT:
            assert r.offset == len(out) + kw.get("stdout_offset", 0), "stdout offset gap"
            out += r.data
        elif r.stream == pb.STREAM_STDERR:
            assert r.offset == len(err) + kw.get("stderr_offset", 0), "stderr offset gap"
            err += r.data
        else:
            raise AssertionError("log chunk with stream %r" % r.stream)
    return bytes(out), bytes(err), msgs


def exec_call(stub, path, *args, stdin_chunks=(), close=True, env=None, workdir="",
              timeout=60, timeout_ms=None, sandbox=None):
    """Run one Exec. Returns (pid, stdout, stderr, ExitStatus, messages)."""
    def reqs():
        st = pb.ExecStart(command=cmd(path, *args, env=env, workdir=workdir))
        if timeout_ms is not None:
            st.timeout_ms = timeout_ms
        if sandbox is not None:
            st.sandbox.CopyFrom(sandbox)
        yield pb.ExecRequest(start=st)
        for c in stdin_chunks:
            yield pb.ExecRequest(stdin=c)
        if close:
            yield pb.ExecRequest(close_stdin=True)

    pid, out, err, ex, msgs = None, bytearray(), bytearray(), None, []
    for r in stub.Exec(reqs(), timeout=timeout):
        kind = r.WhichOneof("msg")
        msgs.append(kind)
        assert ex is None, "message %r after the exit status" % kind
        if kind == "started_pid":
            assert pid is None and not out and not err, "started_pid not first"
            pid = r.started_pid
        elif kind == "stdout":
            out += r.stdout
        elif kind == "stderr":
            err += r.stderr
        elif kind == "exit":
            ex = r.exit
    assert msgs and msgs[0] == "started_pid", "first Exec message is %r" % (msgs[:1],)
    assert ex is not None, "Exec stream ended without an exit status"
    return pid, bytes(out), bytes(err), ex, msgs


@contextlib.contextmanager
def rund_on_small_tmpfs(rund_factory, size="4m"):
    """A started rund whose state dir is a tmpfs of that size (a disk to
    fill; root only), killed and unmounted at the end."""
    r = rund_factory()
    os.makedirs(r.state)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % size, "tmpfs", r.state],
                   check=True)
    try:
        r.start()
        yield r
    finally:
        r.kill()
        subprocess.run(["umount", "-l", r.state])


def rpc_error(fn, *a, **kw):
    with pytest.raises(grpc.RpcError) as ei:
        fn(*a, **kw)
    return ei.value


PY = "/usr/bin/python3"

# writes all 256 byte values to stdout and reversed to stderr, `rounds` times,
# flushing each so the two streams interleave in time
BYTES_SCRIPT = r"""
import os, sys
rounds = int(sys.argv[1])
a = bytes(range(256)); b = a[::-1]
for i in range(rounds):
    os.write(1, a); os.write(2, b + bytes([i % 256]))
"""


def bytes_expected(rounds):
    a = bytes(range(256))
    return a * rounds, b"".join(a[::-1] + bytes([i % 256]) for i in range(rounds))


def unused_ulid():
    # a valid ULID (Crockford base32, 26 chars) that no rund made
    return "01ARZ3NDEKTSV4RRFFQ69G5FAV"


def raw_connect(path, timeout=10):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    return s

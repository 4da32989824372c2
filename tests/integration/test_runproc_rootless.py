"""runproc by a caller that is not root (uid 65534, `spec --rootless`):
create, exec into the created and the running container, start, state,
delete. The container's init is never dumpable (a copy of runproc's
memory), so the caller cannot open /proc/PID/ns of it: exec gets the
namespaces from the init over ROOT/ID/ns.sock, which answers only the uid
that made the container."""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import RUNPROC, SANITIZER_RE
from test_runproc import alive, busybox_root, ns_pids, proc_state

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the test switches to uid 65534")

NOBODY = 65534


def as_nobody():
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


class Rootless:
    """A busybox bundle, its config from `runproc spec --rootless` and a
    state root, all owned by uid 65534 in a directory it can reach."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="rr-rootless-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.bundle = os.path.join(self.dir, "b")
        self.root = os.path.join(self.dir, "state")
        busybox_root(os.path.join(self.bundle, "rootfs"))
        for d, _, files in os.walk(self.dir):
            os.lchown(d, NOBODY, NOBODY)
            for f in files:
                os.lchown(os.path.join(d, f), NOBODY, NOBODY)
        r = self("spec", "--rootless", "--bundle", self.bundle, root=False)
        if r.returncode != 0 and "ermission denied" in r.stderr:
            pytest.skip("uid 65534 cannot run %s (%s)" % (RUNPROC, r.stderr.strip()))
        assert r.returncode == 0, r.stderr
        path = os.path.join(self.bundle, "config.json")
        with open(path) as f:
            cfg = json.load(f)
        cfg["process"]["args"] = ["sleep", "1000"]
        with open(path, "w") as f:
            json.dump(cfg, f)

    def __call__(self, *args, root=True, check=None, env=None):
        """runproc as uid 65534; its output in files (a created container
        keeps runproc's stdio)."""
        argv = [RUNPROC] + (["--root", self.root] if root else []) + list(args)
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            p = subprocess.run(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                               cwd=self.bundle, preexec_fn=as_nobody, timeout=60,
                               env=dict(os.environ, **(env or {})))
            out.seek(0)
            err.seek(0)
            r = subprocess.CompletedProcess(argv, p.returncode, out.read(), err.read())
        assert not SANITIZER_RE.search(r.stderr), r.stderr
        if check is True:
            assert r.returncode == 0, (args, r.stderr)
        elif check is not None:
            assert r.returncode == 1 and check in r.stderr, (args, r.returncode, r.stderr)
        return r

    def state(self, cid):
        return json.loads(self("state", cid, check=True).stdout)

    def python(self, code):
        """Python as uid 65534 (nothing of the tree imported)."""
        p = subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True,
                           preexec_fn=as_nobody, cwd="/", timeout=60)
        assert p.returncode == 0, p.stderr
        return p.stdout

    def close(self):
        if os.path.isdir(self.root):
            for cid in os.listdir(self.root):
                self("delete", "--force", cid)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def rl():
    r = Rootless()
    yield r
    r.close()


def ns_ino(pid, kind):
    return os.stat("/proc/%d/ns/%s" % (pid, kind)).st_ino


def test_rootless_create_exec_start_exec_delete(rl, tmp_path):
    rl("create", "c", check=True)
    init = rl.state("c")["pid"]
    assert rl.state("c")["status"] == "created"
    # the premise: the caller may not look at the init's namespaces
    out = rl.python("import os\ntry:\n    os.stat('/proc/%d/ns/user')\n    print('open')\n"
                    "except PermissionError:\n    print('denied')\n" % init)
    assert out.strip() == "denied"
    # exec while created: the waiting command answers for the init
    r = rl("exec", "c", "sh", "-c", "id -u; cat /proc/self/uid_map", check=True)
    assert r.stdout.split() == ["0", "0", str(NOBODY), "1"]
    rl("start", "c", check=True)
    assert rl.state("c")["status"] == "running"
    r = rl("exec", "c", "sh", "-c", "cat /proc/1/comm; hostname; ls /; exit 3")
    assert r.returncode == 3, r.stderr
    out = r.stdout.split()
    assert out[:2] == ["sandbox-init", "runproc"] and "bin" in out and "proc" in out
    # --detach and --pid-file: the command is in every namespace of the container
    pidfile = os.path.join(rl.dir, "e.pid")
    rl("exec", "-d", "--pid-file", pidfile, "c", "sleep", "30", check=True)
    pid = int(open(pidfile).read())
    cmd = int(open("/proc/%d/task/%d/children" % (pid, pid)).read().split()[0])
    for kind in ("user", "mnt", "pid", "uts", "ipc", "net", "cgroup"):
        assert ns_ino(cmd, kind) == ns_ino(init, kind), kind
    assert os.stat("/proc/%d" % cmd).st_uid == NOBODY
    os.kill(cmd, 9)
    # a user namespace whose maps an unprivileged user wrote denies setgroups
    rl("exec", "-g", "5", "c", "true", check="the user namespace denies setgroups")
    rl("delete", "--force", "c", check=True)
    assert not alive(init)
    assert os.listdir(rl.root) == []


def test_rootless_run_and_exec_into_a_stopped_one(rl):
    path = os.path.join(rl.bundle, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["process"]["args"] = ["sh", "-c", "exit 7"]
    with open(path, "w") as f:
        json.dump(cfg, f)
    assert rl("run", "r").returncode == 7
    cfg["process"]["args"] = ["true"]
    with open(path, "w") as f:
        json.dump(cfg, f)
    rl("create", "s", check=True)
    rl("start", "s", check=True)
    for _ in range(200):
        if rl.state("s")["status"] == "stopped":
            break
        time.sleep(0.05)
    rl("exec", "s", "true", check="is stopped")
    rl("delete", "s", check=True)


def wait_states(pids, want, timeout=30):
    """Until every pid of pids is in state want ("T") or not in it ("!T")."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = [proc_state(p) for p in pids]
        if all((s == want) if not want.startswith("!") else (s != want[1:]) for s in states):
            return
        time.sleep(0.05)
    raise AssertionError("states %s, want %s" % (states, want))


def test_rootless_kill_all_and_ps_see_every_process(rl):
    # the init is not dumpable, so the caller cannot see its pid namespace in
    # /proc: runproc asks the init for it over ns.sock
    path = os.path.join(rl.bundle, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["process"]["args"] = ["sh", "-c", "sleep 1000 & setsid sleep 1001 & exec sleep 1002"]
    with open(path, "w") as f:
        json.dump(cfg, f)
    rl("create", "c", check=True)
    init = rl.state("c")["pid"]
    # created: the init and its fork waiting for start (not dumpable either)
    waiting = sorted(ns_pids(init))
    assert len(waiting) == 2, waiting
    assert json.loads(rl("ps", "--format", "json", "c", check=True).stdout) == waiting
    rl("start", "c", check=True)
    pidfile = os.path.join(rl.dir, "e.pid")
    rl("exec", "-d", "--pid-file", pidfile, "c", "sleep", "1003", check=True)
    deadline = time.monotonic() + 30
    while len(ns_pids(init)) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = sorted(ns_pids(init))
    assert len(pids) == 5, pids  # init, sh's exec'd sleep, its two children, exec's
    assert json.loads(rl("ps", "--format", "json", "c", check=True).stdout) == pids
    table = rl("ps", "c", check=True).stdout.splitlines()
    assert table[0].split() == ["PID", "CMD"]
    rows = {int(line.split()[0]): line.split(None, 1)[1] for line in table[1:]}
    assert sorted(rows) == pids
    assert sorted(v for k, v in rows.items() if k != init) == [
        "sleep 1000", "sleep 1001", "sleep 1002", "sleep 1003"]
    # STOP is not the init's to forward: each process gets it from kill --all
    others = [p for p in pids if p != init]
    rl("kill", "--all", "c", "STOP", check=True)
    wait_states(pids, "T")
    # a stopped init cannot answer on ns.sock: its children still say where
    assert json.loads(rl("ps", "--format", "json", "c", check=True).stdout) == pids
    rl("kill", "--all", "c", "CONT", check=True)
    wait_states(pids, "!T")
    # without --all only the init
    rl("kill", "c", "STOP", check=True)
    wait_states([init], "T")
    assert all(proc_state(p) != "T" for p in others)
    rl("kill", "c", "CONT", check=True)
    rl("delete", "--force", "c", check=True)
    assert not any(alive(p) for p in pids)


def test_namespace_socket_answers_only_the_owner(rl):
    rl("create", "c", check=True)
    rl("start", "c", check=True)
    init = rl.state("c")["pid"]
    sock = os.path.join(rl.root, "c", "ns.sock")
    assert os.stat(os.path.join(rl.root, "c")).st_mode & 0o777 == 0o700
    # root is not the uid that made it (unmapped in its user namespace): nothing
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(sock)
    msg, fds, _, _ = socket.recv_fds(s, 64, 16)
    s.close()
    assert msg == b"" and fds == []
    # its owner gets one fd per namespace, named by a byte each
    code = ("import os, socket\n"
            "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
            "s.settimeout(20)\n"
            "s.connect(%r)\n"
            "msg, fds, _, _ = socket.recv_fds(s, 64, 16)\n"
            "print(len(msg), len(fds))\n"
            "for fd in fds:\n"
            "    print(os.readlink('/proc/self/fd/%%d' %% fd))\n" % sock)
    lines = rl.python(code).split()
    n = int(lines[0])
    assert n == int(lines[1]) >= 7
    links = set(lines[2:])
    for kind in ("user", "mnt", "pid", "uts", "ipc", "net", "cgroup"):
        assert os.readlink("/proc/%d/ns/%s" % (init, kind)) in links, kind
    rl("delete", "--force", "c", check=True)


def test_sigio_of_a_kill_still_reaches_the_command(rl):
    # the init is woken by SIGIO for its socket: one sent with kill is the command's
    path = os.path.join(rl.bundle, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["process"]["args"] = ["sh", "-c", "trap 'exit 9' IO; while :; do sleep 1; done"]
    with open(path, "w") as f:
        json.dump(cfg, f)
    with tempfile.TemporaryFile() as out:
        run = subprocess.Popen([RUNPROC, "--root", rl.root, "run", "sig"], stdout=out,
                               stderr=out, stdin=subprocess.DEVNULL, cwd=rl.bundle,
                               preexec_fn=as_nobody)
        try:
            for _ in range(400):
                r = rl("state", "sig")
                if r.returncode == 0 and json.loads(r.stdout)["status"] == "running":
                    break
                time.sleep(0.05)
            rl("exec", "sig", "true", check=True)  # the socket answered meanwhile
            rl("kill", "sig", "29", check=True)  # SIGIO
            assert run.wait(timeout=30) == 9
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()

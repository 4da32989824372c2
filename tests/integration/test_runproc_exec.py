"""runproc exec (runc's): a process more in a running container, in its
namespaces, cgroup and root, with the flags or a --process file; foreground
status, --detach and --pid-file, exec into a stopped or paused container,
and each bad input with its message."""
import fcntl
import json
import os
import re
import select
import socket
import struct
import subprocess
import tempfile
import termios
import time

import pytest

from conftest import RUNPROC
from test_runproc import alive, own_cgroup_v1, rp  # noqa: F401 (rp is a fixture)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="runproc needs root here")


def running(rp, args=("sleep", "1000"), edit=None, cid="c"):
    rp("run", "-d", "-b", rp.bundle(list(args), edit), cid, check=True)
    return rp.state(cid)["pid"]


def ns_of(pid, kind):
    return os.stat("/proc/%d/ns/%s" % (pid, kind)).st_ino


def test_exec_foreground_status_and_view(rp):
    init = running(rp)
    r = rp("exec", "c", "sh", "-c", "echo hi; hostname; ls /; exit 3")
    assert r.returncode == 3, r.stderr
    lines = r.stdout.split()
    assert lines[0] == "hi" and lines[1] == "runproc"  # the container's uts namespace
    assert "proc" in lines and "bin" in lines  # its root, not the host's
    # its pid namespace: the container's init (PID 1) and sleep are seen
    r = rp("exec", "c", "sh", "-c", "cat /proc/1/comm; echo $$", check=True)
    assert r.stdout.split()[0] == "sandbox-init" and int(r.stdout.split()[1]) > 2
    assert rp("exec", "c", "sh", "-c", "kill -9 $$").returncode == 137
    assert rp("exec", "c", "--", "true").returncode == 0  # "--" before the command
    assert alive(init)


def test_exec_flags_env_cwd_user_caps(rp):
    def open_privs(cfg):
        cfg["process"]["noNewPrivileges"] = False
        cfg["process"]["env"].append("KEEP=1")
    running(rp, edit=open_privs)
    r = rp("exec", "--env", "FOO=bar", "-e", "KEEP=2", "--cwd", "/tmp", "-u", "1000:1001", "c",
           "sh", "-c", "echo $FOO $KEEP; pwd; id -u; id -g", check=True)
    assert r.stdout.split() == ["bar", "2", "/tmp", "1000", "1001"]
    r = rp("exec", "-u", "7", "c", "sh", "-c", "id -u; id -g", check=True)
    assert r.stdout.split() == ["7", "0"]
    r = rp("exec", "-u", "7:8", "-g", "20", "--additional-gids", "21", "c", "id", "-G",
           check=True)
    assert sorted(r.stdout.split()) == ["20", "21", "8"]

    def status(*flags):
        out = rp("exec", *flags, "c", "cat", "/proc/self/status", check=True).stdout
        return dict(line.split(":\t", 1) for line in out.splitlines() if ":\t" in line)
    plain = status()
    assert plain["NoNewPrivs"].strip() == "0"
    assert not int(plain["CapEff"], 16) & (1 << 21)
    more = status("--cap", "CAP_SYS_ADMIN", "--no-new-privs")
    assert int(more["CapEff"], 16) & (1 << 21) and int(more["CapBnd"], 16) & (1 << 21)
    assert more["NoNewPrivs"].strip() == "1"


def test_exec_process_file(rp, tmp_path):
    running(rp)
    p = tmp_path / "process.json"
    p.write_text(json.dumps({
        "args": ["sh", "-c", "echo $A; pwd; id -u; exit 4"],
        "env": ["A=from-file", "PATH=/bin"], "cwd": "/etc",
        "user": {"uid": 5, "gid": 6}}))
    r = rp("exec", "--process", str(p), "c")
    assert r.returncode == 4 and r.stdout.split() == ["from-file", "/etc", "5"], r.stderr
    for bad, msg in [('{"args": "x"}', "process.args: must be an array"),
                     ('{"env": ["A=1"]}', "process.args: required"),
                     ('{"args": ["true"], "cwd": "rel"}', "process.cwd"),
                     ('[1]', "not a JSON object"),
                     ('{"args": ["true"],}', "not valid JSON")]:
        p.write_text(bad)
        rp("exec", "--process", str(p), "c", check=msg)
    rp("exec", "--process", str(tmp_path / "none.json"), "c",
       check='--process "%s": No such file or directory' % (tmp_path / "none.json"))
    rp("exec", "--process", str(p), "c", "true", check="--process FILE and a command")


def test_exec_detach_and_pid_file(rp, tmp_path):
    name = "runproc-test-exec-%d" % os.getpid()
    mem = os.path.join(own_cgroup_v1("memory"), name)

    def path(cfg):
        cfg["linux"]["cgroupsPath"] = name
    init = running(rp, edit=path)
    pid_file = tmp_path / "exec.pid"
    t0 = time.time()
    rp("exec", "-d", "--pid-file", str(pid_file), "c", "sleep", "2", check=True)
    assert time.time() - t0 < 1.5  # returned while it runs
    pid = int(pid_file.read_text())
    assert alive(pid)
    # in the container's cgroup and namespaces
    assert pid in [int(x) for x in open(os.path.join(mem, "cgroup.procs")).read().split()]
    for kind in ("mnt", "uts", "ipc", "net", "cgroup"):
        assert ns_of(pid, kind) == ns_of(init, kind), kind
    deadline = time.time() + 10
    while alive(pid) and time.time() < deadline:
        time.sleep(0.05)
    assert not alive(pid)
    rp("delete", "--force", "c", check=True)
    assert not os.path.exists(mem)


def test_exec_into_created_stopped_paused(rp):
    name = "runproc-test-exec-p-%d" % os.getpid()

    def path(cfg):
        cfg["linux"]["cgroupsPath"] = name
    rp("create", "-b", rp.bundle(["sleep", "1000"], path), "c", check=True)
    assert rp("exec", "c", "echo", "created", check=True).stdout == "created\n"  # as runc
    rp("start", "c", check=True)
    rp("pause", "c", check=True)
    rp("exec", "c", "true", check='container "c" is paused: resume it first')
    rp("resume", "c", check=True)
    rp("kill", "c", "KILL", check=True)
    rp.wait_status("c", "stopped")
    rp("exec", "c", "true", check='container "c" is stopped: cannot exec in it')
    rp("delete", "c", check=True)
    rp("exec", "c", "true", check='container "c" does not exist')


def test_exec_bad_input(rp):
    running(rp)
    for args, msg in [
            ((), "a container id is needed"),
            (("c",), "a command is needed"),
            (("-u", "abc", "c", "true"), '--user "abc": want UID[:GID]'),
            (("-u", "1:x", "c", "true"), '--user "1:x": want UID[:GID]'),
            (("--cap", "CAP_NOPE", "c", "true"), '--cap "CAP_NOPE": unknown capability'),
            (("-g", "wheel", "c", "true"), '--additional-gids "wheel": want a gid'),
            (("-e", "NOEQ", "c", "true"), '--env "NOEQ": not KEY=VALUE'),
            (("--cwd", "rel", "c", "true"), '--cwd: must be absolute, not "rel"'),
            (("--preserve-fds", "x", "c", "true"), 'invalid --preserve-fds "x"'),
            (("--bogus", "c", "true"), 'unknown option "--bogus"'),
            (("--env",), 'option "--env" needs a value'),
            (("c", "no-such-command"), 'sandbox: exec "no-such-command": No such file'),
            (("c", "/etc"), 'sandbox: exec "/etc": Permission denied'),
            (("--cwd", "/nope", "c", "true"), 'chdir "/nope": No such file or directory')]:
        rp("exec", *args, check=msg)
    assert rp.state("c")["status"] == "running"


# ---------------------------------------------------------------- terminals

class ConsoleSocket:
    """What containerd's shim and conmon do: listen on a unix socket, take
    the pty master runproc sends (SCM_RIGHTS, the pty's name as payload)."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(1)
        self.sock.settimeout(10)

    def master(self):
        conn, _ = self.sock.accept()
        with conn:
            conn.settimeout(10)
            msg, fds, _, _ = socket.recv_fds(conn, 4096, 1)
        assert len(fds) == 1
        return msg.decode(), fds[0]

    def close(self):
        self.sock.close()


def read_until(fd, want, timeout=10):
    out = b""
    deadline = time.time() + timeout
    def found():
        return want.search(out) if isinstance(want, re.Pattern) else want in out
    while not found() and time.time() < deadline:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the slave side is gone
                break
            if not chunk:
                break
            out += chunk
    return out


def test_run_with_a_terminal(rp, tmp_path):
    def tty(cfg):
        cfg["process"]["terminal"] = True
        cfg["process"]["consoleSize"] = {"height": 33, "width": 99}
    cs = ConsoleSocket(tmp_path / "console.sock")
    try:
        rp("run", "-d", "--console-socket", cs.path, "-b", rp.bundle(["sh"], tty), "t",
           check=True)
        name, m = cs.master()
    finally:
        cs.close()
    try:
        assert name == "/dev/pts/0"  # the container's own devpts
        assert os.isatty(m)
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(m, termios.TIOCGWINSZ, b"\0" * 8))
        assert (rows, cols) == (33, 99)
        os.write(m, b"stty size; tty; echo hi $((40+2))\n")
        out = read_until(m, b"hi 42")
        assert b"33 99\r\n/dev/pts/0\r\nhi 42" in out, out
        # its controlling terminal, in a session of its own
        os.write(m, b"echo S$(cut -d' ' -f6 /proc/$$/stat)=P$$.\n")
        out = read_until(m, re.compile(rb"S(\d+)=P(\d+)\."))
        sid, pid = re.search(rb"S(\d+)=P(\d+)\.", out).groups()
        assert sid == pid, out
        os.write(m, b"exit 7\n")
        rp.wait_status("t", "stopped")
    finally:
        os.close(m)


def test_exec_with_a_terminal(rp, tmp_path):
    running(rp)
    cs = ConsoleSocket(tmp_path / "console.sock")
    try:
        rp("exec", "-t", "-d", "--console-socket", cs.path, "c", "sh", check=True)
        _, m = cs.master()
    finally:
        cs.close()
    try:
        assert os.isatty(m)
        os.write(m, b"tty; echo hi $((40+2))\n")
        out = read_until(m, b"hi 42")
        assert b"/dev/pts/0\r\nhi 42" in out, out
        os.write(m, b"exit\n")
    finally:
        os.close(m)
    # a process file with terminal: true takes the socket as well
    p = tmp_path / "p.json"
    p.write_text(json.dumps({"args": ["tty"], "terminal": True, "cwd": "/"}))
    cs = ConsoleSocket(tmp_path / "console2.sock")
    try:
        rp("exec", "-d", "--process", str(p), "--console-socket", cs.path, "c", check=True)
        _, m = cs.master()
    finally:
        cs.close()
    try:
        assert read_until(m, b"\n").startswith(b"/dev/pts/")
    finally:
        os.close(m)


def test_terminal_bad_input(rp, tmp_path):
    def tty(cfg):
        cfg["process"]["terminal"] = True
    b = rp.bundle(["true"], tty)
    rp("create", "-b", b, "x", check="process.terminal needs --console-socket")
    rp("create", "-b", b, "--console-socket", str(tmp_path / "nope.sock"), "x",
       check='--console-socket "%s": No such file or directory' % (tmp_path / "nope.sock"))
    rp("create", "-b", rp.bundle(["true"]), "--console-socket", "/x.sock", "x",
       check='--console-socket "/x.sock" without a terminal')

    def bad_size(cfg):
        cfg["process"]["consoleSize"] = {"height": -1, "width": 80}
    rp("create", "-b", rp.bundle(["true"], bad_size), "x",
       check="process.consoleSize.height: -1 is negative")
    assert rp("list", "-q", check=True).stdout == ""
    running(rp)
    rp("exec", "-t", "c", "tty", check="process.terminal needs --console-socket")
    rp("exec", "--console-socket", "/x.sock", "c", "tty",
       check='--console-socket "/x.sock" without a terminal')


# ---------------------------------------------------------------- preserve-fds

def run_keeping_fds(rp, nfds, *args):
    """runproc with a pipe's write end as its fds 3..3+nfds-1; what came
    through the pipe, and the result."""
    r, w = os.pipe()
    saved = [os.dup(fd) if fd_open(fd) else None for fd in range(3, 3 + nfds)]
    try:
        for fd in range(3, 3 + nfds):
            os.dup2(w, fd)
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            p = subprocess.run([RUNPROC, "--root", rp.root] + list(args), stdout=out, stderr=err,
                               stdin=subprocess.DEVNULL, pass_fds=range(3, 3 + nfds),
                               timeout=30)
            out.seek(0)
            err.seek(0)
            res = (p.returncode, out.read(), err.read())
    finally:
        for fd, s in zip(range(3, 3 + nfds), saved):
            if s is None:
                os.close(fd)
            else:
                os.dup2(s, fd)
                os.close(s)
        os.close(w)
    with os.fdopen(r) as f:
        return f.read(), res


def fd_open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def test_preserve_fds(rp):
    running(rp)
    # fds 3, 4 and 5 given, 3 and 4 kept: ls's own directory fd is 5
    script = "echo via3 >&3; echo via4 >&4; exec ls /proc/self/fd"
    got, (code, out, err) = run_keeping_fds(rp, 3, "exec", "--preserve-fds", "2", "c",
                                            "sh", "-c", script)
    assert code == 0, err
    assert got == "via3\nvia4\n"
    assert sorted(int(x) for x in out.split()) == [0, 1, 2, 3, 4, 5], out
    # without the flag nothing of ours passes
    got, (code, out, err) = run_keeping_fds(rp, 2, "exec", "c", "sh", "-c", "echo x >&3")
    assert code != 0 and got == "" and "Bad file descriptor" in out + err
    # create: the created container holds them until start
    b = rp.bundle(["sh", "-c", "echo created3 >&3"])
    got, (code, out, err) = run_keeping_fds(rp, 1, "run", "--preserve-fds", "1", "-b", b, "r")
    assert code == 0 and got == "created3\n", err


# ---------------------------------------------------------------- hooks

KINDS = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart",
         "poststop"]


def hooked(log_dir, fail=None, extra=None):
    """A config edit: every hook kind appends 'KIND|uts ns|env|stdin' to
    hooks.log in log_dir (bound at /log in the container, where
    startContainer runs: after pivot_root, its path is the container's)."""
    def edit(cfg):
        cfg["mounts"].append({"destination": "/log", "type": "bind", "source": str(log_dir),
                              "options": ["rbind", "rw"]})
        hooks = {}
        for kind in KINDS:
            log = "/log/hooks.log" if kind == "startContainer" else str(log_dir / "hooks.log")
            script = 'echo "%s|$(readlink /proc/self/ns/uts)|$HOOKVAR $0|$(cat)" >> %s' % (
                kind, log)
            if kind == fail:
                script = "echo boom from %s >&2; exit 3" % kind
            hooks[kind] = [{"path": "/bin/sh", "args": ["sh", "-c", script, "arg1"],
                            "env": ["PATH=/bin:/usr/bin", "HOOKVAR=v"]}]
        if extra:
            extra(hooks)
        cfg["hooks"] = hooks
    return edit


def hook_lines(log_dir):
    out = []
    for line in (log_dir / "hooks.log").read_text().splitlines():
        kind, host, env, state = line.split("|", 3)
        out.append((kind, host, env, json.loads(state)))
    return out


def test_hooks_fire_in_order_with_the_state(rp, tmp_path):
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    b = rp.bundle(["sleep", "1000"], hooked(log_dir))
    rp("create", "-b", b, "h", check=True)
    pid = rp.state("h")["pid"]
    theirs = os.readlink("/proc/%d/ns/uts" % pid)
    assert [x[0] for x in hook_lines(log_dir)] == KINDS[:3]
    rp("start", "h", check=True)
    rp("kill", "h", "KILL", check=True)
    rp.wait_status("h", "stopped")
    rp("delete", "h", check=True)
    lines = hook_lines(log_dir)
    assert [x[0] for x in lines] == KINDS
    me = os.readlink("/proc/self/ns/uts")  # runtime namespace, else the container's
    want = {"prestart": ("creating", me), "createRuntime": ("creating", me),
            "createContainer": ("creating", theirs), "startContainer": ("created", theirs),
            "poststart": ("running", me), "poststop": ("stopped", me)}
    for kind, host, env, state in lines:
        assert env == "v arg1", (kind, env)  # the hook's env and args as given
        assert (state["status"], host) == want[kind], kind
        assert state["id"] == "h" and state["bundle"] == b and state["ociVersion"]
        assert state["pid"] == (0 if kind == "poststop" else pid), kind


def test_hooks_of_run(rp, tmp_path):
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    rp("run", "-b", rp.bundle(["true"], hooked(log_dir)), "h", check=True)
    assert [x[0] for x in hook_lines(log_dir)] == KINDS


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_a_failing_create_hook_fails_create(rp, tmp_path, kind):
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    rp("create", "-b", rp.bundle(["sleep", "1000"], hooked(log_dir, fail=kind)), "h",
       check='%s hook "/bin/sh" (hooks.%s[0]): exit status 3: boom from %s' % (kind, kind, kind))
    assert rp("list", "-q", check=True).stdout == ""  # nothing left
    assert [x[0] for x in hook_lines(log_dir)] == KINDS[:KINDS.index(kind)] if \
        kind != "prestart" else not (log_dir / "hooks.log").exists()


def test_failing_start_hooks(rp, tmp_path):
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    rp("create", "-b", rp.bundle(["sleep", "1000"], hooked(log_dir, fail="startContainer")), "s",
       check=True)
    rp("start", "s", check='startContainer hook "/bin/sh" (hooks.startContainer[0]): exit '
                           'status 3: boom from startContainer')
    assert rp.state("s")["status"] == "created"  # the process was not started
    rp("delete", "s", check=True)
    # poststart: the container does not run on (as runc)
    rp("create", "-b", rp.bundle(["sleep", "1000"], hooked(log_dir, fail="poststart")), "p",
       check=True)
    pid = rp.state("p")["pid"]
    rp("start", "p", check='poststart hook "/bin/sh" (hooks.poststart[0]): exit status 3')
    assert not alive(pid)
    rp("delete", "p", check=True)
    # poststop: said, and the container is gone anyway
    rp("run", "-d", "-b", rp.bundle(["sleep", "1000"], hooked(log_dir, fail="poststop")), "q",
       check=True)
    rp("delete", "--force", "q", check='poststop hook "/bin/sh" (hooks.poststop[0]): exit status 3')
    rp("state", "q", check='container "q" does not exist')


def test_hook_timeout_and_bad_hooks(rp, tmp_path):
    def slow(cfg):
        cfg["hooks"] = {"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "30"],
                                           "timeout": 1}]}
    t0 = time.time()
    rp("create", "-b", rp.bundle(["true"], slow), "t",
       check='createRuntime hook "/bin/sleep" (hooks.createRuntime[0]): timed out after 1 s')
    assert time.time() - t0 < 10
    for hooks, msg in [
            ({"prestart": [{"path": "sh"}]}, 'hooks.prestart[0].path: must be absolute, not "sh"'),
            ({"poststop": [{"args": ["x"]}]}, "hooks.poststop[0].path: required"),
            ({"poststart": {"path": "/bin/true"}}, "hooks.poststart: must be an array"),
            ({"createContainer": [{"path": "/bin/true", "timeout": 0}]},
             "hooks.createContainer[0].timeout: must be seconds in 1..86400"),
            ({"startContainer": [{"path": "/bin/true", "env": ["NOEQ"]}]},
             'hooks.startContainer[0].env[0]: "NOEQ" is not KEY=VALUE'),
            ({"prestart": [{"path": "/bin/true", "args": [1]}]},
             "hooks.prestart[0].args[0]: must be a string"),
            ([], "hooks: must be an object")]:
        def edit(cfg, hooks=hooks):
            cfg["hooks"] = hooks
        rp("create", "-b", rp.bundle(["true"], edit), "x", check=msg)
    def missing(cfg):
        cfg["hooks"] = {"createRuntime": [{"path": "/no/such/hook"}]}
    rp("create", "-b", rp.bundle(["true"], missing), "x",
       check='createRuntime hook "/no/such/hook" (hooks.createRuntime[0]): exit status 127: '
             'exec "/no/such/hook": No such file or directory')
    assert rp("list", "-q", check=True).stdout == ""


# ---------------------------------------------------------------- host mode

@pytest.mark.parametrize("how", ["annotation", "environment"])
def test_host_mode(rp, tmp_path, monkeypatch, how):
    marker = tmp_path / "on-the-host"
    marker.write_text("host file\n")

    def edit(cfg):
        if how == "annotation":
            cfg["annotations"] = {"runproc.host": "1"}
        cfg["process"]["env"] = ["PATH=/usr/bin:/bin"]
    if how == "environment":
        monkeypatch.setenv("RUNPROC_HOST", "1")
    b = rp.bundle(["sh", "-c", "cat %s; readlink /proc/self/ns/mnt; hostname" % marker], edit)
    r = rp("run", "-b", b, "host", check=True)
    lines = r.stdout.splitlines()
    assert lines[0] == "host file"  # the host's root
    assert lines[1] == os.readlink("/proc/self/ns/mnt")  # no mount namespace
    assert lines[2] == "runproc"  # the other namespaces stay
    # state says so, exec joins it there
    rp("run", "-d", "-b", rp.bundle(["sleep", "1000"], edit), "host2", check=True)
    assert rp.state("host2")["rootfs"] == "/"
    assert rp("exec", "host2", "cat", str(marker), check=True).stdout == "host file\n"
    rp("delete", "--force", "host2", check=True)
    # without it, the same bundle runs in its root, where the file is not
    monkeypatch.delenv("RUNPROC_HOST", raising=False)

    def plain(cfg):
        cfg["process"]["env"] = ["PATH=/bin"]
    r = rp("run", "-b", rp.bundle(["cat", str(marker)], plain), "guest")
    assert r.returncode == 1 and "No such file" in r.stdout + r.stderr


def test_exec_into_a_user_namespace(rp, tmp_path):
    b = os.path.join(str(tmp_path), "userns")
    os.makedirs(b)
    os.symlink(rp.rootfs, os.path.join(b, "rootfs"))
    rp("spec", "--rootless", "--bundle", b, check=True)
    with open(os.path.join(b, "config.json")) as f:
        cfg = json.load(f)
    cfg["process"]["args"] = ["sleep", "1000"]
    with open(os.path.join(b, "config.json"), "w") as f:
        json.dump(cfg, f)
    rp("run", "-d", "-b", b, "u", check=True)
    init = rp.state("u")["pid"]
    rp("exec", "-d", "--pid-file", str(tmp_path / "u.pid"), "u", "sleep", "5", check=True)
    pid = int((tmp_path / "u.pid").read_text())
    # the init joins from outside; its child is the command, in every namespace of the container
    cmd = int(open("/proc/%d/task/%d/children" % (pid, pid)).read().split()[0])
    for kind in ("user", "mnt", "pid", "uts", "ipc"):
        assert ns_of(cmd, kind) == ns_of(init, kind), kind
    r = rp("exec", "u", "cat", "/proc/self/uid_map", check=True)
    assert r.stdout.split() == ["0", str(os.getuid()), "1"]
    os.kill(cmd, 9)  # the init mirrors it and ends

"""runproc exec (runc's): a process more in a running container, in its
namespaces, cgroup and root, with the flags or a --process file; foreground
status, --detach and --pid-file, exec into a stopped or paused container,
and each bad input with its message."""
import json
import os
import time

import pytest

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

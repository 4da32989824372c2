"""Sandbox profiles end to end (docs/dev/SANDBOX.md): what a strict job cannot
do and rund keeps serving, what default confines, signals and exit codes
through the sandbox's init, clamping to rund's minimum, and each bad field
refused with its name."""
import json
import os
import shutil
import signal
import socket
import subprocess
import time

import grpc
import pytest

from conftest import PY, RUNCTL, exec_call, pb, rpc_error, short_tmpdir
from security_helpers import as_nobody_argv, runctl_for_nobody

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="namespaces need root here")

DOCKER_CAPS = 0x00000000A80425FB


def status_fields(text):
    out = {}
    for line in text.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            out[k.strip()] = v.strip()
    return out


def proc_status(out):
    """The Name: value lines of a /proc/self/status the job printed."""
    return status_fields(out)


@pytest.fixture
def sbx(rund_factory):
    """A rund that allows binds and rootfs below its own temp dir."""
    base = short_tmpdir("rr-sb-")
    allow = os.path.join(base, "allowed")
    os.makedirs(allow)
    r = rund_factory(base=base, extra_args=["--bind-allow", allow]).start()
    r.allow = allow
    return r


@pytest.fixture
def stub_for():
    return lambda r: r.stub()


@pytest.fixture
def sctl(sbx):
    from conftest import Ctl
    return Ctl(sbx.addr)


def busybox_root(dest):
    bb = shutil.which("busybox")
    if not bb:
        pytest.skip("busybox-static is not installed")
    for d in ("bin", "proc", "dev", "sys", "tmp", "etc"):
        os.makedirs(os.path.join(dest, d), exist_ok=True)
    shutil.copy2(bb, os.path.join(dest, "bin", "busybox"))
    for name in ("sh", "true", "cat", "ls", "id", "hostname", "echo", "touch", "sleep"):
        os.symlink("busybox", os.path.join(dest, "bin", name))
    return dest


# ---------------------------------------------------------------- strict


def test_strict_inside_view(sctl):
    r = sctl("exec", "--profile", "strict", "--", "sh", "-c",
             "hostname; echo pid=$$; cat /proc/self/status; cat /proc/net/dev; ls /proc")
    assert r.rc == 0, r
    lines = r.text.splitlines()
    assert lines[0] == "runrpc"
    st = proc_status(r.text)
    assert int(lines[1].split("=")[1]) < 10, "the command's pid is small: " + lines[1]
    assert st["CapEff"] == "0000000000000000"
    assert st["CapBnd"] == "0000000000000000"
    assert st["NoNewPrivs"] == "1"
    assert st["Seccomp"] == "2"
    netdev = r.text.split("Inter-|")[1]
    ifaces = [l.split(":")[0].strip() for l in netdev.splitlines()[2:] if ":" in l]
    assert ifaces[:1] == ["lo"] and all(i == "lo" for i in ifaces if not i.isdigit()), ifaces
    pids = [l for l in lines if l.isdigit()]
    assert len(pids) < 10, "host pids visible: %r" % pids


def test_strict_pid1_is_the_init(sctl):
    r = sctl("exec", "--profile", "strict", "--", "sh", "-c",
             "cat /proc/1/stat | cut -d' ' -f1; echo $$; cat /proc/$$/stat | cut -d' ' -f4")
    assert r.rc == 0, r
    one, me, ppid = r.text.split()
    assert one == "1" and me != "1" and ppid == "1"


ESCAPES = {
    "mount": "mount -t tmpfs none /tmp",
    "umount root": "umount -l /",
    "unshare": "unshare -U -r true",
    "write root": "touch /etc/rr-sandbox-escape",
    "read shadow": "cat /etc/shadow",
    "setuid mount binary": "/bin/mount -t proc proc /mnt",
}

SYSCALLS = r"""
import ctypes, errno, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
def sc(nr, *args):
    r = libc.syscall(nr, *[ctypes.c_long(a) for a in args])
    return 0 if r >= 0 else ctypes.get_errno()
fails = {}
# x86_64 numbers
fails["setns"] = sc(308, os.open("/proc/self/ns/net", os.O_RDONLY), 0)
fails["ptrace attach 1"] = sc(101, 16, 1, 0, 0)
fails["keyctl"] = sc(250, 0x7fff, 0, 0, 0)
fails["reboot"] = sc(169, 0xfee1dead, 0x28121969, 0xdeadbeef, 0)
fails["init_module"] = sc(313, -1, 0, 0)
fails["unshare"] = sc(272, 0x10000000)
fails["bpf"] = sc(321, 0, 0, 0)
for name, fam, typ in (("packet", 17, 3), ("raw inet", 2, 3), ("netlink raw", 16, 3)):
    try:
        socket.socket(fam, typ).close()
        fails[name] = 0
    except OSError as e:
        fails[name] = e.errno
try:
    socket.create_connection(("10.255.255.1", 9), timeout=2).close()
    fails["reach 10.255.255.1"] = 0
except OSError as e:
    fails["reach 10.255.255.1"] = e.errno or -1
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
c = socket.create_connection(s.getsockname(), timeout=2)
fails["loopback works"] = 0 if c else 1
print(repr(fails))
"""


def test_strict_escapes_fail_and_rund_serves(sbx, sctl):
    for what, sh in ESCAPES.items():
        r = sctl("exec", "--profile", "strict", "--", "sh", "-c", sh)
        assert r.rc != 0, "%s succeeded in strict: %r" % (what, r)
    r = sctl("exec", "--profile", "strict", "--", PY, "-c", SYSCALLS)
    assert r.rc == 0, r
    got = eval(r.text)
    for what, err in got.items():
        if what == "loopback works":
            assert err == 0
        else:
            assert err != 0, "%s succeeded in strict: %r" % (what, got)
    assert sctl("exec", "--", "true").rc == 0  # rund still serves


@pytest.mark.timeout(120)
def test_strict_fork_bomb_and_memory_bomb_are_contained(sbx, sctl):
    jid = sctl("start", "--profile", "strict", "--", "sh", "-c",
               "for i in $(seq 400); do sleep 3 & done 2>/dev/null; wait").text.strip()
    sctl("wait", jid, timeout=90)
    js = json.loads(sctl("status", jid, "--json").text)
    assert js["limits"]["pids_max"] == 256
    assert js["usage"]["pids_refused"] > 0, js["usage"]  # the bomb hit strict's pids.max
    r = sctl("exec", "--profile", "strict", "--", PY, "-c",
             "b = []\nwhile True: b.append(bytearray(64 << 20))", timeout=90)
    assert r.rc == 137, r  # the OOM killer within strict's 512 MiB
    assert sctl("exec", "--", "true").rc == 0


def test_strict_job_status_names_profile_and_limits(sbx, sctl):
    r = sctl("start", "--profile", "strict", "--", "true")
    assert r.rc == 0, r
    jid = r.text.strip()
    assert sctl("wait", jid).rc == 0
    js = json.loads(sctl("status", jid, "--json").text)
    assert js["profile"] == "strict" and js["profile_requested"] == "strict"
    assert js["limits"]["pids_max"] == 256
    assert js["limits"]["memory_max"] == 512 << 20
    text = sctl("status", jid).text
    assert "profile: strict" in text


def test_strict_for_an_unprivileged_caller(sbx):
    os.chmod(sbx.base, 0o755)
    p = subprocess.run(as_nobody_argv([runctl_for_nobody(), "--addr", sbx.addr, "exec",
                                       "--profile", "strict", "--", "sh", "-c",
                                       "id -u; cat /proc/self/status"]),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert p.returncode == 0, p.stderr
    out = p.stdout.decode()
    assert out.splitlines()[0] == "65534"
    assert proc_status(out)["CapEff"] == "0000000000000000"


# ---------------------------------------------------------------- default


def test_default_namespaces_and_capabilities(sctl):
    r = sctl("exec", "--profile", "default", "--hostname", "box1", "--", "sh", "-c",
             "hostname; echo $$; cat /proc/self/status; ls /sys/class/net")
    assert r.rc == 0, r
    lines = r.text.splitlines()
    assert lines[0] == "box1"
    assert int(lines[1]) < 10
    st = proc_status(r.text)
    assert int(st["CapEff"], 16) == DOCKER_CAPS  # root caller: Docker's set
    assert int(st["CapBnd"], 16) == DOCKER_CAPS
    assert st["NoNewPrivs"] == "1" and st["Seccomp"] == "2"
    # the host's network by default
    assert os.listdir("/sys/class/net") and "lo" in r.text


def test_default_net_none_has_only_lo(sctl):
    r = sctl("exec", "--profile", "default", "--net", "none", "--", "ls", "/sys/class/net")
    assert r.rc == 0, r
    assert r.text.split() == ["lo"]


def test_default_root_is_read_only_tmp_private_workdir_writable(sbx, sctl):
    work = os.path.join(sbx.allow, "proj")
    os.makedirs(work)
    r = sctl("exec", "--profile", "default", "--workdir", work, "--", "sh", "-c",
             "touch /usr/rr-x 2>/dev/null && echo ROOT-WRITABLE; echo hi > /tmp/t && cat /tmp/t;"
             " echo made > out.txt")
    assert r.rc == 0, r
    assert b"ROOT-WRITABLE" not in r.out and r.out.startswith(b"hi\n")
    assert not os.path.exists("/usr/rr-x")
    assert open(os.path.join(work, "out.txt")).read() == "made\n"
    assert not os.path.exists("/tmp/t") or open("/tmp/t").read() != "hi\n"


def test_workdir_tmp_is_the_hosts_tmp(sbx, sctl):
    """--workdir /tmp binds the host's /tmp onto itself (default: writable,
    strict: read-only), nothing else: the host root's staging mount on /tmp
    was taken along by that recursive bind and covered it with the host's
    root, read-only (ls /tmp listed bin, etc, usr...)."""
    mark = "rr-wdtmp-%d" % os.getpid()
    try:
        for profile, writable in (("default", True), ("strict", False)):
            r = sctl("exec", "--profile", profile, "--workdir", "/tmp", "--", "sh", "-c",
                     "ls -a /tmp; touch %s 2>/dev/null && echo WROTE; true" % mark)
            assert r.rc == 0, r
            names = r.text.split()
            assert "etc" not in names or os.path.isdir("/tmp/etc"), (profile, names)
            assert ("WROTE" in names) == writable, (profile, r)
            assert os.path.exists("/tmp/" + mark) == writable, profile
            if writable:
                os.unlink("/tmp/" + mark)
    finally:
        if os.path.exists("/tmp/" + mark):
            os.unlink("/tmp/" + mark)


def test_default_exit_codes_and_signals_through_the_init(sbx, stub_for):
    s = stub_for(sbx)
    _, _, _, ex, _ = exec_call(s, "sh", "-c", "exit 3", sandbox=pb.Sandbox(profile="default"))
    assert ex.exit_code == 3 and ex.signal == 0
    assert ex.profile == "default"
    _, _, _, ex, _ = exec_call(s, "sh", "-c", "kill -TERM $$",
                               sandbox=pb.Sandbox(profile="default"))
    assert ex.signal == signal.SIGTERM, ex


def test_runctl_exec_ctrl_c_reaches_the_command(sbx):
    # exec: no shell child between its fork and exec, where a SIGINT meets
    # the shell's handler and is lost (as at a terminal: not rund's doing)
    p = subprocess.Popen([RUNCTL, "--addr", sbx.addr, "exec", "--profile", "default", "--",
                          "sh", "-c", "echo ready; exec sleep 30"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout.readline() == b"ready\n"
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=20)
    assert p.returncode == 128 + signal.SIGINT, err


def test_stop_grace_and_trap_through_the_init(sctl):
    jid = sctl("start", "--profile", "default", "--", "sh", "-c",
               "trap 'echo term; exit 7' TERM; echo up; sleep 100 & wait").text.strip()
    deadline = time.monotonic() + 10
    while b"up" not in sctl("logs", jid).out and time.monotonic() < deadline:
        time.sleep(0.05)
    r = sctl("stop", jid, "--grace", "5s")
    assert r.rc == 0, r
    js = json.loads(sctl("status", jid, "--json").text)
    assert js["state"] == "exited" and js["exit_code"] == 7, js
    assert b"term" in sctl("logs", jid).out
    jid = sctl("start", "--profile", "default", "--", "sh", "-c", "kill -9 $$").text.strip()
    assert sctl("wait", jid).rc == 128 + 9
    js = json.loads(sctl("status", jid, "--json").text)
    assert js["state"] == "killed" and js["signal"] == 9


def test_orphans_are_reaped_inside(sctl):
    r = sctl("exec", "--profile", "default", "--", "sh", "-c",
             "sh -c 'sleep 0.2 & exit 0'; sleep 0.6; "
             "for f in /proc/[0-9]*/stat; do cut -d' ' -f3 $f; done")
    assert r.rc == 0, r
    assert "Z" not in r.text.split(), "zombie left: %r" % r.text


def test_rootfs_and_binds(sbx, sctl):
    root = busybox_root(os.path.join(sbx.allow, "root"))
    data = os.path.join(sbx.allow, "data")
    os.makedirs(data)
    open(os.path.join(data, "in"), "w").write("from host\n")
    r = sctl("exec", "--profile", "default", "--rootfs", root, "--bind", data + ":/data:ro",
             "--", "sh", "-c", "ls /; cat /data/in; touch /data/x && echo BIND-WRITABLE; true")
    assert r.rc == 0, r
    assert "busybox" not in r.text.split()[:1] and "from host" in r.text
    assert "BIND-WRITABLE" not in r.text
    r = sctl("exec", "--profile", "default", "--rootfs", root, "--bind", data + ":/data",
             "--", "sh", "-c", "echo out > /data/out")
    assert r.rc == 0, r
    assert open(os.path.join(data, "out")).read() == "out\n"
    # a root without the command: NOT_FOUND, as without a sandbox
    empty = os.path.join(sbx.allow, "empty")
    os.makedirs(empty)
    r = sctl("exec", "--profile", "default", "--rootfs", empty, "--", "sh", "-c", "true")
    assert r.rc != 0 and "NOT_FOUND" in r.errtext, r


def test_bind_source_symlinked_out_of_allowed_is_refused(sbx, sctl):
    """A symlink in an allowed dir to outside it, as the source or as a
    directory on its way (and as rootfs): PERMISSION_DENIED, the target
    untold; one to inside stays fine."""
    os.makedirs(os.path.join(sbx.allow, "proj"))
    os.symlink("/etc", os.path.join(sbx.allow, "etc"))
    os.symlink("/root", os.path.join(sbx.allow, "home"))
    os.symlink("proj", os.path.join(sbx.allow, "ok"))
    for src, dst in [("etc", "/e"), ("etc/passwd", "/p"), ("home/.ssh", "/k")]:
        r = sctl("exec", "--profile", "default", "--bind",
                 os.path.join(sbx.allow, src) + ":" + dst, "--", "true")
        assert r.rc != 0, r
        assert "PERMISSION_DENIED" in r.errtext and "sandbox.binds[0].source" in r.errtext, r
        assert "not below a directory allowed" in r.errtext, r
    r = sctl("exec", "--profile", "default", "--rootfs", os.path.join(sbx.allow, "etc"),
             "--", "true")
    assert r.rc != 0 and "PERMISSION_DENIED" in r.errtext and "sandbox.rootfs" in r.errtext, r
    open(os.path.join(sbx.allow, "proj", "f"), "w").write("inside\n")
    r = sctl("exec", "--profile", "default", "--bind",
             os.path.join(sbx.allow, "ok") + ":/tmp/d:ro", "--", "cat", "/tmp/d/f")
    assert r.rc == 0 and r.text == "inside\n", r


# ---------------------------------------------------------------- choosing


def test_min_profile_clamps_up_never_refuses(rund_factory):
    from conftest import Ctl
    r = rund_factory(extra_args=["--min-profile", "strict", "--default-profile",
                                 "default"]).start()
    c = Ctl(r.addr)
    jid = c("start", "--profile", "host", "--", "true").text.strip()
    c("wait", jid)
    js = json.loads(c("status", jid, "--json").text)
    assert js["profile"] == "strict" and js["profile_requested"] == "host"
    assert "profile: strict (requested host)" in c("status", jid).text
    jid = c("start", "--", "true").text.strip()
    c("wait", jid)
    js = json.loads(c("status", jid, "--json").text)
    assert js["profile"] == "strict" and js["profile_requested"] == ""


def test_default_profile_applies_to_requests_naming_none(rund_factory):
    from conftest import Ctl
    r = rund_factory(extra_args=["--default-profile", "default"]).start()
    c = Ctl(r.addr)
    out = c("exec", "--", "hostname").text
    assert out == "runrpc\n"
    out = c("exec", "--profile", "host", "--", "hostname").text
    assert out == socket.gethostname() + "\n"  # host: no uts namespace


def test_plain_jobs_keep_no_profile_in_job_json(sbx, sctl):
    jid = sctl("start", "--", "true").text.strip()
    sctl("wait", jid)
    js = json.loads(sctl("status", jid, "--json").text)
    assert js["profile"] == "host" and js["profile_requested"] == ""


@pytest.mark.parametrize("args,code,what", [
    (["--profile", "fortress"], "INVALID_ARGUMENT", "sandbox.profile"),
    (["--profile", "host", "--hostname", "x"], "INVALID_ARGUMENT", "sandbox.hostname"),
    (["--profile", "host", "--net", "none"], "INVALID_ARGUMENT", "sandbox.net"),
    (["--profile", "default", "--hostname", "bad name"], "INVALID_ARGUMENT", "sandbox.hostname"),
    (["--profile", "default", "--bind", "/etc:/etc2"], "PERMISSION_DENIED", "sandbox.binds[0]"),
    (["--profile", "default", "--rootfs", "/"], "PERMISSION_DENIED", "sandbox.rootfs"),
    (["--profile", "default", "--bind", "/nonexistent/x:/y"], "PERMISSION_DENIED",
     "sandbox.binds[0]"),
])
def test_bad_sandbox_fields_are_refused_with_their_name(sctl, args, code, what):
    r = sctl("exec", *args, "--", "true")
    assert r.rc != 0, r
    assert code in r.errtext and what in r.errtext, r


@pytest.mark.parametrize("args,what", [
    (["--net", "wifi"], "--net"),
    (["--bind", "rel:/x"], "--bind"),
    (["--bind", "/a"], "--bind"),
    (["--bind", "/a:/b:rx"], "--bind"),
    (["--rootfs", "rel"], "--rootfs"),
    (["--user", "x"], "--user"),
    (["--user", "1:"], "--user"),
    (["--user", "4294967295"], "--user"),
    (["--profile", ""], "--profile"),
])
def test_runctl_refuses_malformed_sandbox_flags(ctl_noaddr, args, what):
    r = ctl_noaddr("exec", *args, "--", "true")
    assert r.rc == 2 and what in r.errtext, r


def test_grpc_sandbox_field_errors(sbx, stub_for):
    s = stub_for(sbx)
    e = rpc_error(exec_call, s, "true", sandbox=pb.Sandbox(profile="default", rootfs="rel"))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "sandbox.rootfs" in e.details()
    e = rpc_error(exec_call, s, "true", sandbox=pb.Sandbox(
        profile="default", binds=[pb.Bind(source=sbx.allow, destination="x")]))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "sandbox.binds[0].destination" in e.details()
    e = rpc_error(exec_call, s, "true", sandbox=pb.Sandbox(profile="default", net=7))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "sandbox.net" in e.details()


def test_user_inside_default_needs_admin_or_own_ids(sbx):
    os.chmod(sbx.base, 0o755)
    p = subprocess.run(as_nobody_argv([runctl_for_nobody(), "--addr", sbx.addr, "exec",
                                       "--profile", "default", "--user", "0", "--", "id", "-u"]),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert p.returncode != 0 and b"PERMISSION_DENIED" in p.stderr, p
    p = subprocess.run(as_nobody_argv([runctl_for_nobody(), "--addr", sbx.addr, "exec",
                                       "--profile", "strict", "--user", "0", "--", "id", "-u"]),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert p.returncode == 0 and p.stdout == b"0\n", p  # root inside, nobody outside


def test_rootless_rund_sandboxes_with_a_user_namespace(tmp_path):
    """A rund that is not root cannot make namespaces without a user
    namespace: default gets one too (mapping the ids onto rund's own)."""
    from conftest import RUND
    d = short_tmpdir("rr-rootless-")
    os.chmod(d, 0o777)
    rund = os.path.join(d, "rund")
    shutil.copy(RUND, rund)
    os.chmod(rund, 0o755)
    sock = os.path.join(d, "s.sock")
    proc = subprocess.Popen(as_nobody_argv([rund, "--listen", "unix:" + sock, "--state-dir",
                                            os.path.join(d, "state")]),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(sock) and time.monotonic() < deadline:
            time.sleep(0.05)
        for profile in ("default", "strict"):
            p = subprocess.run(as_nobody_argv([runctl_for_nobody(), "--addr", "unix:" + sock,
                                               "exec", "--profile", profile, "--", "sh", "-c",
                                               "id -u; echo $$; touch /usr/x 2>/dev/null;"
                                               " echo rc=$?"]),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
            assert p.returncode == 0, (profile, p.stderr)
            uid, pid, rc = p.stdout.decode().split()
            assert uid == "65534" and int(pid) < 10 and rc != "rc=0", (profile, p.stdout)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
        shutil.rmtree(d, ignore_errors=True)
    assert b"ERROR: AddressSanitizer" not in err and b"runtime error" not in err, err[-2000:]

"""runproc behind containerd 1.6's runc v2 shim, as Kubernetes would use it:
a private containerd (own root, state, socket, config.toml), an image made
offline and imported, then ctr run / kill / pause / resume / ps / delete
with runproc as the shim's runc binary. The containers' cgroups are made
below the test's own cgroup (ctr --cgroup with a relative path: below the
shim's, which is ours) and are gone after."""
import os
import pty
import select
import shutil
import signal
import subprocess
import time

import pytest

from conftest import short_tmpdir
from oci_callers import (IMAGE_REF, cgroups_named, make_image_archive, need,
                         remove_cgroup_tree, runproc_wrapper, sanitizer_reports)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containerd needs root")

NS = "rr"
CONFIG = """version = 2
root = "{tmp}/root"
state = "{tmp}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs",
                    "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{tmp}/c.sock"
[ttrpc]
  address = "{tmp}/c.sock.ttrpc"
[debug]
  address = ""
  level = "info"
[metrics]
  address = ""
# what a Kubernetes node would set (the CRI plugin reads it; ctr passes
# --runc-binary instead: containerd 1.6 applies BinaryName to CRI only)
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runproc]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runproc.options]
  BinaryName = "{runproc}"
"""


class Containerd:
    def __init__(self, tmp):
        self.tmp = tmp
        self.sock = os.path.join(tmp, "c.sock")
        self.runproc = runproc_wrapper(tmp)
        self.config = os.path.join(tmp, "config.toml")
        with open(self.config, "w") as f:
            f.write(CONFIG.format(tmp=tmp, runproc=self.runproc))
        self.cgroup = "rr-ctr-%d" % os.getpid()  # our subtree, below our own
        self.log = open(os.path.join(tmp, "containerd.log"), "w+")
        self.proc = subprocess.Popen(["containerd", "--config", self.config],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while self.ctr("version", check=False).returncode != 0:
            assert self.proc.poll() is None, self.logtext()
            assert time.monotonic() < deadline, self.logtext()
            time.sleep(0.2)

    def logtext(self):
        self.log.seek(0)
        return self.log.read()[-4000:]

    def ctr(self, *args, check=True, timeout=40, input=None):
        argv = ["ctr", "--address", self.sock, "--namespace", NS] + list(args)
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                           input=input, stdin=None if input is not None else subprocess.DEVNULL)
        if check:
            assert r.returncode == 0, (args, r.stdout, r.stderr, self.shim_logs())
        return r

    def run_args(self, cid, *extra):
        """ctr run's flags: runproc as runc, a cgroup below ours."""
        return (["run", "--runc-binary", self.runproc, "--snapshotter", "native",
                 "--runc-root", os.path.join(self.tmp, "runc"),
                 "--fifo-dir", os.path.join(self.tmp, "fifo"),
                 "--cgroup", "%s/%s" % (self.cgroup, cid)] + list(extra)
                + [IMAGE_REF, cid])

    def exec_args(self):
        """ctr task exec's FIFOs in our temp dir too."""
        return ["--fifo-dir", os.path.join(self.tmp, "fifo")]

    def shim_logs(self):
        """The log.json of each task the shim has (runproc's errors)."""
        out = ""
        base = os.path.join(self.tmp, "state", "io.containerd.runtime.v2.task", NS)
        if os.path.isdir(base):
            for cid in os.listdir(base):
                p = os.path.join(base, cid, "log.json")
                if os.path.exists(p):
                    with open(p) as f:
                        out += "%s: %s" % (cid, f.read())
        return out

    def task_status(self, cid):
        for line in self.ctr("task", "ls").stdout.splitlines()[1:]:
            f = line.split()
            if f and f[0] == cid:
                return f[2]
        return None

    def wait_status(self, cid, want, timeout=15):
        deadline = time.monotonic() + timeout
        while self.task_status(cid) != want:
            assert time.monotonic() < deadline, (cid, want, self.task_status(cid))
            time.sleep(0.1)

    def stop(self):
        for line in self.ctr("task", "ls", check=False).stdout.splitlines()[1:]:
            cid = line.split()[0]
            self.ctr("task", "kill", "-s", "SIGKILL", cid, check=False)
            self.ctr("task", "delete", "--force", cid, check=False)
        for cid in self.ctr("container", "ls", "-q", check=False).stdout.split():
            self.ctr("container", "delete", cid, check=False)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        # containerd 1.6 puts its shims' sockets in /run/containerd/s
        # whatever its config says: remove what it made for us, and the
        # directories when empty (the shim and ctr make them again as needed)
        for d in ("/run/containerd/runc/" + NS, "/run/containerd/runc", "/run/containerd/s",
                  "/run/containerd/fifo", "/run/containerd"):
            try:
                os.rmdir(d)
            except OSError:
                pass


@pytest.fixture(scope="module")
def ctd():
    need("containerd", "ctr", "containerd-shim-runc-v2")
    tmp = short_tmpdir("rr-ctd-")
    c = None
    try:
        archive = make_image_archive(tmp)
        c = Containerd(tmp)
        c.ctr("image", "import", "--snapshotter", "native", archive, timeout=120)
        yield c
    finally:
        left = []
        if c:
            c.stop()
            left = remove_cgroup_tree(c.cgroup)
            reports = sanitizer_reports(tmp)
        # the shims' mounts are gone with their tasks; the snapshots are files
        subprocess.run(["umount", "-R", os.path.join(tmp, "state")], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
        assert not left, left
        if c:
            assert not reports, reports


def test_containerd_config_has_runproc(ctd):
    # the runtime section a Kubernetes node uses parses and names runproc
    # (in a copy with the CRI plugin on: dump shows only enabled plugins)
    with open(ctd.config) as f:
        text = f.read().replace('"io.containerd.grpc.v1.cri", ', "")
    k8s = os.path.join(ctd.tmp, "k8s.toml")
    with open(k8s, "w") as f:
        f.write(text)
    r = subprocess.run(["containerd", "--config", k8s, "config", "dump"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert 'BinaryName = "%s"' % ctd.runproc in r.stdout, r.stdout
    assert 'runtime_type = "io.containerd.runc.v2"' in r.stdout


def test_run_output_and_exit_codes(ctd):
    r = ctd.ctr(*ctd.run_args("out0", "--rm"), "sh", "-c",
                "echo hello; echo to-stderr >&2; cat /proc/self/cgroup")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("hello\n"), r.stdout
    # in the cgroup ctr asked for, below ours (the memory one here)
    assert ":memory:" not in r.stdout or "/%s/out0\n" % ctd.cgroup in r.stdout, r.stdout
    assert "to-stderr" in r.stderr, r.stderr
    r = ctd.ctr(*ctd.run_args("exit4", "--rm"), "sh", "-c", "exit 4", check=False)
    assert r.returncode == 4, (r.stdout, r.stderr, ctd.shim_logs())
    # --rm: neither the container nor its cgroup is left
    assert "exit4" not in ctd.ctr("container", "ls", "-q").stdout
    assert not cgroups_named(os.path.join(ctd.cgroup, "exit4"))


def test_stdin_through_the_shim(ctd):
    r = ctd.ctr(*ctd.run_args("in0", "--rm"), "sh", "-c", "read x; echo got $x",
                input="abc\n")
    assert "got abc" in r.stdout, (r.stdout, r.stderr)


def test_cgroup_below_ours_with_the_process(ctd):
    ctd.ctr(*ctd.run_args("cg0", "-d"), "sleep", "60")
    try:
        ctd.wait_status("cg0", "RUNNING")
        dirs = cgroups_named(os.path.join(ctd.cgroup, "cg0"))
        assert dirs, "no cgroup made below ours"
        procs = set()
        for d in dirs:
            with open(os.path.join(d, "cgroup.procs")) as f:
                procs |= {int(p) for p in f.read().split()}
        # ctr task ps: what runproc ps --format json gave the shim
        out = ctd.ctr("task", "ps", "cg0").stdout.splitlines()
        listed = {int(line.split()[0]) for line in out[1:] if line.strip()}
        assert listed and listed <= procs, (listed, procs)
    finally:
        ctd.ctr("task", "kill", "-s", "SIGKILL", "cg0")
        ctd.wait_status("cg0", "STOPPED")
        ctd.ctr("task", "delete", "cg0")
        ctd.ctr("container", "delete", "cg0")
    assert not cgroups_named(os.path.join(ctd.cgroup, "cg0"))


def test_kill_pause_resume_ps_delete(ctd):
    ctd.ctr(*ctd.run_args("k0", "-d"), "sh", "-c", "sleep 300 & while :; do sleep 1; done")
    ctd.wait_status("k0", "RUNNING")
    # ps: the init, the shell and its sleeps
    out = ctd.ctr("task", "ps", "k0").stdout.splitlines()
    assert out[0].split()[0] == "PID", out
    assert len(out) >= 3, out
    ctd.ctr("task", "pause", "k0")
    ctd.wait_status("k0", "PAUSED")
    ctd.ctr("task", "resume", "k0")
    ctd.wait_status("k0", "RUNNING")
    # delete of a running task is refused by containerd; kill (TERM) then
    r = ctd.ctr("task", "delete", "k0", check=False)
    assert r.returncode != 0
    ctd.ctr("task", "kill", "k0")
    ctd.wait_status("k0", "STOPPED")
    r = ctd.ctr("task", "delete", "k0")
    # the shell (PID 2 below runproc's init) died of TERM: 128+15
    assert "exit code 143" in r.stderr, r.stderr
    ctd.ctr("container", "delete", "k0")
    assert not cgroups_named(os.path.join(ctd.cgroup, "k0"))


def test_kill_all_and_exit_status(ctd):
    ctd.ctr(*ctd.run_args("ka", "-d"), "sh", "-c", "setsid sleep 300 & exec sleep 300")
    ctd.wait_status("ka", "RUNNING")
    ctd.ctr("task", "kill", "--all", "-s", "SIGKILL", "ka")
    ctd.wait_status("ka", "STOPPED")
    r = ctd.ctr("task", "delete", "ka")
    assert "exit code 137" in r.stderr, r.stderr
    ctd.ctr("container", "delete", "ka")
    assert not cgroups_named(os.path.join(ctd.cgroup, "ka"))


def test_failed_create_reports_runproc_error(ctd):
    # a missing executable: create fails, the shim reports runproc's message
    r = ctd.ctr(*ctd.run_args("bad0", "--rm"), "/no/such/exe", check=False)
    assert r.returncode != 0
    assert 'exec "/no/such/exe"' in r.stderr, r.stderr
    ctd.ctr("container", "delete", "bad0", check=False)
    assert not cgroups_named(os.path.join(ctd.cgroup, "bad0"))


def test_task_exec(ctd):
    # the shim's exec: --process FILE --detach --pid-file, output via FIFOs
    ctd.ctr(*ctd.run_args("ex0", "-d"), "sleep", "300")
    try:
        ctd.wait_status("ex0", "RUNNING")
        r = ctd.ctr("task", "exec", *ctd.exec_args(), "--exec-id", "e1", "ex0", "sh", "-c",
                    "echo in-$(cat /proc/1/cmdline | tr '\\0' ' '); exit 5", check=False)
        assert r.returncode == 5, (r.stdout, r.stderr, ctd.shim_logs())
        assert r.stdout.startswith("in-"), r.stdout
        r = ctd.ctr("task", "exec", *ctd.exec_args(), "--exec-id", "e2", "ex0", "sh", "-c",
                    "read x; echo got $x",
                    input="xyz\n")
        assert "got xyz" in r.stdout, r.stdout
        # the exec'd process is in the container's cgroup while it runs
        r = ctd.ctr("task", "exec", *ctd.exec_args(), "--exec-id", "e3", "ex0", "cat",
                    "/proc/self/cgroup")
        assert ":memory:" not in r.stdout or "/%s/ex0\n" % ctd.cgroup in r.stdout, r.stdout
        r = ctd.ctr("task", "exec", *ctd.exec_args(), "--exec-id", "e4", "ex0", "/no/such",
                    check=False)
        assert r.returncode != 0
    finally:
        ctd.ctr("task", "kill", "-s", "SIGKILL", "ex0")
        ctd.wait_status("ex0", "STOPPED")
        ctd.ctr("task", "delete", "ex0")
        ctd.ctr("container", "delete", "ex0")



def run_in_pty(argv, timeout=40):
    """argv with a terminal of its own (ctr -t wants one): its exit status
    and what it wrote there."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(argv[0], argv)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    data = os.read(fd, 4096)
                except OSError:  # EIO: the child's side is closed
                    break
                if not data:
                    break
                out += data
        for _ in range(100):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status), out.decode(errors="replace")
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return None, out.decode(errors="replace")
    finally:
        os.close(fd)


def test_run_and_exec_with_terminal(ctd):
    # the shim passes --console-socket and reads create's output to EOF:
    # the container must not keep create's stdio (it has the pty)
    ctr = ["ctr", "--address", ctd.sock, "--namespace", NS]
    code, out = run_in_pty(ctr + ctd.run_args("tty0", "--rm", "-t") + [
        "sh", "-c", "[ -t 0 ] && [ -t 1 ] && echo is-a-tty; tty; exit 7"])
    assert "is-a-tty" in out and "/dev/pts/" in out, (out, ctd.shim_logs())
    assert code == 7, (code, out)
    assert not cgroups_named(os.path.join(ctd.cgroup, "tty0"))
    # exec -t into a running container
    ctd.ctr(*ctd.run_args("tty1", "-d"), "sleep", "300")
    try:
        ctd.wait_status("tty1", "RUNNING")
        code, out = run_in_pty(ctr + ["task", "exec", *ctd.exec_args(), "-t", "--exec-id", "x1",
                                      "tty1", "sh", "-c", "[ -t 1 ] && echo exec-tty; exit 3"])
        assert "exec-tty" in out, (out, ctd.shim_logs())
        assert code == 3, (code, out)
    finally:
        ctd.ctr("task", "kill", "-s", "SIGKILL", "tty1")
        ctd.wait_status("tty1", "STOPPED")
        ctd.ctr("task", "delete", "tty1")
        ctd.ctr("container", "delete", "tty1")

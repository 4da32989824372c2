"""runproc behind podman (through conmon) with --runtime: private storage
(vfs) and run dirs, an image made offline and loaded with podman load, then
run (output, exit codes), run -d, stop, pause/unpause, rm. The containers'
cgroups are made below the test's own cgroup (--cgroup-parent) and are gone
after."""
import os
import shutil
import subprocess
import time

import pytest

from conftest import short_tmpdir
from oci_callers import (IMAGE_REF, absent_parent_dirs, cgroups_named, make_image_archive, need,
                         own_cgroup_deepest,
                         remove_cgroup_tree, remove_parent_dirs, runproc_wrapper,
                         sanitizer_reports)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="podman runs as root here")

# podman's default rlimits exceed this host's hard fd limit
ULIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=20000:20000"]


def own_cgroup_parent():
    """An absolute cgroup path below our own cgroup in every hierarchy
    (podman's --cgroup-parent is absolute): our deepest own path, which must
    be below every other one of ours."""
    return own_cgroup_deepest(), "rr-podman-%d" % os.getpid()


class Podman:
    def __init__(self, tmp):
        self.tmp = tmp
        self.runproc = runproc_wrapper(tmp)
        own, self.cgroup = own_cgroup_parent()
        self.absent = absent_parent_dirs()
        self.parent = own + self.cgroup
        self.base = ["podman", "--root", os.path.join(tmp, "root"),
                     "--runroot", os.path.join(tmp, "runroot"),
                     "--tmpdir", os.path.join(tmp, "tmp"),
                     "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs",
                     "--events-backend", "file", "--runtime", self.runproc]

    def __call__(self, *args, check=True, timeout=50):
        r = subprocess.run(self.base + list(args), capture_output=True, text=True,
                           timeout=timeout, stdin=subprocess.DEVNULL)
        if check:
            assert r.returncode == 0, (args, r.stdout, r.stderr)
        return r

    def run_args(self, name, *extra):
        return (["run", "--name", name, "--network", "none", "--cgroup-parent", self.parent]
                + ULIMITS + list(extra) + [IMAGE_REF])

    def status(self, name):
        r = self("inspect", "--format", "{{.State.Status}}", name, check=False)
        return r.stdout.strip() if r.returncode == 0 else None

    def wait_status(self, name, want, timeout=15):
        deadline = time.monotonic() + timeout
        while self.status(name) != want:
            assert time.monotonic() < deadline, (name, want, self.status(name))
            time.sleep(0.1)


@pytest.fixture(scope="module")
def pm():
    need("podman", "conmon")
    tmp = short_tmpdir("rr-pm-")
    p = None
    try:
        archive = make_image_archive(tmp)
        p = Podman(tmp)
        r = p("load", "-i", archive, timeout=120)
        assert IMAGE_REF in r.stdout, r.stdout
        yield p
    finally:
        left, reports = [], ""
        if p:
            p("rm", "--all", "--force", "--time", "0", check=False)
            p("rmi", "--all", "--force", check=False)
            left = remove_cgroup_tree(p.cgroup)
            remove_parent_dirs(p.absent)
            reports = sanitizer_reports(tmp)
        subprocess.run(["umount", "-R", os.path.join(tmp, "root")], capture_output=True)
        subprocess.run(["umount", "-R", os.path.join(tmp, "runroot")], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
        assert not left, left
        assert not reports, reports


def test_run_output_and_exit_codes(pm):
    r = pm(*pm.run_args("out0", "--rm"), "sh", "-c", "echo hello; echo err >&2; "
           "cat /proc/self/cgroup")
    assert r.stdout.startswith("hello\n"), r.stdout
    assert "err" in r.stderr, r.stderr
    # placed below our own cgroup, in podman's libpod-ID
    assert "%s/libpod-" % pm.parent in r.stdout, r.stdout
    r = pm(*pm.run_args("exit3", "--rm"), "sh", "-c", "exit 3", check=False)
    assert r.returncode == 3, (r.stdout, r.stderr)
    assert pm.status("exit3") is None  # --rm


def test_detached_stop_rm(pm):
    pm(*pm.run_args("d0", "-d"), "sh", "-c", "while :; do sleep 1; done")
    pm.wait_status("d0", "running")
    cid = pm("inspect", "--format", "{{.Id}}", "d0").stdout.strip()
    assert cgroups_named("%s/libpod-%s" % (pm.cgroup, cid))
    r = pm("top", "d0", "pid", "args")
    assert "sleep 1" in r.stdout or "while" in r.stdout, r.stdout
    # stop: TERM reaches the shell (PID 2 below runproc's init): 143
    pm("stop", "--time", "10", "d0")
    pm.wait_status("d0", "exited")
    code = pm("inspect", "--format", "{{.State.ExitCode}}", "d0").stdout.strip()
    assert code == "143", code
    pm("rm", "d0")
    assert pm.status("d0") is None
    assert not cgroups_named("%s/libpod-%s" % (pm.cgroup, cid))


def test_stop_kills_after_timeout(pm):
    # TERM ignored: podman's stop sends KILL after the timeout
    pm(*pm.run_args("d1", "-d"), "sh", "-c", "trap '' TERM; while :; do sleep 1; done")
    pm.wait_status("d1", "running")
    pm("stop", "--time", "1", "d1")
    code = pm("inspect", "--format", "{{.State.ExitCode}}", "d1").stdout.strip()
    assert code == "137", code
    pm("rm", "d1")


def test_pause_unpause_kill(pm):
    pm(*pm.run_args("p0", "-d"), "sleep", "300")
    pm.wait_status("p0", "running")
    pm("pause", "p0")
    pm.wait_status("p0", "paused")
    pm("unpause", "p0")
    pm.wait_status("p0", "running")
    pm("kill", "p0")
    pm.wait_status("p0", "exited")
    pm("rm", "p0")


def test_failed_create_reports_runproc_error(pm):
    r = pm(*pm.run_args("bad0", "--rm"), "/no/such/exe", check=False)
    assert r.returncode != 0
    assert 'exec "/no/such/exe"' in r.stderr, r.stderr
    pm("rm", "--force", "bad0", check=False)


def test_exec(pm):
    pm(*pm.run_args("x0", "-d"), "sleep", "300")
    try:
        pm.wait_status("x0", "running")
        r = pm("exec", "x0", "sh", "-c", "echo hi-$(hostname); exit 6", check=False)
        assert r.returncode == 6, (r.stdout, r.stderr)
        assert r.stdout.startswith("hi-"), r.stdout
        r = pm("exec", "--env", "FOO=bar", "--workdir", "/tmp", "x0", "sh", "-c",
               "echo $FOO $(pwd)")
        assert r.stdout == "bar /tmp\n", r.stdout
        r = pm("exec", "x0", "/no/such", check=False)
        assert r.returncode != 0
    finally:
        pm("rm", "--force", "--time", "0", "x0")


def test_run_with_terminal(pm):
    # conmon passes --console-socket and relays the pty master's output
    r = pm(*pm.run_args("t0", "--rm", "-t"), "sh", "-c",
           "[ -t 0 ] && [ -t 1 ] && echo is-a-tty; tty; exit 7", check=False, timeout=40)
    assert "is-a-tty" in r.stdout, (r.stdout, r.stderr)
    assert "/dev/pts/" in r.stdout, r.stdout
    assert r.returncode == 7, (r.returncode, r.stdout, r.stderr)

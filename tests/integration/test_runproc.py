"""runproc, the OCI runtime CLI (runc's command line) on the sandbox engine:
every verb on busybox bundles made here, each failure with its message, exit
codes of run, kill --all, a state that follows the process, concurrent calls
on one container, and the state keys of runc's own CLI on the same bundle."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import RUNPROC, SANITIZER_RE

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="runproc needs root here")

RUNC = "/usr/sbin/runc"


def busybox_root(dest):
    bb = shutil.which("busybox")
    if not bb:
        pytest.skip("busybox-static is not installed")
    os.makedirs(os.path.join(dest, "bin"))
    for d in ("proc", "dev", "sys", "tmp", "etc"):
        os.makedirs(os.path.join(dest, d))
    shutil.copy2(bb, os.path.join(dest, "bin", "busybox"))
    out = subprocess.run([bb, "--list"], capture_output=True, text=True, check=True).stdout
    for name in out.split():
        if name != "busybox":
            os.symlink("busybox", os.path.join(dest, "bin", name))


class Runproc:
    def __init__(self, tmp):
        self.root = os.path.join(tmp, "state")
        self.tmp = tmp
        self.rootfs = os.path.join(tmp, "rootfs")
        busybox_root(self.rootfs)
        self.n = 0

    def __call__(self, *args, check=None, stdout=None, timeout=30, glob=()):
        """Files, not pipes, for its output: a created or detached container
        keeps runproc's stdio (as runc's does), a pipe would not end."""
        argv = [RUNPROC, "--root", self.root] + list(glob) + list(args)
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            p = subprocess.run(argv, stdout=stdout or out, stderr=err,
                               stdin=subprocess.DEVNULL, timeout=timeout)
            out.seek(0)
            err.seek(0)
            r = subprocess.CompletedProcess(argv, p.returncode, out.read(), err.read())
        assert not SANITIZER_RE.search(r.stderr), r.stderr
        if check is True:
            assert r.returncode == 0, (args, r.stderr)
        elif check is not None:
            assert r.returncode == 1, (args, r.returncode, r.stdout)
            assert r.stderr.startswith("runproc: "), r.stderr
            assert check in r.stderr, r.stderr
            assert r.stderr.count("\n") == 1, r.stderr
        return r

    def bundle(self, args, edit=None, name=None, own_root=False):
        """A bundle sharing the busybox root (or with one of its own, which
        runc wants); config from `runproc spec`."""
        self.n += 1
        b = os.path.join(self.tmp, name or "b%d" % self.n)
        os.makedirs(b)
        if own_root:
            busybox_root(os.path.join(b, "rootfs"))
        else:
            os.symlink(self.rootfs, os.path.join(b, "rootfs"))
        self("spec", "--bundle", b, check=True)
        with open(os.path.join(b, "config.json")) as f:
            cfg = json.load(f)
        cfg["process"]["args"] = list(args)
        if edit:
            edit(cfg)
        with open(os.path.join(b, "config.json"), "w") as f:
            json.dump(cfg, f)
        return b

    def state(self, cid):
        r = self("state", cid, check=True)
        return json.loads(r.stdout)

    def wait_status(self, cid, want, timeout=10):
        """The state once it says want (the container may not exist yet)."""
        deadline = time.time() + timeout
        while True:
            r = self("state", cid)
            st = json.loads(r.stdout) if r.returncode == 0 else {}
            if st.get("status") == want or time.time() > deadline:
                assert st, r.stderr
                return st
            time.sleep(0.05)


@pytest.fixture
def rp(tmp_path):
    r = Runproc(str(tmp_path))
    yield r
    # nothing may be left running
    if os.path.isdir(r.root):
        for cid in os.listdir(r.root):
            r("delete", "--force", cid)


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def ns_pids(pid):
    """Processes in the pid namespace of pid."""
    ns = os.stat("/proc/%d/ns/pid" % pid)
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                st = os.stat("/proc/%s/ns/pid" % d)
            except OSError:
                continue
            if (st.st_ino, st.st_dev) == (ns.st_ino, ns.st_dev):
                out.append(int(d))
    return out


def proc_state(pid):
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()[0]


# ---------------------------------------------------------------- spec, features


def test_spec_writes_a_config_runproc_and_runc_take(rp, tmp_path):
    d = str(tmp_path / "s")
    os.makedirs(d)
    rp("spec", "--bundle", d, check=True)
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    assert cfg["process"]["args"] == ["sh"]
    assert cfg["root"] == {"path": "rootfs", "readonly": True}
    assert {n["type"] for n in cfg["linux"]["namespaces"]} == {
        "pid", "network", "ipc", "uts", "mount", "cgroup"}
    assert "/proc/kcore" in cfg["linux"]["maskedPaths"]
    rp("spec", "--bundle", d, check="already exists")
    r = os.path.join(str(tmp_path), "r")
    os.makedirs(r)
    rp("spec", "--rootless", "--bundle", r, check=True)
    with open(os.path.join(r, "config.json")) as f:
        cfg = json.load(f)
    assert {"type": "user"} in cfg["linux"]["namespaces"]
    assert cfg["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 0, "size": 1}]
    assert all("gid=5" not in m.get("options", []) for m in cfg["mounts"])


def test_features(rp):
    f = json.loads(rp("features", check=True).stdout)
    assert f["ociVersionMin"] == "1.0.0"
    assert "rbind" in f["mountOptions"] and "rprivate" in f["mountOptions"]
    lx = f["linux"]
    assert set(lx["namespaces"]) == {"pid", "mount", "ipc", "uts", "cgroup", "network", "user",
                                     "time"}
    assert "CAP_SYS_ADMIN" in lx["capabilities"]
    assert lx["seccomp"]["enabled"] is True
    assert "SCMP_ACT_ERRNO" in lx["seccomp"]["actions"]
    assert "SCMP_CMP_MASKED_EQ" in lx["seccomp"]["operators"]
    assert "SCMP_ARCH_X86_64" in lx["seccomp"]["archs"]


# ---------------------------------------------------------------- run


@pytest.mark.parametrize("script,code", [("exit 0", 0), ("exit 3", 3), ("kill -9 $$", 137)])
def test_run_exits_with_the_container_status(rp, script, code):
    b = rp.bundle(["sh", "-c", "echo out; " + script])
    r = rp("run", "--bundle", b, "c1")
    assert r.returncode == code, r.stderr
    assert r.stdout == "out\n"
    # run removes the container when it ended
    rp("state", "c1", check='container "c1" does not exist')


@pytest.mark.parametrize("args,msg", [
    (("create", "--bogus", "c1"), 'unknown option "--bogus"'),
    (("create", "c1", "c2"), 'unexpected argument "c2"'),
    (("create",), "a container id is needed"),
    (("delete", "-x", "c1"), 'unknown option "-x"'),
    (("delete", "c1", "c2"), 'unexpected argument "c2"'),
    (("events", "--stats", "c1", "c2"), 'unexpected argument "c2"'),
    (("events", "--interval"), 'option "--interval" needs a value'),
    (("update", "c1", "c2"), 'unexpected argument "c2"'),
    (("create", "--preserve-fds", "x", "c1"), 'invalid --preserve-fds "x"'),
])
def test_bad_arguments_are_named(rp, args, msg):
    r = rp(*args, check=msg)
    assert r.returncode != 0

def test_run_inside_view(rp):
    b = rp.bundle(["sh", "-c", "echo $$ $(hostname); cat /proc/1/comm; ls /dev/null;"
                   "touch /x 2>/dev/null || echo ro; grep -c . /proc/net/dev"])
    r = rp("run", "-b", b, "inside", check=True)
    lines = r.stdout.split("\n")
    assert lines[0] == "2 runproc" and lines[1] == "sandbox-init"  # PID 1: the engine's init
    assert lines[2:5] == ["/dev/null", "ro", "3"]  # read-only root; lo only


def mntns_holders(ns):
    """Pids whose mount namespace, or one of whose fds, is ns ("mnt:[N]")."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            links = [os.readlink("/proc/%s/ns/mnt" % d)]
            fds = "/proc/%s/fd" % d
            links += [os.readlink(os.path.join(fds, f)) for f in os.listdir(fds)]
        except OSError:
            continue
        if ns in links:
            out.append(int(d))
    return out


def test_run_holds_the_mount_namespace_and_drops_it_after(rp, tmp_path):
    # run holds the container's mount namespace, so that its teardown (the
    # unmounts' RCU grace period) is not in the init's exit it waits for;
    # a child drops it after run is done: nothing keeps it then
    b = rp.bundle(["sh", "-c", "readlink /proc/self/ns/mnt; exec sleep 2"])
    out = str(tmp_path / "out")
    with open(out, "w") as f:
        run = subprocess.Popen([RUNPROC, "--root", rp.root, "run", "-b", b, "held"], stdout=f,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not open(out).read().endswith("\n") and time.monotonic() < deadline:
            time.sleep(0.05)
        ns = open(out).read().strip()
        assert ns.startswith("mnt:[") and ns != os.readlink("/proc/self/ns/mnt"), ns
        fds = "/proc/%d/fd" % run.pid
        assert ns in [os.readlink(os.path.join(fds, f)) for f in os.listdir(fds)]
        assert run.wait(timeout=30) == 0
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    deadline = time.monotonic() + 30
    while mntns_holders(ns) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert mntns_holders(ns) == []
    assert not os.path.exists(os.path.join(rp.root, "held"))


def test_run_detach_and_pid_file(rp, tmp_path):
    b = rp.bundle(["sleep", "1000"])
    pf = str(tmp_path / "pid")
    r = rp("run", "--detach", "--bundle", b, "--pid-file", pf, "d1", check=True, timeout=10)
    st = rp.state("d1")
    assert st["status"] == "running"
    # no startContainer hook: the command exec'd before run returned, no exec.fifo was made
    init = st["pid"]
    cmd = int(open("/proc/%d/task/%d/children" % (init, init)).read().split()[0])
    assert open("/proc/%d/comm" % cmd).read() == "sleep\n"
    assert sorted(os.listdir(os.path.join(rp.root, "d1"))) == ["state.json"]
    with open(pf) as f:
        assert int(f.read()) == st["pid"]
    rp("kill", "d1", "KILL", check=True)
    assert rp.wait_status("d1", "stopped")["pid"] == 0
    rp("delete", "d1", check=True)
    assert r.returncode == 0


def test_run_forwards_signals(rp):
    b = rp.bundle(["sleep", "1000"])
    p = subprocess.Popen([RUNPROC, "--root", rp.root, "run", "-b", b, "fw"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    rp.wait_status("fw", "running")
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=10) == 128 + signal.SIGTERM


# ---------------------------------------------------------------- create, start


def test_create_waits_until_start(rp, tmp_path):
    b = rp.bundle(["sh", "-c", "echo started $$"])
    out = str(tmp_path / "out")
    pf = str(tmp_path / "pid")
    with open(out, "w") as f:
        rp("create", "--bundle", b, "--pid-file", pf, "c1", check=True, stdout=f)
    st = rp.state("c1")
    assert st["status"] == "created"
    assert st["bundle"] == b and st["rootfs"] == os.path.join(b, "rootfs")
    assert st["created"].endswith("Z") and st["created"][10] == "T"
    with open(pf) as f:
        assert int(f.read()) == st["pid"]
    assert alive(st["pid"])
    # all set up: a pid namespace with the init and the command in it
    assert len(ns_pids(st["pid"])) == 2
    time.sleep(0.3)
    assert open(out).read() == ""  # not exec'd
    assert [c["id"] for c in json.loads(rp("list", "--format", "json", check=True).stdout)] \
        == ["c1"]
    rp("create", "--bundle", b, "c1", check='container "c1" already exists')
    rp("start", "c1", check=True)
    st = rp.wait_status("c1", "stopped")
    assert st["pid"] == 0
    assert open(out).read() == "started 2\n"
    rp("start", "c1", check='container "c1" has stopped')
    rp("kill", "c1", check='container "c1" is not running')
    rp("delete", "c1", check=True)
    rp("state", "c1", check='container "c1" does not exist')


def test_start_of_a_running_one(rp):
    b = rp.bundle(["sleep", "1000"])
    rp("create", "-b", b, "r1", check=True)
    rp("start", "r1", check=True)
    assert rp.state("r1")["status"] == "running"
    rp("start", "r1", check='container "r1" is already running')
    rp("delete", "r1", check='cannot delete container "r1": it is running')
    assert rp.state("r1")["status"] == "running"
    rp("delete", "--force", "r1", check=True)
    assert not os.path.exists(os.path.join(rp.root, "r1"))


def test_delete_of_a_created_one_kills_it(rp):
    b = rp.bundle(["sleep", "1000"])
    rp("create", "-b", b, "c2", check=True)
    pid = rp.state("c2")["pid"]
    rp("delete", "c2", check=True)
    deadline = time.time() + 5
    while alive(pid) and time.time() < deadline:
        time.sleep(0.05)
    assert not alive(pid)


def test_create_failures_name_the_cause(rp, tmp_path):
    def bad_ns(cfg):
        cfg["linux"]["namespaces"][0]["type"] = "pdi"
    b = rp.bundle(["true"], bad_ns)
    rp("create", "-b", b, "x", check='linux.namespaces[0].type: unknown namespace "pdi"')
    b = rp.bundle(["no-such-command"])
    rp("create", "-b", b, "x", check='exec "no-such-command"')

    def tty(cfg):
        cfg["process"]["terminal"] = True
    b = rp.bundle(["true"], tty)
    rp("create", "-b", b, "--console-socket", "/tmp/nope.sock", "x",
       check='--console-socket "/tmp/nope.sock": No such file or directory')
    rp("create", "-b", str(tmp_path / "missing"), "x", check="bundle")
    rp("create", "-b", b, "bad/id", check='invalid container id "bad/id"')
    rp("create", "-b", b, check="a container id is needed")
    rp("create", "-b", b, "--preserve-fds", "-1", "x", check='invalid --preserve-fds "-1"')
    # nothing left of the failed creates
    assert rp("list", "-q", check=True).stdout == ""


# ---------------------------------------------------------------- state, kill


def test_state_follows_a_process_that_died(rp):
    b = rp.bundle(["sleep", "1000"])
    rp("run", "-d", "-b", b, "k1", check=True)
    pid = rp.state("k1")["pid"]
    os.kill(pid, signal.SIGKILL)  # behind runproc's back
    st = rp.wait_status("k1", "stopped")
    assert st["pid"] == 0
    rp("kill", "k1", "9", check='container "k1" is not running')
    rp("delete", "k1", check=True)


@pytest.mark.parametrize("sig,code", [("TERM", 143), ("SIGKILL", 137), ("9", 137),
                                      ("usr1", 128 + 10)])
def test_kill_names_and_numbers(rp, sig, code):
    b = rp.bundle(["sleep", "1000"])
    p = subprocess.Popen([RUNPROC, "--root", rp.root, "run", "-b", b, "k"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    rp.wait_status("k", "running")
    rp("kill", "k", sig, check=True)
    assert p.wait(timeout=10) == code


def test_kill_errors(rp):
    rp("kill", "nope", check='container "nope" does not exist')
    b = rp.bundle(["sleep", "1000"])
    rp("run", "-d", "-b", b, "k", check=True)
    rp("kill", "k", "SIGNOPE", check='invalid signal "SIGNOPE"')
    rp("kill", "k", "99", check='invalid signal "99"')
    rp("kill", "k", check=True)  # TERM by default
    rp.wait_status("k", "stopped")


def test_kill_all_reaches_every_process(rp):
    # a process in a session of its own is out of the init's reach
    b = rp.bundle(["sh", "-c", "setsid sleep 1000 & exec sleep 1000"])
    rp("run", "-d", "-b", b, "ka", check=True)
    init = rp.state("ka")["pid"]
    deadline = time.time() + 5
    while len(ns_pids(init)) < 3 and time.time() < deadline:
        time.sleep(0.05)
    pids = ns_pids(init)
    assert len(pids) == 3
    rp("kill", "--all", "ka", "STOP", check=True)
    deadline = time.time() + 5
    while not all(proc_state(p) == "T" for p in pids if p != init) and time.time() < deadline:
        time.sleep(0.05)
    assert all(proc_state(p) == "T" for p in pids if p != init)
    rp("kill", "--all", "ka", "CONT", check=True)
    rp("kill", "--all", "ka", "KILL", check=True)
    rp.wait_status("ka", "stopped")
    assert not any(alive(p) for p in pids)


# ---------------------------------------------------------------- list, errors, log


def test_list_formats(rp):
    b = rp.bundle(["sleep", "1000"])
    rp("run", "-d", "-b", b, "l1", check=True)
    rp("create", "-b", b, "l2", check=True)
    assert sorted(rp("list", "-q", check=True).stdout.split()) == ["l1", "l2"]
    rows = rp("list", check=True).stdout.splitlines()
    assert rows[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert sorted((r.split()[0], r.split()[2]) for r in rows[1:]) == [
        ("l1", "running"), ("l2", "created")]
    js = json.loads(rp("list", "--format", "json", check=True).stdout)
    assert sorted(c["id"] for c in js) == ["l1", "l2"]
    rp("list", "--format", "xml", check='invalid --format "xml"')


def test_delete_like_runc(rp):
    # --force of what does not exist succeeds (the shim's delete after a
    # failed create); without it, the error
    assert rp("delete", "--force", "nope").returncode == 0
    rp("delete", "nope", check='container "nope" does not exist')
    # what a create that crashed left (no state.json) goes, the id is free
    os.makedirs(os.path.join(rp.root, "crashed"))
    open(os.path.join(rp.root, "crashed", "exec.fifo"), "w").close()
    rp("state", "crashed", check='container "crashed" does not exist')
    rp("delete", "crashed", check='container "crashed" does not exist')
    assert not os.path.exists(os.path.join(rp.root, "crashed"))
    rp("create", "-b", rp.bundle(["true"]), "crashed", check=True)
    rp("delete", "crashed", check=True)


def test_not_implemented_and_unknown(rp):
    for verb in ("checkpoint", "restore"):
        rp(verb, "x", check="runproc: %s: not implemented yet" % verb)
    rp("frobnicate", check='unknown command "frobnicate"')
    rp("--bogus", "list", check='unknown global option "--bogus"')
    for verb in ("start", "state", "delete"):
        rp(verb, "nope", check='container "nope" does not exist')


def test_log_json_for_containerd(rp, tmp_path):
    log = str(tmp_path / "log.json")
    rp("state", "nope", glob=["--log", log, "--log-format", "json"],
       check='container "nope" does not exist')
    lines = [json.loads(x) for x in open(log).read().splitlines()]
    assert lines[-1]["level"] == "error"
    assert lines[-1]["msg"] == 'state: container "nope" does not exist'
    assert lines[-1]["time"].endswith("Z")
    rp("state", "nope", glob=["--log", log, "--log-format=text", "--debug",
                              "--systemd-cgroup", "--rootless", "false"],
       check="does not exist")
    assert 'level=error msg="state: container' in open(log).read().splitlines()[-1]


def test_state_dir_from_environment(rp, tmp_path):
    b = rp.bundle(["true"])
    env = dict(os.environ, RUNPROC_STATE_DIR=str(tmp_path / "envroot"))
    r = subprocess.run([RUNPROC, "create", "-b", b, "e1"], env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, timeout=30)
    assert r.returncode == 0
    assert os.path.isfile(str(tmp_path / "envroot" / "e1" / "state.json"))
    r = subprocess.run([RUNPROC, "delete", "e1"], env=env, capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr


# ---------------------------------------------------------------- cgroups


def own_cgroup_v1(controller):
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if controller in ctrls.split(","):
                return os.path.join("/sys/fs/cgroup", controller, path.lstrip("/"))
    pytest.skip("no cgroup v1 %s hierarchy" % controller)


def test_cgroups_path_and_resources(rp):
    # relative: below our own cgroup in each hierarchy (never elsewhere)
    name = "runproc-test-%d" % os.getpid()
    mem = os.path.join(own_cgroup_v1("memory"), name)
    pids = os.path.join(own_cgroup_v1("pids"), name)

    def limits(cfg):
        cfg["linux"]["cgroupsPath"] = name
        cfg["linux"]["resources"] = {"memory": {"limit": 32 << 20}, "pids": {"limit": 20}}
    b = rp.bundle(["sh", "-c", "sleep 1000 & sleep 1000"], limits)
    rp("run", "-d", "-b", b, "cg1", check=True)
    try:
        init = rp.state("cg1")["pid"]
        assert int(open(os.path.join(mem, "memory.limit_in_bytes")).read()) == 32 << 20
        assert open(os.path.join(pids, "pids.max")).read().strip() == "20"
        procs = [int(p) for p in open(os.path.join(mem, "cgroup.procs")).read().split()]
        assert init in procs and len(procs) >= 3
        # the cgroup is the container's: a second one may not share it
        rp("create", "-b", b, "cg2", check='linux.cgroupsPath "%s"' % name)
        rp("kill", "--all", "cg1", "KILL", check=True)
        rp.wait_status("cg1", "stopped")
        assert os.path.isdir(mem)  # until delete
        rp("delete", "cg1", check=True)
        assert not os.path.exists(mem) and not os.path.exists(pids)
    finally:
        rp("delete", "--force", "cg1")

    def escape(cfg):
        cfg["linux"]["cgroupsPath"] = "../escape"
    rp("create", "-b", rp.bundle(["true"], escape), "bad",
       check='linux.cgroupsPath: "../escape" is not a cgroup path')

    def no_path(cfg):
        cfg["linux"]["resources"] = {"pids": {"limit": 5}}
    rp("create", "-b", rp.bundle(["true"], no_path), "bad",
       check="linux.resources: limits need a linux.cgroupsPath")
    assert rp("list", "-q", check=True).stdout == ""


def test_pause_resume_ps(rp):
    name = "runproc-test-pause-%d" % os.getpid()

    def path(cfg):
        cfg["linux"]["cgroupsPath"] = name
    b = rp.bundle(["sh", "-c", "sleep 1000 & sleep 999"], path)
    rp("run", "-d", "-b", b, "p1", check=True)
    try:
        init = rp.state("p1")["pid"]
        deadline = time.time() + 5
        while len(json.loads(rp("ps", "--format", "json", "p1", check=True).stdout)) < 3 \
                and time.time() < deadline:
            time.sleep(0.05)
        pids = json.loads(rp("ps", "--format", "json", "p1", check=True).stdout)
        assert init in pids and len(pids) == 3  # init, two sleeps (sh execs the last)
        table = rp("ps", "p1", check=True).stdout.splitlines()
        assert table[0].split() == ["PID", "CMD"]
        assert any(line.endswith("sleep 999") for line in table[1:])
        rp("pause", "p1", check=True)
        assert rp.state("p1")["status"] == "paused"
        assert rp.state("p1")["pid"] == init
        assert all(proc_state(p) in ("D", "S", "T") for p in pids)
        rp("pause", "p1", check='container "p1" is paused, not running')
        rp("delete", "p1", check='cannot delete container "p1": it is paused')
        rp("resume", "p1", check=True)
        assert rp.state("p1")["status"] == "running"
        rp("resume", "p1", check='container "p1" is running, not paused')
        # a paused container dies with delete --force (thawed to die)
        rp("pause", "p1", check=True)
        rp("delete", "--force", "p1", check=True)
        assert not any(alive(p) for p in pids)
    finally:
        rp("delete", "--force", "p1")
    # without a cgroup: ps lists the pid namespace; pause is refused
    b = rp.bundle(["sh", "-c", "sleep 1000 & sleep 999"])
    rp("run", "-d", "-b", b, "p2", check=True)
    deadline = time.time() + 5
    while len(json.loads(rp("ps", "--format", "json", "p2", check=True).stdout)) < 3 \
            and time.time() < deadline:
        time.sleep(0.05)
    assert len(json.loads(rp("ps", "--format", "json", "p2", check=True).stdout)) == 3
    rp("pause", "p2", check='container "p2" has no cgroup')
    rp("ps", "--format", "xml", "p2", check='invalid --format "xml"')
    rp("ps", "nope", check='container "nope" does not exist')
    rp("kill", "p2", "KILL", check=True)
    rp.wait_status("p2", "stopped")
    assert rp("ps", "--format", "json", "p2", check=True).stdout == "[]\n"
    rp("pause", "p2", check='container "p2" is stopped, not running')


def test_run_removes_its_cgroup(rp):
    name = "runproc-test-run-%d" % os.getpid()
    mem = os.path.join(own_cgroup_v1("memory"), name)

    def path(cfg):
        cfg["linux"]["cgroupsPath"] = name
    b = rp.bundle(["sh", "-c", "cat /proc/self/cgroup | grep -c memory:/$"], path)
    r = rp("run", "-b", b, "cgr", check=True)
    assert r.stdout == "1\n"  # its own cgroup namespace, rooted at the cgroup
    assert not os.path.exists(mem)


# ---------------------------------------------------------------- concurrency


def test_concurrent_calls_on_one_container(rp):
    b = rp.bundle(["sleep", "1000"])
    results = []

    def call(*args):
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            r = subprocess.run([RUNPROC, "--root", rp.root] + list(args), stdout=out,
                               stderr=err, stdin=subprocess.DEVNULL, timeout=60)
            out.seek(0)
            err.seek(0)
            results.append((args[0], r.returncode, out.read(), err.read()))

    # eight creates of one id: exactly one wins
    ts = [threading.Thread(target=call, args=("create", "-b", b, "cc")) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sorted(r[1] for r in results) == [0] + [1] * 7
    assert all("already exists" in r[3] for r in results if r[1])
    # states, a start and a forced delete at once: each state is whole JSON
    # or "does not exist", and the container ends deleted
    results.clear()
    ts = [threading.Thread(target=call, args=("state", "cc")) for _ in range(8)]
    ts.insert(3, threading.Thread(target=call, args=("start", "cc")))
    ts.insert(6, threading.Thread(target=call, args=("delete", "--force", "cc")))
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for verb, code, out, err in results:
        assert not SANITIZER_RE.search(err), err
        if verb == "state":
            if code == 0:
                assert json.loads(out)["status"] in ("created", "running", "stopped")
            else:
                assert 'container "cc" does not exist' in err
    assert [r[1] for r in results if r[0] == "delete"] == [0]
    rp("state", "cc", check='container "cc" does not exist')
    assert os.listdir(rp.root) == []


# ---------------------------------------------------------------- runc's own CLI


@pytest.mark.skipif(not os.path.exists(RUNC), reason="runc is not installed")
def test_same_state_keys_as_runc(rp, tmp_path):
    b = rp.bundle(["sleep", "1000"], own_root=True)
    def below_us(cfg):  # runc makes a cgroup: relative, below our own in each hierarchy
        cfg["linux"]["cgroupsPath"] = "rr-test-runc-%d" % os.getpid()
    rb = rp.bundle(["sleep", "1000"], below_us, name="runc-bundle", own_root=True)
    runc_root = str(tmp_path / "runc")

    def runc(*args):
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            r = subprocess.run([RUNC, "--root", runc_root] + list(args), stdout=out, stderr=err,
                               stdin=subprocess.DEVNULL, timeout=60)
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(args, r.returncode, out.read(), err.read())

    r = runc("create", "-b", rb, "same")
    assert r.returncode == 0, r.stderr
    try:
        rp("create", "-b", b, "same", check=True)
        for step in ("created", "running"):
            ours = rp.state("same")
            theirs = json.loads(runc("state", "same").stdout)
            assert list(ours) == list(theirs)
            assert ours["status"] == theirs["status"] == step
            assert os.path.basename(ours["rootfs"]) == os.path.basename(theirs["rootfs"])
            if step == "created":
                assert runc("start", "same").returncode == 0
                rp("start", "same", check=True)
        assert runc("kill", "same", "KILL").returncode == 0
        rp("kill", "same", "KILL", check=True)
        time.sleep(0.5)
        ours, theirs = rp.state("same"), json.loads(runc("state", "same").stdout)
        assert list(ours) == list(theirs)
        assert ours["status"] == theirs["status"] == "stopped"
        assert ours["pid"] == theirs["pid"] == 0
        # the same failures
        assert runc("kill", "same", "KILL").returncode == 1
        rp("kill", "same", "KILL", check="not running")
        assert runc("state", "nope").returncode == 1
        rp("state", "nope", check="does not exist")
    finally:
        runc("delete", "--force", "same")

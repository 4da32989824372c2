"""runproc on cgroup v2 (tests/vm/run.py puts it in the VM as /bin/runproc):
a busybox bundle made in the VM, create/start/state/pause/resume/update/
events/kill/delete with a linux.cgroupsPath and memory and pids limits
(pause is cgroup.freeze), the systemd slice form mapped onto a path, and
the refusal of a relative path whose parent has processes. Each scenario
is one job (a shell script) in the VM; its output is checked here."""
import json
import os
import re
import subprocess

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RUNCTL = os.environ.get("RUNCTL") or os.path.join(ROOT, "build", "src", "runctl", "runctl")
TARGET = {k: os.environ.get("RUNRPC_TARGET_" + k) for k in ("ADDR", "CERT", "KEY", "CA")}
SANITIZER_RE = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:")

pytestmark = pytest.mark.skipif(not all(TARGET.values()),
                                reason="no VM target (run tests/vm/run.py)")

CONFIG = {
    "ociVersion": "1.0.2",
    "process": {"args": ["sh", "-c", "sleep 1000 & sleep 999"], "cwd": "/",
                "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}},
    "root": {"path": "rootfs"},
    "hostname": "rp",
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
    "linux": {"namespaces": [{"type": t} for t in ("pid", "mount", "ipc", "uts", "cgroup")]},
}

PRELUDE = r"""
. /etc/rund.env
R="/bin/runproc --root /run/rp-$$"
B=/tmp/rpb-$$
mkdir -p $B/rootfs/bin $B/rootfs/proc $B/rootfs/dev $B/rootfs/sys $B/rootfs/tmp
cp /bin/busybox $B/rootfs/bin/ && /bin/busybox --install -s $B/rootfs/bin
cat >$B/config.json <<'CONFIG_EOF'
%s
CONFIG_EOF
"""


def vm_script(body, cfg, timeout=240):
    script = PRELUDE % json.dumps(cfg) + body + "\nrm -rf $B /run/rp-$$\n"
    cmd = [RUNCTL, "--addr", TARGET["ADDR"], "--tls-cert", TARGET["CERT"],
           "--tls-key", TARGET["KEY"], "--ca", TARGET["CA"], "--no-session-cache",
           "exec", "--", "/bin/sh", "-c", script]
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=timeout)
    out = r.stdout + r.stderr
    assert not SANITIZER_RE.search(out), out
    return out


def marks(out):
    """KEY=VALUE lines the scripts print."""
    return dict(line.split("=", 1) for line in out.splitlines()
                if re.match(r"^[a-z_0-9]+=", line))


def with_cgroup(path, **res):
    cfg = json.loads(json.dumps(CONFIG))
    cfg["linux"]["cgroupsPath"] = path
    if res:
        cfg["linux"]["resources"] = res
    return cfg


def test_lifecycle_with_limits_on_v2():
    cfg = with_cgroup("/rp-test/c1", memory={"limit": 32 << 20}, pids={"limit": 20})
    out = vm_script(r"""
G=/sys/fs/cgroup/rp-test/c1
$R create -b $B c1; echo create=$?
echo created_status=$($R state c1 | grep -o '"status": *"[a-z]*"' | grep -o '[a-z]*"$')
echo memory_max=$(cat $G/memory.max)
echo pids_max=$(cat $G/pids.max)
echo procs_at_create=$(wc -l <$G/cgroup.procs)
$R start c1; echo start=$?
sleep 1
echo pids_current=$(cat $G/pids.current)
$R pause c1; echo pause=$?
echo frozen=$(grep frozen $G/cgroup.events | cut -d' ' -f2)
echo paused_status=$($R state c1 | grep -o '"status": *"[a-z]*"' | grep -o '[a-z]*"$')
$R resume c1; echo resume=$?
echo thawed=$(grep frozen $G/cgroup.events | cut -d' ' -f2)
$R update --memory 64m --pids-limit 30 --cpu-quota 20000 c1; echo update=$?
echo memory_max2=$(cat $G/memory.max)
echo pids_max2=$(cat $G/pids.max)
echo cpu_max=$(cat $G/cpu.max)
echo stats=$($R events --stats c1)
echo ps=$($R ps --format json c1)
$R update --memory -1 --cpu-quota -1 c1; echo unlimit=$?
echo memory_max3=$(cat $G/memory.max) swap_max3=$(cat $G/memory.swap.max)
echo cpu_max3=$(cat $G/cpu.max)
$R kill c1 KILL; echo kill=$?
i=0; while [ $i -lt 50 ] && ! $R state c1 | grep -q stopped; do sleep 0.1; i=$((i+1)); done
echo stopped_status=$($R state c1 | grep -o '"status": *"[a-z]*"' | grep -o '[a-z]*"$')
$R delete c1; echo delete=$?
[ -d $G ] && echo cgroup_after=left || echo cgroup_after=gone
rmdir /sys/fs/cgroup/rp-test
""", cfg)
    m = marks(out)
    assert m.get("create") == "0", out
    assert m["created_status"] == 'created"', out
    assert m["memory_max"] == str(32 << 20) and m["pids_max"] == "20", out
    # the init and the command's process, waiting for start
    assert m["procs_at_create"] == "2", out
    assert m["start"] == "0" and m["pids_current"] == "3", out  # init, sleep, sleep
    assert m["pause"] == "0" and m["frozen"] == "1" and m["paused_status"] == 'paused"', out
    assert m["resume"] == "0" and m["thawed"] == "0", out
    assert m["update"] == "0", out
    assert m["memory_max2"] == str(64 << 20) and m["pids_max2"] == "30", out
    assert m["cpu_max"] == "20000 100000", out
    stats = json.loads(m["stats"])["data"]
    assert stats["memory"]["usage"]["limit"] == 64 << 20, stats
    assert stats["pids"] == {"current": 3, "limit": 30}, stats
    assert len(json.loads(m["ps"])) >= 2, out
    assert m["unlimit"] == "0", out
    assert m["memory_max3"] == "max swap_max3=max", out
    assert m["cpu_max3"] == "max 100000", out
    assert m["kill"] == "0" and m["stopped_status"] == 'stopped"', out
    assert m["delete"] == "0" and m["cgroup_after"] == "gone", out


def test_run_exit_code_and_cgroup_namespace_on_v2():
    cfg = with_cgroup("/rp-test/r1", pids={"limit": 10})
    cfg["process"]["args"] = ["sh", "-c", "cat /proc/self/cgroup; exit 3"]
    out = vm_script(r"""
$R run -b $B r1; echo run=$?
[ -d /sys/fs/cgroup/rp-test/r1 ] && echo cgroup_after=left || echo cgroup_after=gone
rmdir /sys/fs/cgroup/rp-test
""", cfg)
    m = marks(out)
    assert m.get("run") == "3", out
    assert "0::/\n" in out, out  # a cgroup namespace rooted at its cgroup
    assert m["cgroup_after"] == "gone", out


def test_systemd_slice_form_on_v2():
    # --systemd-cgroup: rp-test.slice nests below rp.slice, as systemd does
    out = vm_script(r"""
G=/sys/fs/cgroup/rp.slice/rp-test.slice/rp-s1.scope
$R --systemd-cgroup create -b $B s1; echo create=$?
echo memory_max=$(cat $G/memory.max)
echo state_pid=$($R state s1 | grep -c '"status": "created"')
$R --systemd-cgroup delete --force s1; echo delete=$?
[ -d $G ] && echo cgroup_after=left || echo cgroup_after=gone
rmdir /sys/fs/cgroup/rp.slice/rp-test.slice /sys/fs/cgroup/rp.slice
""", with_cgroup("rp-test.slice:rp:s1", memory={"limit": 16 << 20}))
    m = marks(out)
    assert m.get("create") == "0", out
    assert m["memory_max"] == str(16 << 20), out
    assert m["state_pid"] == "1", out
    assert m["delete"] == "0" and m["cgroup_after"] == "gone", out


def test_refusals_on_v2():
    # relative: below the job's own cgroup, which has processes (ours)
    out = vm_script(r"""
$R create -b $B rel1 2>&1 | head -1
echo left=$(ls /run/rp-$$ | wc -l)
""", with_cgroup("rel/c"))
    assert "cannot enable" in out and "it has processes" in out, out
    assert marks(out)["left"] == "0", out
    out = vm_script(r"""
$R --systemd-cgroup create -b $B sd1 2>&1 | head -1
""", with_cgroup("nope:p:n"))
    assert 'linux.cgroupsPath: "nope" is not a systemd slice' in out, out

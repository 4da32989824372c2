"""runproc update and events (runc's): new limits written into a running
container's cgroup (--resources FILE or stdin, the single-value flags),
what the engine does not set refused by name, and the stats runc prints
(--stats once, --interval streaming until the container stops), read from
the container's cgroup below the test's own."""
import json
import os
import subprocess
import time

import pytest

from conftest import RUNPROC
from test_runproc import Runproc, own_cgroup_v1

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="runproc needs root here")


@pytest.fixture
def rp(tmp_path):
    r = Runproc(str(tmp_path))
    yield r
    if os.path.isdir(r.root):
        for cid in os.listdir(r.root):
            r("delete", "--force", cid)


def read(d, f):
    with open(os.path.join(d, f)) as fh:
        return fh.read().strip()


@pytest.fixture
def running(rp):
    """A running container with a cgroup (memory 32M, pids 20, cpu quota
    50ms of 100ms) below ours: its id, memory, pids and cpu dirs."""
    name = "runproc-test-upd-%d" % os.getpid()

    def limits(cfg):
        cfg["linux"]["cgroupsPath"] = name
        cfg["linux"]["resources"] = {"memory": {"limit": 32 << 20}, "pids": {"limit": 20},
                                     "cpu": {"quota": 50000, "period": 100000}}
    b = rp.bundle(["sh", "-c", "sleep 1000 & sleep 1000"], limits)
    rp("run", "-d", "-b", b, "u1", check=True)
    dirs = {c: os.path.join(own_cgroup_v1(c), name) for c in ("memory", "pids", "cpu")}
    yield "u1", dirs
    rp("delete", "--force", "u1", check=True)
    assert not any(os.path.exists(d) for d in dirs.values())


def test_update_flags(rp, running):
    cid, d = running
    rp("update", "--memory", "64m", "--pids-limit", "30", cid, check=True)
    assert int(read(d["memory"], "memory.limit_in_bytes")) == 64 << 20
    if os.path.exists(os.path.join(d["memory"], "memory.memsw.limit_in_bytes")):
        assert int(read(d["memory"], "memory.memsw.limit_in_bytes")) == 64 << 20
    assert read(d["pids"], "pids.max") == "30"
    # down again (the memsw order reversed), then bytes without a suffix
    rp("update", "--memory", str(16 << 20), cid, check=True)
    assert int(read(d["memory"], "memory.limit_in_bytes")) == 16 << 20
    # a quota alone keeps the period, a period alone keeps the quota
    rp("update", "--cpu-quota", "20000", cid, check=True)
    assert read(d["cpu"], "cpu.cfs_quota_us") == "20000"
    assert read(d["cpu"], "cpu.cfs_period_us") == "100000"
    rp("update", "--cpu-period", "50000", cid, check=True)
    assert read(d["cpu"], "cpu.cfs_quota_us") == "20000"
    assert read(d["cpu"], "cpu.cfs_period_us") == "50000"
    assert rp.state(cid)["status"] == "running"


def test_update_resources_file_and_stdin(rp, running, tmp_path):
    cid, d = running
    res = tmp_path / "res.json"
    # as containerd's shim writes it: unset fields as null/0/empty pass
    res.write_text(json.dumps({"memory": {"limit": 48 << 20, "swap": None},
                               "cpu": {"quota": 30000, "period": 60000, "shares": 0},
                               "pids": {"limit": 25}, "devices": []}))
    rp("update", "--resources", str(res), cid, check=True)
    assert int(read(d["memory"], "memory.limit_in_bytes")) == 48 << 20
    assert read(d["cpu"], "cpu.cfs_quota_us") == "30000"
    assert read(d["cpu"], "cpu.cfs_period_us") == "60000"
    assert read(d["pids"], "pids.max") == "25"
    # stdin ("-"), and a flag over the file's value
    r = subprocess.run([RUNPROC, "--root", rp.root, "update", "--resources", "-",
                        "--pids-limit", "27", cid],
                       input=json.dumps({"pids": {"limit": 26}}), capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert read(d["pids"], "pids.max") == "27"


def test_update_refusals(rp, running, tmp_path):
    cid, d = running
    bad = tmp_path / "bad.json"
    cases = [
        ({"cpu": {"shares": 512}},
         "linux.resources.cpu.shares: not supported by runproc"),
        ({"memory": {"limitt": 5}}, "linux.resources.memory.limitt: unknown field"),
        ({"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]},
         "linux.resources.hugepageLimits: not supported by runproc"),
        ({"nope": 1}, "linux.resources.nope: unknown field"),
        ({"memory": {"limit": -2}}, "linux.resources.memory.limit: -2 (want -1 for no limit"),
        ({"cpu": {"period": -1}}, "linux.resources.cpu.period"),
        ({"memory": {"limit": 10}}, "memory"),  # below the engine's 1 MiB floor
        ({"pids": {"limit": "x"}}, "linux.resources.pids.limit"),
        ({"cpu": "x"}, "linux.resources.cpu: want an object"),
    ]
    for res, msg in cases:
        bad.write_text(json.dumps(res))
        rp("update", "--resources", str(bad), cid, check=msg)
    bad.write_text("{\"pids\": {\"limit\": 5},}")
    rp("update", "--resources", str(bad), cid, check="not a JSON object")
    rp("update", "--resources", str(tmp_path / "none.json"), cid, check="none.json")
    rp("update", "--blkio-weight", "500", cid, check="--blkio-weight: not supported by runproc")
    rp("update", "--cpu-share=5", cid, check="--cpu-share=5: not supported by runproc")
    rp("update", "--memory", "12x", cid, check='invalid --memory "12x"')
    rp("update", "--pids-limit", "-2", cid, check='invalid --pids-limit "-2"')
    rp("update", "--cpu-period", "-1", cid, check='invalid --cpu-period "-1"')
    rp("update", "--frob", cid, check='unknown option "--frob"')
    rp("update", "--memory", "64m", "nope", check='container "nope" does not exist')
    # nothing of the refused ones was written
    assert int(read(d["memory"], "memory.limit_in_bytes")) == 32 << 20
    assert read(d["pids"], "pids.max") == "20"


def test_update_to_no_limit(rp, running, tmp_path):
    cid, d = running
    # -1 removes a limit: by flag, and by --resources (memsw first on v1)
    rp("update", "--memory", "-1", "--cpu-quota", "-1", cid, check=True)
    assert int(read(d["memory"], "memory.limit_in_bytes")) > 1 << 60
    if os.path.exists(os.path.join(d["memory"], "memory.memsw.limit_in_bytes")):
        assert int(read(d["memory"], "memory.memsw.limit_in_bytes")) > 1 << 60
    assert read(d["cpu"], "cpu.cfs_quota_us") == "-1"
    assert read(d["cpu"], "cpu.cfs_period_us") == "100000"
    assert read(d["pids"], "pids.max") == "20"  # untouched
    res = tmp_path / "res.json"
    res.write_text(json.dumps({"pids": {"limit": -1}, "memory": {"limit": 48 << 20}}))
    rp("update", "--resources", str(res), cid, check=True)
    assert read(d["pids"], "pids.max") == "max"
    assert int(read(d["memory"], "memory.limit_in_bytes")) == 48 << 20
    # a flag over the file: --pids-limit 9 wins over its -1
    rp("update", "--resources", str(res), "--pids-limit", "9", cid, check=True)
    assert read(d["pids"], "pids.max") == "9"
    ev = json.loads(rp("events", "--stats", cid, check=True).stdout)["data"]
    assert ev["pids"]["limit"] == 9 and ev["memory"]["usage"]["limit"] == 48 << 20


def test_update_without_cgroup_or_stopped(rp):
    rp("run", "-d", "-b", rp.bundle(["sleep", "1000"]), "nocg", check=True)
    rp("update", "--memory", "64m", "nocg", check='container "nocg" has no cgroup')
    rp("events", "--stats", "nocg", check='container "nocg" has no cgroup')
    rp("kill", "nocg", "KILL", check=True)
    rp.wait_status("nocg", "stopped")
    rp("update", "--memory", "64m", "nocg", check='container "nocg" is stopped')
    rp("events", "--stats", "nocg", check='container "nocg" is stopped')


def test_events_stats(rp, running):
    cid, d = running
    r = rp("events", "--stats", cid, check=True)
    ev = json.loads(r.stdout)
    assert ev["type"] == "stats" and ev["id"] == cid
    data = ev["data"]
    assert data["memory"]["usage"]["limit"] == 32 << 20
    assert data["memory"]["usage"]["usage"] > 0
    assert data["pids"] == {"current": 3, "limit": 20}  # init, two sleeps
    assert data["cpu"]["usage"]["total"] > 0
    assert {e["op"] for e in data["blkio"]["ioServiceBytesRecursive"]} == {"Read", "Write"}
    rp("events", "--interval", "5x", cid, check='invalid --interval "5x"')
    rp("events", "--stats", "nope", check='container "nope" does not exist')


def test_events_stream_ends_with_the_container(rp, running):
    cid, d = running
    p = subprocess.Popen([RUNPROC, "--root", rp.root, "events", "--interval", "100ms",
                          cid], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(p.stdout.readline())
        second = json.loads(p.stdout.readline())
        assert first["type"] == second["type"] == "stats"
        rp("kill", "--all", cid, "KILL", check=True)
        out, err = p.communicate(timeout=20)
        assert p.returncode == 0, err
        for line in out.splitlines():
            assert json.loads(line)["type"] == "stats"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_events_oom(rp):
    name = "runproc-test-oom-%d" % os.getpid()
    mem = os.path.join(own_cgroup_v1("memory"), name)
    if not os.path.exists(os.path.join(os.path.dirname(mem), "memory.oom_control")):
        pytest.skip("no memory.oom_control")

    def limits(cfg):
        cfg["linux"]["cgroupsPath"] = name
        cfg["linux"]["resources"] = {"memory": {"limit": 8 << 20}}
    # the shell stays; a child that grows past the limit is OOM-killed
    b = rp.bundle(["sh", "-c", "sleep 1; (echo 1000 >/proc/self/oom_score_adj; "
                   "x=$(dd if=/dev/zero bs=1M count=64 2>/dev/null | tr '\\0' a)); "
                   "sleep 1000"], limits)
    rp("run", "-d", "-b", b, "oom1", check=True)
    p = subprocess.Popen([RUNPROC, "--root", rp.root, "events", "--interval", "100ms",
                          "oom1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        seen = []
        while time.monotonic() < deadline:
            ev = json.loads(p.stdout.readline())
            seen.append(ev["type"])
            if ev["type"] == "oom":
                break
        assert "oom" in seen, seen
    finally:
        p.kill()
        p.wait()
        rp("delete", "--force", "oom1", check=True)

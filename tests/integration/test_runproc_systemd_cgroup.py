"""runproc --systemd-cgroup: linux.cgroupsPath in systemd's
"slice:prefix:name" form, each malformed one refused by name before
anything is made (the mapping onto a cgroupfs path, and its use, are tested
in tests/unit/cgroup_path_test.c and, on cgroup v2, tests/vm); where no
systemd answers on the system bus (none here: a private dbus-daemon, or no
bus at all) runproc makes that path itself and says so once in the log."""
import glob
import json
import os
import shutil
import subprocess

import pytest

from conftest import RUNPROC
from test_runproc import Runproc
from test_runproc_rootless import Rootless, as_nobody

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="runproc needs root here")


@pytest.fixture
def rp(tmp_path):
    return Runproc(str(tmp_path))


@pytest.mark.parametrize("path,msg", [
    ("rel/c", 'linux.cgroupsPath: "rel/c" is not systemd\'s "slice:prefix:name"'),
    ("a.slice:b", "is not systemd's"),
    ("a.slice:p:../../n", "is not systemd's"),
    ("nope:p:n", 'linux.cgroupsPath: "nope" is not a systemd slice'),
    ("a--b.slice:p:n", '"a--b.slice" is not a systemd slice'),
    ("a.slice::..", 'linux.cgroupsPath: "/a.slice/.." is not a cgroup path'),
])
def test_systemd_form_refused(rp, path, msg):
    def edit(cfg):
        cfg["linux"]["cgroupsPath"] = path
    b = rp.bundle(["true"], edit)
    rp("create", "-b", b, "sd", check=msg, glob=["--systemd-cgroup"])
    assert rp("list", "-q", check=True).stdout == ""


def test_no_systemd_to_ask_falls_back_and_says_so_once():
    """As uid 65534, so that making the path itself fails (EACCES in the
    hierarchies' roots) and nothing is made on this host: what matters is
    that runproc got that far and what its log says."""
    if not shutil.which("dbus-daemon"):
        pytest.skip("dbus-daemon is not installed")
    rl = Rootless()
    daemon = None
    try:
        slice_ = "rrtest%d.slice" % os.getpid()
        path = os.path.join(rl.bundle, "config.json")
        with open(path) as f:
            cfg = json.load(f)
        cfg["linux"]["cgroupsPath"] = slice_ + ":rp:c"
        with open(path, "w") as f:
            json.dump(cfg, f)
        # a bus with nobody on it but us: systemd does not answer there
        daemon = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address",
                                   "--address=unix:path=%s/bus" % rl.dir],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  preexec_fn=as_nobody, text=True)
        address = daemon.stdout.readline().strip()
        assert address.startswith("unix:"), address
        # a build without libsystemd asks nobody and says that instead
        sd_bus = "libsystemd" in subprocess.run(["ldd", RUNPROC], capture_output=True,
                                                text=True).stdout
        for bus, why in ((address, "systemd does not answer on the system bus"),
                         ("unix:path=%s/none" % rl.dir, "no system bus")):
            why = why if sd_bus else "runproc was built without sd-bus (libsystemd)"
            log = os.path.join(rl.dir, "log.json")
            r = rl("--log", log, "--log-format", "json", "--systemd-cgroup", "create", "c",
                   env={"DBUS_SYSTEM_BUS_ADDRESS": bus})
            assert r.returncode == 1 and "Permission denied" in r.stderr, r.stderr
            lines = [json.loads(line) for line in open(log)]
            warnings = [x["msg"] for x in lines if x["level"] == "warning"]
            assert len(warnings) == 1, lines
            assert why in warnings[0], warnings
            assert ("the cgroup of rp-c.scope is made at the path systemd would give it, no "
                    "scope unit") in warnings[0]
            assert [x["level"] for x in lines] == ["warning", "error"]
            os.unlink(log)
        assert not glob.glob("/sys/fs/cgroup/*/%s" % slice_)
        assert not glob.glob("/sys/fs/cgroup/%s" % slice_)
    finally:
        if daemon:
            daemon.kill()
            daemon.wait()
        rl.close()

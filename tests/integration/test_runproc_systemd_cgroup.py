"""runproc --systemd-cgroup: linux.cgroupsPath in systemd's
"slice:prefix:name" form, each malformed one refused by name before
anything is made (the mapping onto a cgroupfs path, and its use, are tested
in tests/unit/cgroup_path_test.c and, on cgroup v2, tests/vm)."""
import os

import pytest

from test_runproc import Runproc

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

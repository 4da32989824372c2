"""An image user's supplementary groups, as podman gives them: for each
User form the ids and the process's groups (`id -u`, `id -g`, `id -G` and
the Groups line of /proc/self/status, which is exactly what setgroups set)
are compared with `podman run --user` on the same layers. A hostile
/etc/group (larger than rund reads, a symlink out of the image, garbage
lines, a user in too many groups) is read inside the image and bounded."""
import os
import shutil
import subprocess

import pytest

from conftest import short_tmpdir
from image_helpers import busybox_members, layer_tar, tar_of_dir, write_oci_layout
from oci_callers import absent_parent_dirs, need, own_cgroup_deepest, remove_cgroup_tree, remove_parent_dirs

PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "app:x:1000:1001:App:/home/app:/bin/sh\n"
          "solo:x:2000:2000::/:/bin/sh\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
# app is in staff (50) and wheel (10), twice in 50 and once in its own gid
GROUP = ("root:x:0:\napp:x:1001:\nstaff:x:50:app,solo\nwheel:x:10:root,app\n"
         "solo2:x:2001:solo\ndup:x:50:app\napp2:x:1001:app\nnear:x:88:apps,xapp\n")
PROBE = "id -u; id -g; id -G; cat /proc/self/status"
USERS = ["app", "1000", "solo", "root", "nobody", "app:staff", "app:50", "1000:1001", "4242",
         "4242:77"]
PODMAN_REF = "localhost/rr-groups:1"
ULIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=20000:20000"]


def need_root():
    if os.geteuid() != 0:
        pytest.skip("image roots need rund as root")


def ids_of(text):
    """(uid, gid, id -G, the Groups line's gids) of PROBE's output."""
    lines = text.splitlines()
    groups = [line.split(":", 1)[1].split() for line in lines if line.startswith("Groups:")]
    assert len(groups) == 1, text
    return lines[0], lines[1], lines[2].split(), groups[0]


def import_image(ctl, tmp, name, layers, config):
    layout = write_oci_layout(os.path.join(tmp, name.replace(":", "-")), layers, config,
                              ref=name, comp="gzip")
    r = ctl("image", "import", tar_of_dir(layout, layout + ".tar"), timeout=120)
    assert r.rc == 0, r
    return layout + ".tar"


def rund_ids(ctl, image, *extra, profile="default"):
    r = ctl("exec", "--profile", profile, "--image", image, *extra, "--", "sh", "-c", PROBE)
    assert r.rc == 0, r
    return ids_of(r.text)


class Podman:
    """podman with private storage, runc (crun refuses this hybrid host),
    its containers' cgroups below ours."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.cgroup = "rr-groups-%d" % os.getpid()
        self.parent = own_cgroup_deepest() + self.cgroup
        self.absent = absent_parent_dirs()
        self.base = ["podman", "--root", os.path.join(tmp, "root"),
                     "--runroot", os.path.join(tmp, "runroot"), "--tmpdir",
                     os.path.join(tmp, "tmp"), "--storage-driver", "vfs",
                     "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                     "--runtime", shutil.which("runc") or "runc"]

    def __call__(self, *args, timeout=120):
        r = subprocess.run(self.base + list(args), capture_output=True, text=True,
                           timeout=timeout, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        return r

    def ids(self, user):
        return ids_of(self("run", "--rm", "--network", "none", "--cgroup-parent", self.parent,
                           *ULIMITS, "--user", user, PODMAN_REF, "sh", "-c", PROBE).stdout)

    def close(self):
        subprocess.run(self.base + ["rm", "--all", "--force", "--time", "0"], capture_output=True)
        subprocess.run(self.base + ["rmi", "--all", "--force"], capture_output=True)
        left = remove_cgroup_tree(self.cgroup)
        remove_parent_dirs(self.absent)
        for d in ("root", "runroot"):
            subprocess.run(["umount", "-R", os.path.join(self.tmp, d)], capture_output=True)
        return left


def users_layer():
    return layer_tar([("etc/passwd", "file", PASSWD), ("etc/group", "file", GROUP),
                      ("home/app/", "dir", None)])


# a dozen podman runs: well over a minute on a loaded machine
@pytest.mark.timeout(300)
def test_groups_as_podman_gives_them(rund, ctl, tmp_path):
    need_root()
    need("podman", "runc")
    base, ul = layer_tar(busybox_members()), users_layer()
    # rund: one image per User (the same two layers); podman: --user on them
    for i, user in enumerate(USERS):
        import_image(ctl, str(tmp_path), "grp-%d:1" % i, [base, ul],
                     {"User": user, "Cmd": ["/bin/sh"]})
    layout = write_oci_layout(str(tmp_path / "pm"), [base, ul], {"Cmd": ["/bin/sh"]},
                              ref=PODMAN_REF, comp="gzip")
    tmp = short_tmpdir("rr-grp-")
    pm = None
    try:
        pm = Podman(tmp)
        pm("load", "-i", tar_of_dir(layout, os.path.join(tmp, "image.tar")))
        for i, user in enumerate(USERS):
            want = pm.ids(user)
            got = rund_ids(ctl, "grp-%d:1" % i)
            assert got == want, (user, got, want)
        # what podman gave, spelt out (so a podman that changed is seen)
        assert pm.ids("app")[3] == ["10", "50", "1001"]
        assert pm.ids("app:staff")[3] == ["50"]
        # the request's own ids (always UID:GID): the gid alone, as podman's
        got = rund_ids(ctl, "grp-0:1", "--user", "1000:1001")
        assert got == pm.ids("1000:1001") and got[3] == ["1001"], got
    finally:
        left = pm.close() if pm else []
        shutil.rmtree(tmp, ignore_errors=True)
    assert not left, left
    # strict maps one gid onto the caller's: the only group there can be
    assert rund_ids(ctl, "grp-0:1", profile="strict") == ("1000", "1001", ["1001"], ["1001"])


def test_group_file_hostile(rund, ctl, tmp_path):
    need_root()
    base = layer_tar(busybox_members())
    pw = ("etc/passwd", "file", PASSWD)
    cfg = {"User": "app", "Cmd": ["/bin/sh"]}
    # a file on the host the image points at: never read
    host = short_tmpdir("rr-grp-host-")
    try:
        hostfile = os.path.join(host, "group")
        with open(hostfile, "w") as f:
            f.write("evil:x:777:app\n")
        inside = hostfile.lstrip("/")
        images = {
            "abs": [("etc/group", "symlink", hostfile)],
            # the same path inside the image is what the symlink names
            "inside": [("etc/group", "symlink", hostfile), ("tmp/", "dir", None),
                       (os.path.dirname(inside) + "/", "dir", None),
                       (inside, "file", "inside:x:555:app\n")],
        }
        for name, members in images.items():
            import_image(ctl, str(tmp_path), "g-%s:1" % name,
                         [base, layer_tar([pw] + members)], cfg)
        assert rund_ids(ctl, "g-abs:1")[3] == ["1001"]
        # a relative one that climbs out is refused at import already
        layout = write_oci_layout(str(tmp_path / "g-rel"), [base, layer_tar(
            [pw, ("etc/group", "symlink", "../../../../../../../.." + hostfile)])], cfg,
            ref="g-rel:1", comp="gzip")
        r = ctl("image", "import", tar_of_dir(layout, layout + ".tar"), timeout=120)
        assert r.rc != 0 and "leaves the root: refused" in r.errtext, r
        assert rund_ids(ctl, "g-inside:1")[3] == ["555", "1001"]
    finally:
        shutil.rmtree(host, ignore_errors=True)

    # garbage: binary junk, lines of many colons, a 100 KiB line naming app
    # (skipped: lines are bounded), a bad gid, then one good line
    junk = bytes(range(1, 256)) * 4000 + b"\n"
    junk += b":" * 5000 + b"\n" + b"x:x:778:" + b"y," * 50000 + b"app\n"
    junk += b"bad:x:-1:app\nbig:x:99999999999:app\nbad2:x:12a:app\n::::\n:\n\n\n"
    junk += b"good:x:4321:app\n"
    import_image(ctl, str(tmp_path), "g-junk:1",
                 [base, layer_tar([pw, ("etc/group", "file", junk)])], cfg)
    assert rund_ids(ctl, "g-junk:1")[3] == ["1001", "4321"]

    # larger than rund reads: refused, saying why
    huge = b"#" * (5 << 20) + b"\nstaff:x:50:app\n"
    import_image(ctl, str(tmp_path), "g-huge:1",
                 [base, layer_tar([pw, ("etc/group", "file", huge)])], cfg)
    r = ctl("exec", "--profile", "default", "--image", "g-huge:1", "--", "true")
    assert r.rc == 125 and "FAILED_PRECONDITION" in r.errtext, r
    assert 'User "app": the image\'s /etc/group is larger than 4194304 bytes' in r.errtext, r

    # in more groups than a process may have: refused, not cut
    many = "".join("g%d:x:%d:app\n" % (i, 3000 + i) for i in range(300))
    import_image(ctl, str(tmp_path), "g-many:1",
                 [base, layer_tar([pw, ("etc/group", "file", many)])], cfg)
    r = ctl("exec", "--profile", "default", "--image", "g-many:1", "--", "true")
    assert r.rc == 125 and "FAILED_PRECONDITION" in r.errtext, r
    assert 'user "app" is in more than 256 groups' in r.errtext, r

    # not a regular file (a directory): refused
    import_image(ctl, str(tmp_path), "g-dir:1",
                 [base, layer_tar([pw, ("etc/group/", "dir", None)])], cfg)
    r = ctl("exec", "--profile", "default", "--image", "g-dir:1", "--", "true")
    assert r.rc == 125 and "/etc/group is not a regular file" in r.errtext, r

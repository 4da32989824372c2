"""An image's config User applied as docker applies it (names from the
image's own /etc/passwd and /etc/group, HOME from its entry, the request's
ids winning, an unknown user refused, a non-admin refused host ids in a
default sandbox but not under strict), and the no-overlayfs fallback
(`rund --image-roots copy`): the same layered image, whiteouts and opaque
directories included, gives the same tree as the overlay, writes stay in
each command's copy, nothing is left after. Images written by the test
(a static busybox layer plus layers of its own)."""
import json
import os
import subprocess
import time

import grpc
import pytest

from conftest import RUNCTL, check_no_sanitizer, exec_call, pb, wait
from image_helpers import busybox_members, layer_tar, tar_of_dir, write_oci_layout

PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "app:x:1000:1001:App:/home/app:/bin/sh\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
GROUP = "root:x:0:\napp:x:1001:\nstaff:x:50:app\n"


def need_root():
    if os.geteuid() != 0:
        pytest.skip("image roots need rund as root")


def import_image(ctl, tmp, name, layers, config=None, comp="gzip"):
    layout = write_oci_layout(os.path.join(tmp, name.replace(":", "-")), layers, config,
                              ref=name, comp=comp)
    archive = tar_of_dir(layout, layout + ".tar")
    r = ctl("image", "import", archive, timeout=120)
    assert r.rc == 0, r


def users_layer():
    return layer_tar([("etc/passwd", "file", PASSWD), ("etc/group", "file", GROUP),
                      ("home/app/", "dir", None)])


@pytest.fixture
def users(rund, ctl, tmp_path):
    need_root()
    base = layer_tar(busybox_members())
    ul = users_layer()
    for name, user in (("u-name:1", "app"), ("u-group:1", "app:staff"), ("u-num:1", "4242"),
                       ("u-ghost:1", "ghost"), ("u-badgroup:1", "app:nogroup")):
        import_image(ctl, str(tmp_path), name, [base, ul], {"User": user, "Cmd": ["/bin/sh"]})
    return rund


def run_id(ctl, image, *extra, profile="default"):
    return ctl("exec", "--profile", profile, "--image", image, *extra, "--", "sh", "-c",
               'echo "$(id -u) $(id -g) $HOME $USER"')


def test_image_user_applied(users, ctl):
    r = run_id(ctl, "u-name:1")
    assert r.rc == 0 and r.text == "1000 1001 /home/app app\n", r
    r = run_id(ctl, "u-group:1")
    assert r.rc == 0 and r.text == "1000 50 /home/app app\n", r
    r = run_id(ctl, "u-num:1")  # a uid passwd does not list: gid 0, HOME /
    assert r.rc == 0 and r.text.split()[:3] == ["4242", "0", "/"], r
    r = run_id(ctl, "u-name:1", profile="strict")  # ids inside a user namespace
    assert r.rc == 0 and r.text == "1000 1001 /home/app app\n", r
    # the request's ids and env win
    r = run_id(ctl, "u-name:1", "--user", "7:8", "--env", "HOME=/tmp")
    assert r.rc == 0 and r.text.split()[:3] == ["7", "8", "/tmp"], r


def test_image_user_unknown(users, ctl):
    stub = users.stub()
    for image, words in (("u-ghost:1", 'User "ghost": no user "ghost" in the image\'s /etc/passwd'),
                         ("u-badgroup:1",
                          'User "app:nogroup": no group "nogroup" in the image\'s /etc/group')):
        with pytest.raises(grpc.RpcError) as ei:
            stub.Start(pb.StartRequest(command=pb.Command(path="true"),
                                       sandbox=pb.Sandbox(profile="default", image=image)),
                       timeout=30)
        assert ei.value.code() == grpc.StatusCode.FAILED_PRECONDITION, ei.value.details()
        assert 'sandbox.image: image "%s": %s' % (image, words) in ei.value.details()
        r = ctl("run", "--image", image, "--", "true")
        assert r.rc == 125 and "FAILED_PRECONDITION" in r.errtext and words in r.errtext, r
    # a request's own ids need no lookup
    r = run_id(ctl, "u-ghost:1", "--user", "3:3")
    assert r.rc == 0 and r.text.startswith("3 3 "), r
    roots = os.path.join(users.state, "images", "roots")
    end = time.monotonic() + 20
    while os.listdir(roots) and time.monotonic() < end:
        time.sleep(0.05)
    assert os.listdir(roots) == []


def run_as_nobody(rund, *args):
    env = {k: v for k, v in os.environ.items()
           if k in ("LD_LIBRARY_PATH", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")}
    env.update(PATH="/usr/bin:/bin", HOME="/")
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                        RUNCTL, "--addr", rund.addr, *args],
                       capture_output=True, timeout=60, env=env)
    check_no_sanitizer(p.stderr, "runctl as nobody")
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def test_image_user_host_ids_need_an_admin(users):
    os.chmod(users.base, 0o711)
    rc, out, err = run_as_nobody(users, "exec", "--profile", "default", "--image", "u-name:1",
                                 "--", "id", "-u")
    assert rc == 125 and "PERMISSION_DENIED" in err, err
    assert 'image "u-name:1" runs as User "app" (1000:1001): inside a default sandbox those ' \
           "are the host's ids" in err, err
    # strict maps the ids inside onto the caller's
    rc, out, err = run_as_nobody(users, "exec", "--profile", "strict", "--image", "u-name:1",
                                 "--", "id", "-u")
    assert rc == 0 and out == "1000\n", err
    # a caller naming its own ids runs as itself
    rc, out, err = run_as_nobody(users, "exec", "--profile", "default", "--image", "u-name:1",
                                 "--user", "65534:65534", "--", "id", "-u")
    assert rc == 0 and out == "65534\n", err


# ---------------------------------------------------------------- copy roots

def layered_image():
    """Three layers: whiteouts of a file and of a directory, an opaque
    directory, a file replaced, hard links, a symlink."""
    low = layer_tar(busybox_members() + [
        ("data/", "dir", None), ("data/keep", "file", "keep\n"), ("data/gone", "file", "g\n"),
        ("data/sub/", "dir", None), ("data/sub/old", "file", "old\n"),
        ("data/tree/", "dir", None), ("data/tree/a", "file", "a\n"),
        ("data/swap", "file", "low\n"), ("data/link", "symlink", "keep")])
    mid = layer_tar([("data/.wh.gone", "file", ""), ("data/sub/.wh..wh..opq", "file", ""),
                     ("data/sub/new", "file", "new\n"), ("data/swap", "file", "mid\n"),
                     ("data/h1", "file", "hard\n"), ("data/h2", "hardlink", "data/h1")])
    top = layer_tar([("data/.wh.tree", "file", ""), ("data/added", "file", "top\n")])
    return [low, mid, top]


LIST = ("cd /data && find . | sort | tr '\\n' ' '; echo; cat swap sub/new keep; "
        "ls -i h1 h2 | (read a x; read b y; test $a = $b && echo linked); readlink link")


@pytest.mark.parametrize("mode", ["copy", "overlay"])
def test_image_roots_modes_give_the_same_tree(rund_factory, tmp_path, mode):
    need_root()
    from conftest import Ctl
    r = rund_factory(extra_args=["--image-roots", mode]).start()
    ctl = Ctl(r.addr)
    import_image(ctl, str(tmp_path), "layered:1", layered_image(), {"Cmd": ["/bin/sh"]},
                 comp=["gzip", "zstd", None])
    res = ctl("exec", "--profile", "default", "--image", "layered:1", "--", "sh", "-c", LIST)
    assert res.rc == 0, res
    lines = res.text.splitlines()
    assert lines[0].split() == [".", "./added", "./h1", "./h2", "./keep", "./link", "./sub",
                                "./sub/new", "./swap"], lines
    assert lines[1:] == ["mid", "new", "keep", "linked", "keep"], lines
    if mode == "overlay":  # the upper dir is scratch: never synced (its unmount is quick)
        res = ctl("exec", "--profile", "default", "--image", "layered:1", "--", "cat",
                  "/proc/self/mountinfo")
        roots = [ln for ln in res.text.splitlines() if ln.split()[4] == "/"]
        assert len(roots) == 1 and " - overlay " in roots[0], res.text
        opts = roots[0].split(" - ", 1)[1].split()[2].split(",")
        assert "volatile" in opts or "fsync=volatile" in opts, roots[0]  # newer kernels say fsync=
    # writes stay in the command's own root (copy: its own copy of the layers)
    stub = r.stub()
    jobs = [stub.Start(pb.StartRequest(command=pb.Command(path="sh", args=[
        "-c", "echo %s > /data/keep; sleep 1; cat /data/keep" % w]),
        sandbox=pb.Sandbox(profile="default", image="layered:1")), timeout=30).job_id
        for w in ("one", "two")]
    # a copy is a directory on the host; an overlay lives in the command's namespace only
    roots = os.path.join(r.state, "images", "roots")
    for root in os.listdir(roots):
        assert os.path.isfile(os.path.join(roots, root, "merged", "data", "swap")) == \
            (mode == "copy"), root
    for job_id, w in zip(jobs, ("one", "two")):
        st = wait(stub, job_id)
        assert st.state == pb.JOB_STATE_EXITED and st.exit_code == 0, st
        out = b"".join(m.data for m in stub.Logs(pb.LogsRequest(job_id=job_id), timeout=30))
        assert out == (w + "\n").encode()
    _, out, err, ex, _ = exec_call(stub, "cat", "/data/keep",
                                   sandbox=pb.Sandbox(profile="strict", image="layered:1"))
    assert ex.exit_code == 0 and out == b"keep\n", err
    # strict roots are read-only in both modes
    _, out, err, ex, _ = exec_call(stub, "sh", "-c", "echo x > /data/keep",
                                   sandbox=pb.Sandbox(profile="strict", image="layered:1"))
    assert ex.exit_code != 0 and b"Read-only file system" in err, err
    base = os.path.join(r.state, "images")
    end = time.monotonic() + 20
    while (os.listdir(os.path.join(base, "roots")) or os.listdir(os.path.join(base, "tmp"))) \
            and time.monotonic() < end:
        time.sleep(0.05)
    assert os.listdir(os.path.join(base, "roots")) == [] and \
        os.listdir(os.path.join(base, "tmp")) == []
    # the layers themselves are untouched
    for layer in os.listdir(os.path.join(base, "layers")):
        p = os.path.join(base, "layers", layer, "data", "keep")
        if os.path.exists(p):
            assert open(p).read() == "keep\n"
    if mode == "copy":
        mounts = open("/proc/self/mountinfo").read()
        assert r.state not in mounts
        assert "image roots are copies" not in open(r.stderr_path).read()  # forced, not auto


def test_image_roots_flag_refused(rund_factory):
    from conftest import RUND
    p = subprocess.run([RUND, "--image-roots", "tmpfs"], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 2 and '--image-roots "tmpfs": want auto, overlay or copy' in p.stderr

"""--image on exec and start: a busybox image made offline (umoci + skopeo +
busybox-static) imported into a real rund, run under the default and strict
profiles with an overlay root per command: output and exit status, the
image's Env and WorkingDir, two jobs not seeing each other's writes, the
image removed while a job runs (the job keeps working, the layers go when it
ends), nothing left in the store after, and every refusal with its status."""
import json
import os
import shutil
import subprocess
import time

import grpc
import pytest

from conftest import exec_call, pb, short_tmpdir, wait, wait_for
from oci_callers import make_image_archive


@pytest.fixture(scope="module")
def archives():
    tmp = short_tmpdir("rr-imgjob-")
    plain = make_image_archive(tmp, "oci-archive")
    layout = os.path.join(tmp, "oci")
    subprocess.run(["umoci", "config", "--image", layout + ":bb", "--config.env", "FOO=from-image",
                    "--config.env", "BAR=image", "--config.workingdir", "/etc"],
                   check=True, capture_output=True, timeout=60)
    withenv = os.path.join(tmp, "env.tar")
    subprocess.run(["skopeo", "copy", "oci:%s:bb" % layout, "oci-archive:%s:envbox:1" % withenv],
                   check=True, capture_output=True, timeout=120)
    yield {"plain": plain, "env": withenv}
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def img(rund, ctl, archives):
    for f, name in ((archives["plain"], "busybox"), (archives["env"], None)):
        args = ["image", "import", f] + (["--name", name] if name else [])
        r = ctl(*args, timeout=120)
        assert r.rc == 0, r
    return rund


def store_dirs(rund):
    base = os.path.join(rund.state, "images")
    return {d: sorted(os.listdir(os.path.join(base, d))) for d in ("roots", "tmp", "layers")}



def sandbox(image, profile="default"):
    return pb.Sandbox(profile=profile, image=image)


@pytest.mark.parametrize("profile", ["default", "strict"])
def test_exec_in_image(img, ctl, profile):
    r = ctl("exec", "--profile", profile, "--image", "busybox", "--", "sh", "-c",
            "echo hi; test -x /bin/busybox && ls /bin | grep -c . >&2; exit 3")
    assert r.rc == 3, r
    assert r.out == b"hi\n"
    assert int(r.errtext.strip()) > 100  # the applet links of the image, not the host's /bin
    assert wait_for(lambda: store_dirs(img)["roots"] == [] and store_dirs(img)["tmp"] == [])


def test_image_env_and_workdir(img, ctl):
    r = ctl("exec", "--profile", "default", "--image", "envbox:1", "--env", "BAR=request", "--",
            "sh", "-c", 'echo "$FOO $BAR $(pwd)"')
    assert r.rc == 0, r
    assert r.text == "from-image request /etc\n"
    r = ctl("exec", "--profile", "default", "--image", "envbox:1", "--workdir", "/tmp", "--",
            "pwd")
    assert r.rc == 0 and r.text == "/tmp\n", r


def test_writes_stay_in_their_own_root(img):
    stub = img.stub()
    jobs = []
    for word in ("one", "two"):
        req = pb.StartRequest(command=pb.Command(path="sh", args=[
            "-c", "echo %s > /mine; echo %s > /bin/busybox-copy; sleep 1; cat /mine /bin/busybox-copy"
            % (word, word)]), sandbox=sandbox("busybox"))
        jobs.append(stub.Start(req, timeout=30).job_id)
    assert len(store_dirs(img)["roots"]) == 2
    for job_id, word in zip(jobs, ("one", "two")):
        st = wait(stub, job_id)
        assert st.state == pb.JOB_STATE_EXITED and st.exit_code == 0, st
        out = b"".join(m.data for m in stub.Logs(pb.LogsRequest(job_id=job_id), timeout=30))
        assert out == ("%s\n%s\n" % (word, word)).encode()
    # nothing reached the image
    for layer in store_dirs(img)["layers"]:
        base = os.path.join(img.state, "images", "layers", layer)
        assert not os.path.exists(os.path.join(base, "mine"))
        assert not os.path.exists(os.path.join(base, "bin", "busybox-copy"))
    _, out, err, ex, _ = exec_call(stub, "cat", "/mine", sandbox=sandbox("busybox"))
    assert ex.exit_code == 1 and b"No such file" in err
    assert wait_for(lambda: store_dirs(img)["roots"] == [])


def test_image_removed_while_a_job_runs(img, ctl):
    stub = img.stub()
    job_id = stub.Start(pb.StartRequest(
        command=pb.Command(path="sh", args=["-c", "sleep 1; ls /bin | grep -c ."]),
        sandbox=sandbox("busybox")), timeout=30).job_id
    layers_before = store_dirs(img)["layers"]
    r = ctl("image", "rm", "busybox")
    assert r.rc == 0 and r.text.startswith("removed"), r
    time.sleep(0.5)  # the collector ran: the job's layer stays
    assert set(store_dirs(img)["layers"]) == set(layers_before)
    st = wait(stub, job_id)
    assert st.state == pb.JOB_STATE_EXITED and st.exit_code == 0, st
    out = b"".join(m.data for m in stub.Logs(pb.LogsRequest(job_id=job_id), timeout=30))
    assert int(out) > 100
    # envbox:1 shares the layer; once it goes too, everything goes
    assert ctl("image", "rm", "envbox:1").rc == 0
    assert wait_for(lambda: store_dirs(img) == {"roots": [], "tmp": [], "layers": []}), \
        store_dirs(img)


def test_refusals(img, ctl):
    stub = img.stub()
    cases = [
        (sandbox("nope:1"), grpc.StatusCode.NOT_FOUND, 'sandbox.image: image "nope:1" not found'),
        (sandbox("busybox", "host"), grpc.StatusCode.INVALID_ARGUMENT,
         "sandbox.image: needs a sandbox (profile default or strict), but the profile is host"),
        (pb.Sandbox(profile="default", image="busybox", rootfs="/srv"),
         grpc.StatusCode.INVALID_ARGUMENT, "sandbox.image and sandbox.rootfs exclude each other"),
        (sandbox("Bad Name"), grpc.StatusCode.INVALID_ARGUMENT,
         'sandbox.image: bad image name "Bad Name"'),
    ]
    for sb, code, words in cases:
        with pytest.raises(grpc.RpcError) as ei:
            stub.Start(pb.StartRequest(command=pb.Command(path="true"), sandbox=sb), timeout=30)
        assert ei.value.code() == code and words in ei.value.details(), ei.value.details()
    r = ctl("exec", "--image", "busybox", "--", "true")  # rund's default profile: host
    assert r.rc != 0 and "INVALID_ARGUMENT: sandbox.image: needs a sandbox" in r.errtext, r
    r = ctl("exec", "--profile", "default", "--image", "", "--", "true")
    assert r.rc == 2 and "empty --image" in r.errtext, r
    assert wait_for(lambda: store_dirs(img)["roots"] == [] and store_dirs(img)["tmp"] == [])


def test_status_shows_the_image(img, ctl):
    r = ctl("start", "--profile", "default", "--image", "busybox", "--", "true")
    assert r.rc == 0, r
    job_id = r.text.strip()
    assert ctl("wait", job_id).rc == 0
    st = json.loads(ctl("status", job_id, "--json").out)
    assert st["profile"] == "default"
    sb = img.stub().Status(pb.StatusRequest(job_id=job_id), timeout=10).status.request.sandbox
    assert sb.image == "busybox" and sb.rootfs == ""
    assert wait_for(lambda: store_dirs(img)["roots"] == [])


def rund_cgroup_tree(pid):
    """Every directory of rund's runrpc-* cgroup subtree (all hierarchies)."""
    dirs = set()
    with open("/proc/%d/cgroup" % pid) as f:
        lines = f.read().splitlines()
    for line in lines:
        _, ctrls, path = line.split(":", 2)
        parts = path.strip("/").split("/")
        top = [i for i, p in enumerate(parts) if p.startswith("runrpc-")]
        if not top:
            continue
        name = ctrls.replace("name=", "") if ctrls else ""
        base = os.path.join("/sys/fs/cgroup", name, *parts[:top[0] + 1])
        for d, subdirs, _ in os.walk(base):
            dirs.add(d)
    return dirs


@pytest.mark.parametrize("rm", [True, False])
def test_runctl_run_one_container_per_command(img, ctl, rm):
    before = rund_cgroup_tree(img.pid)
    args = ["run", "--image", "busybox"] + (["--rm"] if rm else []) + [
        "--", "sh", "-c", "echo hi; read x; echo got $x >&2; exit 3"]
    r = ctl(*args, input=b"typed\n")
    assert r.rc == 3, r
    assert r.out == b"hi\n" and r.err == b"got typed\n"
    # nothing left: no job, no root, no cgroup
    assert json.loads(ctl("list", "--json").out) == []
    assert wait_for(lambda: store_dirs(img)["roots"] == [] and store_dirs(img)["tmp"] == [])
    assert wait_for(lambda: rund_cgroup_tree(img.pid) == before), \
        rund_cgroup_tree(img.pid) ^ before
    r = ctl("run", "--image", "busybox", "--profile", "strict", "--", "sh", "-c", "id -u; exit 0")
    assert r.rc == 0 and r.text == "0\n", r


def test_end_at_the_status_line(img):
    """A sandboxed Exec with a cgroup ends when the sandbox's init writes
    how the command ended, not at the init's reap: the code or signal and
    the cgroup's usage as before, a leftover child gone with the command
    (no 2 s wait for the pipes), and the cgroups removed once the inits are
    reaped, none left behind after many such calls."""
    stub = img.stub()
    before = rund_cgroup_tree(img.pid)
    _, out, _, ex, _ = exec_call(stub, "sh", "-c", "echo a; sleep 100 & exit 5",
                                 sandbox=sandbox("busybox"))
    assert ex.exit_code == 5 and ex.reason == "exited" and out == b"a\n", ex
    assert ex.HasField("usage") and ex.usage.cpu_usec > 0, ex
    _, _, _, ex, _ = exec_call(stub, "sh", "-c", "kill -KILL $$", sandbox=sandbox("busybox"))
    assert ex.signal == 9 and ex.exit_code == 0 and ex.reason == "signaled", ex
    for i in range(8):
        _, out, _, ex, _ = exec_call(stub, "echo", str(i), sandbox=sandbox("busybox"))
        assert ex.exit_code == 0 and out == b"%d\n" % i, ex
    assert wait_for(lambda: rund_cgroup_tree(img.pid) == before), \
        rund_cgroup_tree(img.pid) ^ before
    warned = [ln for ln in img.stderr_text().splitlines() if "level=warn" in ln and "cgroup" in ln]
    assert warned == [], warned


def test_runctl_run_usage(img, ctl):
    r = ctl("run", "--", "true")
    assert r.rc == 2 and "run needs --image NAME[:TAG]" in r.errtext, r
    r = ctl("run", "--image", "busybox", "true")
    assert r.rc == 2 and "run needs -- and the command after it" in r.errtext, r
    r = ctl("run", "--image", "nope:1", "--", "true")
    assert r.rc == 125 and 'NOT_FOUND: sandbox.image: image "nope:1" not found' in r.errtext, r
    r = ctl("run", "--image", "busybox", "--", "no-such-command")
    assert r.rc == 127, r


def test_roots_across_a_restart(img, ctl):
    """A job on an image outlives rund: the next rund adopts its root and
    releases it when the job ends; a root whose command ended while no rund
    ran (a stray one here) goes at start."""
    stub = img.stub()
    job_id = stub.Start(pb.StartRequest(
        command=pb.Command(path="sh", args=["-c", "echo x > /w; sleep 3; cat /w"]),
        sandbox=sandbox("busybox")), timeout=30).job_id
    (root,) = store_dirs(img)["roots"]
    img.stop()  # SIGTERM: the job keeps running
    stray = os.path.join(img.state, "images", "roots", "0123456789abcdef0123")
    os.makedirs(os.path.join(stray, "upper"))
    img.start()
    assert wait_for(lambda: store_dirs(img)["roots"] == [root]), store_dirs(img)
    st = wait(img.stub(), job_id)
    assert st.state in (pb.JOB_STATE_EXITED, pb.JOB_STATE_FAILED), st  # adopted: status may be lost
    assert wait_for(lambda: store_dirs(img)["roots"] == [] and store_dirs(img)["tmp"] == []), \
        store_dirs(img)


def test_command_from_the_image(img, tmp_path, ctl):
    stub = img.stub()
    # no command.path: the image's Cmd (/bin/sh) reads its script from stdin
    _, out, err, ex, _ = exec_call(stub, "", stdin_chunks=[b"echo from-cmd; exit 4\n"],
                                   sandbox=sandbox("envbox:1"))
    assert ex.exit_code == 4 and out == b"from-cmd\n", (out, err)
    # args without a path replace Cmd (no Entrypoint)
    _, out, err, ex, _ = exec_call(stub, "", "echo", "args", sandbox=sandbox("busybox"))
    assert ex.exit_code == 0 and out == b"args\n", (out, err)
    # an image with neither
    import tarfile
    tar = tmp_path / "root.tar"
    with tarfile.open(tar, "w") as t:
        t.add(shutil.which("busybox"), arcname="bin/sh")
    assert ctl("image", "import", str(tar), "--name", "bare").rc == 0
    with pytest.raises(grpc.RpcError) as ei:
        exec_call(stub, "", sandbox=sandbox("bare"))
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert 'command.path is empty and image "bare" has no Entrypoint or Cmd' in ei.value.details()
    # without an image an empty path is refused as before
    with pytest.raises(grpc.RpcError) as ei:
        exec_call(stub, "", sandbox=pb.Sandbox(profile="default"))
    assert "command.path is empty" in ei.value.details()


def test_large_root_collected_by_the_child(img, ctl):
    """A root a command filled (300 files) and short commands' roots all go
    through images/tmp and the collector child: nothing is left."""
    r = ctl("exec", "--profile", "default", "--image", "busybox", "--", "sh", "-c",
            "mkdir /many && cd /many && for i in $(seq 300); do echo $i > f$i; done; ls | grep -c .")
    assert r.rc == 0 and r.text == "300\n", r
    assert wait_for(lambda: store_dirs(img)["roots"] == [] and store_dirs(img)["tmp"] == []), \
        store_dirs(img)
    layers = store_dirs(img)["layers"]
    for _ in range(3):
        assert ctl("run", "--image", "busybox", "--", "true").rc == 0
    assert wait_for(lambda: store_dirs(img) == {"roots": [], "tmp": [], "layers": layers}), \
        store_dirs(img)

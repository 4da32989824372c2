"""Copy-mode image roots (`rund --image-roots copy`, what a kernel without
overlayfs gets) are made by a `rund image root-copy` child while rund
serves everyone else: with the child stopped (SIGSTOP, so the order is
certain without timing), Health, List and another Start are answered
while the image's Start has not been; once it goes on the Start is
answered and the command runs in its copy. A caller that goes away
mid-copy gets its child killed and its partial root removed; a copy that
fails says why; an Exec's stdin sent during the copy reaches the command."""
import os
import signal
import time

import grpc
import pytest

from conftest import Ctl, pb, wait
from image_helpers import busybox_members, layer_tar, tar_of_dir, write_oci_layout

NFILES = 6000


def need_root():
    if os.geteuid() != 0:
        pytest.skip("image roots need rund as root")


def health_check(ch, timeout=30):
    call = ch.unary_unary("/grpc.health.v1.Health/Check",
                          request_serializer=None, response_deserializer=None)
    return call(b"", timeout=timeout)


def copy_children(rund):
    """pids of rund's `rund image root-copy` children."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv = f.read().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == rund.pid and b"root-copy" in argv:
            out.append(int(d))
    return out


def stop_copy(rund, fut, deadline=60):
    """SIGSTOP the copy child of the call fut (None if it ended first)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end and not fut.done():
        kids = copy_children(rund)
        if kids:
            os.kill(kids[0], signal.SIGSTOP)
            return kids[0]
        time.sleep(0.002)
    return None


def wait_empty(rund, timeout=60):
    base = os.path.join(rund.state, "images")
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        left = os.listdir(os.path.join(base, "roots")) + os.listdir(os.path.join(base, "tmp"))
        if not left:
            return []
        time.sleep(0.05)
    return left


@pytest.fixture
def copy_rund(rund_factory, tmp_path):
    need_root()
    r = rund_factory(extra_args=["--image-roots", "copy"]).start()
    ctl = Ctl(r.addr)
    big = layer_tar(busybox_members() + [("data/", "dir", None)] +
                    [("data/f%05d" % i, "file", "x%d\n" % i) for i in range(NFILES)])
    layout = write_oci_layout(str(tmp_path / "big"), [big], {"Cmd": ["/bin/sh"]},
                              ref="big:1", comp="gzip")
    res = ctl("image", "import", tar_of_dir(layout, layout + ".tar"), timeout=300)
    assert res.rc == 0, res
    return r


def image_start(stub, *argv, timeout=120):
    return stub.Start.future(pb.StartRequest(
        command=pb.Command(path=argv[0], args=list(argv[1:])),
        sandbox=pb.Sandbox(profile="default", image="big:1")), timeout=timeout)


def test_copy_does_not_hold_the_loop(copy_rund):
    r = copy_rund
    stub, ch = r.stub(), r.channel()
    for _ in range(3):  # the copy may end before we catch it: then again
        fut = image_start(stub, "sh", "-c", "ls /data | wc -l; cat /data/f00042")
        pid = stop_copy(r, fut)
        if pid:
            break
        fut.result()
    assert pid, "never caught the copy child running"
    try:
        # the copy cannot end while stopped: all this is answered before it
        assert health_check(ch) == b"\x08\x01"
        assert stub.List(pb.ListRequest(), timeout=30) is not None
        other = stub.Start(pb.StartRequest(command=pb.Command(path="true")), timeout=30)
        assert wait(stub, other.job_id).exit_code == 0
        assert not fut.done()
        assert os.path.isdir(os.path.join(r.state, "images", "roots"))
    finally:
        os.kill(pid, signal.SIGCONT)
    job = fut.result().job_id
    st = wait(stub, job)
    assert st.state == pb.JOB_STATE_EXITED and st.exit_code == 0, st
    out = b"".join(m.data for m in stub.Logs(pb.LogsRequest(job_id=job), timeout=30))
    assert out == b"%d\nx42\n" % NFILES, out
    assert wait_empty(r) == []


@pytest.mark.parametrize("rpc", ["start", "exec"])
def test_copy_cancelled_removes_the_partial_root(copy_rund, rpc):
    r = copy_rund
    stub = r.stub()
    for _ in range(3):
        if rpc == "start":
            fut = image_start(stub, "true")
        else:
            start = pb.ExecRequest(start=pb.ExecStart(
                command=pb.Command(path="true"),
                sandbox=pb.Sandbox(profile="default", image="big:1")))
            fut = stub.Exec(iter([start]), timeout=120)
            # a streaming call: done() is when it ends
        pid = stop_copy(r, fut)
        if pid:
            break
        if rpc == "start":
            fut.result()
        else:
            list(fut)
    assert pid, "never caught the copy child running"
    roots = os.listdir(os.path.join(r.state, "images", "roots"))
    assert len(roots) == 1, roots
    assert os.path.isdir(os.path.join(r.state, "images", "roots", roots[0], "merged"))
    fut.cancel()
    # the stopped child is killed (SIGKILL ends a stopped process), then its root goes
    end = time.monotonic() + 60
    while time.monotonic() < end:
        try:
            with open("/proc/%d/stat" % pid) as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
        except (FileNotFoundError, ProcessLookupError):
            break  # reaped between two looks
        time.sleep(0.02)
    assert copy_children(r) in ([], [pid]), copy_children(r)
    assert wait_empty(r) == []
    # and rund serves on
    assert health_check(r.channel()) == b"\x08\x01"
    assert stub.List(pb.ListRequest(), timeout=30).jobs is not None


def test_copy_failure_says_why(copy_rund):
    r = copy_rund
    stub = r.stub()
    layers = os.path.join(r.state, "images", "layers")
    for hexd in os.listdir(layers):  # the store damaged under rund
        os.rename(os.path.join(layers, hexd), os.path.join(layers, "." + hexd))
    with pytest.raises(grpc.RpcError) as ei:
        image_start(stub, "true").result()
    assert ei.value.code() == grpc.StatusCode.FAILED_PRECONDITION, ei.value.details()
    assert "image root (copy): layer sha256:" in ei.value.details(), ei.value.details()
    assert "is not in the store" in ei.value.details(), ei.value.details()
    assert wait_empty(r) == []


def test_copy_exec_stdin_during_the_copy(copy_rund):
    """stdin and close_stdin sent right behind start wait with the stream
    (paused) and reach the command once its root is made."""
    r = copy_rund
    stub = r.stub()
    start = pb.ExecRequest(start=pb.ExecStart(
        command=pb.Command(path="sh", args=["-c", "cat; echo end"]),
        sandbox=pb.Sandbox(profile="default", image="big:1")))
    msgs = [start, pb.ExecRequest(stdin=b"hello "), pb.ExecRequest(stdin=b"copy\n"),
            pb.ExecRequest(close_stdin=True)]
    out, code = b"", None
    for m in stub.Exec(iter(msgs), timeout=120):
        out += m.stdout
        if m.HasField("exit"):
            code = m.exit.exit_code
    assert out == b"hello copy\nend\n" and code == 0, (out, code)
    assert wait_empty(r) == []


def test_rund_stops_mid_copy(copy_rund):
    """SIGTERM while a copy runs: the caller gets an error, the child is
    killed, rund exits 0 with no sanitizer report (nothing leaked), and the
    next rund of the state dir releases the root it left."""
    r = copy_rund
    stub = r.stub()
    for _ in range(3):
        fut = image_start(stub, "true")
        pid = stop_copy(r, fut)
        if pid:
            break
        fut.result()
    assert pid, "never caught the copy child running"
    assert len(os.listdir(os.path.join(r.state, "images", "roots"))) == 1
    r.stop()
    with pytest.raises(grpc.RpcError):
        fut.result()
    end = time.monotonic() + 30
    while os.path.exists("/proc/%d" % pid) and time.monotonic() < end:
        time.sleep(0.02)  # reaped by init once rund is gone
    assert not os.path.exists("/proc/%d" % pid) or \
        open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[0] == "Z"
    r.start()
    assert wait_empty(r) == []
